//! Membership-inference arithmetic against scikit-learn 1.9.1
//! (`tests/fixtures/mia/make.py`): the balanced logistic regression, ROC-AUC
//! and the best balanced-accuracy loss threshold.

use graft_unlearn::mia::{BalancedLogistic, best_loss_threshold, roc_auc};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mia/cases.json"
    ))
    .unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["cases"].as_array().unwrap().clone()
}

#[test]
fn logistic_regression_matches_sklearn_to_convergence() {
    let cases = cases();
    assert!(cases.len() >= 6);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let fit =
            BalancedLogistic::fit(&floats(&case["members"]), &floats(&case["nonmembers"]), 1.0)
                .unwrap();
        let tight = &case["sklearn_tight"];
        let (coef, intercept) = (
            tight["coef"].as_f64().unwrap(),
            tight["intercept"].as_f64().unwrap(),
        );
        // The tight fit is within 7e-8 of an independent optimiser (make.py's note).
        assert!(
            (fit.coef - coef).abs() <= 1e-6 * coef.abs().max(1.0),
            "{name}: coef {} vs {coef}",
            fit.coef
        );
        assert!(
            (fit.intercept - intercept).abs() <= 1e-6 * intercept.abs().max(1.0),
            "{name}: intercept {} vs {intercept}",
            fit.intercept
        );
        let queries = floats(&case["queries"]);
        for (key, fit_key) in [("sklearn_tight", "tight"), ("sklearn_default", "default")] {
            let predict = floats(&case[key]["predict"]);
            for (q, p) in queries.iter().zip(&predict) {
                assert_eq!(
                    fit.is_member(*q),
                    *p == 1.0,
                    "{name}: predict({q}) vs sklearn {fit_key}"
                );
            }
        }
        for (q, p) in queries.iter().zip(floats(&tight["predict_proba1"])) {
            assert!(
                (fit.probability(*q) - p).abs() <= 1e-7,
                "{name}: P({q}) = {} vs {p}",
                fit.probability(*q)
            );
        }
        let share =
            queries.iter().filter(|q| fit.is_member(**q)).count() as f64 / queries.len() as f64;
        assert!(
            (share - case["member_share"].as_f64().unwrap()).abs() < 1e-12,
            "{name}: member share"
        );
    }
}

#[test]
fn roc_auc_and_threshold_match_sklearn_with_ties() {
    for case in &cases() {
        let name = case["name"].as_str().unwrap();
        let auc = roc_auc(
            &floats(&case["auc_scores_pos"]),
            &floats(&case["auc_scores_neg"]),
        )
        .unwrap();
        assert!(
            (auc - case["roc_auc"].as_f64().unwrap()).abs() < 1e-12,
            "{name}: auc {auc}"
        );
        let (t, acc) =
            best_loss_threshold(&floats(&case["members"]), &floats(&case["nonmembers"])).unwrap();
        assert!(
            (acc - case["best_balanced_accuracy"].as_f64().unwrap()).abs() < 1e-12,
            "{name}: balanced accuracy {acc}"
        );
        if let Some(want) = case["best_loss_threshold"].as_f64() {
            assert_eq!(t, want, "{name}: threshold");
        }
    }
}

#[test]
fn degenerate_inputs_are_errors() {
    assert!(BalancedLogistic::fit(&[], &[1.0], 1.0).is_err());
    assert!(BalancedLogistic::fit(&[f64::NAN], &[1.0], 1.0).is_err());
    assert!(roc_auc(&[1.0], &[]).is_err());
    assert!(best_loss_threshold(&[f64::NAN], &[1.0]).is_err());
}
