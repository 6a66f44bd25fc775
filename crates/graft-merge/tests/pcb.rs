//! PCB against an independent numpy reference (`tests/fixtures/pcb/make.py`),
//! the three inter-balancing variants, and "PCB + ES".

use graft_merge::search::{EsConfig, maximize};
use graft_merge::{
    InterBalance, MergeParams, Method, ModelValues, PcbComponents, PcbParams, merge, pcb_scores,
};
use serde_json::Value;

fn matrix(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: graft {x} vs numpy {y}"
        );
    }
}

#[test]
fn pcb_matches_the_numpy_reference_for_every_inter_balancing_variant() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pcb/cases.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for (c, case) in cases.iter().enumerate() {
        let deltas = matrix(&case["deltas"]);
        let params = PcbParams {
            keep_ratio: case["keep_ratio"].as_f64().unwrap(),
            clamp_ratio: case["clamp_ratio"].as_f64().unwrap(),
            inter: serde_json::from_value(case["inter"].clone()).unwrap(),
        };
        let what = format!("case {c} ({:?})", params.inter);
        let (clamped, scores) = pcb_scores("w", &deltas, &params).unwrap();
        for (i, (got, want)) in clamped.iter().zip(matrix(&case["clamped"])).enumerate() {
            close(got, &want, 1e-6, &format!("{what} clamped {i}"));
        }
        for (i, (got, want)) in scores.iter().zip(matrix(&case["scores"])).enumerate() {
            close(got, &want, 1e-4, &format!("{what} scores {i}"));
        }
        let ms: Vec<ModelValues> = deltas
            .iter()
            .enumerate()
            .map(|(i, d)| ModelValues::new(&format!("m{i}"), d))
            .collect();
        let merged = merge(&Method::Pcb(params), &MergeParams::default(), "w", &ms).unwrap();
        let want: Vec<f32> = case["merged"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        close(&merged, &want, 1e-4, &format!("{what} merged"));
        // The cached parts give the same Δ for λ = 1.
        let parts = PcbComponents::new(&params, "w", None, &ms).unwrap();
        close(
            &parts.combine(&vec![1.0; ms.len()]).unwrap(),
            &want,
            1e-4,
            &format!("{what} parts"),
        );
    }
}

#[test]
fn pcb_components_scale_linearly_and_match_the_weighted_merge() {
    let a = [0.3f32, -0.2, 0.05, 0.0, 0.4, -0.1];
    let b = [0.1f32, 0.25, -0.3, 0.2, 0.0, -0.15];
    let params = PcbParams {
        keep_ratio: 0.5,
        ..PcbParams::default()
    };
    let ms = [ModelValues::new("a", &a), ModelValues::new("b", &b)];
    let parts = PcbComponents::new(&params, "w", None, &ms).unwrap();
    assert_eq!(parts.ids(), ["a", "b"]);
    let weighted = [
        ModelValues {
            weight: 1.3,
            ..ModelValues::new("a", &a)
        },
        ModelValues {
            weight: 0.7,
            ..ModelValues::new("b", &b)
        },
    ];
    let direct = merge(
        &Method::Pcb(params),
        &MergeParams::default(),
        "w",
        &weighted,
    )
    .unwrap();
    close(
        &parts.combine(&[1.3, 0.7]).unwrap(),
        &direct,
        1e-6,
        "λ = (1.3, 0.7)",
    );
    assert!(parts.combine(&[1.0]).is_err(), "one scale for two models");
}

#[test]
fn evolution_strategy_finds_an_interior_optimum_within_its_budget() {
    let target = [1.1, 0.9, 1.25];
    let config = EsConfig {
        seed: 7,
        ..EsConfig::vision()
    };
    let objective = |x: &[f64]| -> graft_merge::Result<f64> {
        Ok(-x
            .iter()
            .zip(&target)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>())
    };
    let result = maximize(3, &config, objective).unwrap();
    assert_eq!(result.evaluations, 100);
    assert!(
        result.trace.windows(2).all(|w| w[1] >= w[0]),
        "best-so-far never drops"
    );
    for (x, t) in result.best.iter().zip(&target) {
        assert!((x - t).abs() < 0.03, "{:?} vs {target:?}", result.best);
    }
    // The same seed gives the same search; the bounds hold.
    let again = maximize(3, &config, objective).unwrap();
    assert_eq!(again, result);
    let edge = maximize(2, &config, |x| Ok(x.iter().sum())).unwrap();
    assert!(
        edge.best.iter().all(|x| *x <= 1.3 && *x > 1.25),
        "{:?}",
        edge.best
    );
}

#[test]
fn bad_searches_are_refused() {
    let ok = |_: &[f64]| Ok(0.0);
    let vision = EsConfig::vision;
    let mut zero_budget = vision();
    zero_budget.budget = 0;
    let mut upside_down = vision();
    upside_down.lower = 2.0;
    let mut outside = vision();
    outside.init = 5.0;
    let mut no_step = vision();
    no_step.step = 0.0;
    for (config, needle) in [
        (zero_budget, "budget"),
        (upside_down, "bounds"),
        (outside, "outside"),
        (no_step, "step"),
    ] {
        let err = maximize(2, &config, ok).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    let err = maximize(2, &EsConfig::vision(), |_| Ok(f64::NAN))
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN"), "{err}");
    let _ = InterBalance::default();
}
