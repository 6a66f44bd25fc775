//! The `diffusion` reproduction runs at quick size, writes its plots and
//! tables, and its exactness-backed claims hold (the third-order D2 finding,
//! the noise-form SDE divergence).

use graft_nn::experiment::{ExperimentContext, Size};

#[test]
fn diffusion_quick_runs_and_reports_its_claims() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ExperimentContext {
        size: Size::Quick,
        seed: 0,
        out_dir: dir.path().to_path_buf(),
    };
    let outcome = graft_diffusion::experiments::run(&ctx).unwrap();
    let claim = |id: &str| {
        outcome
            .claims
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no claim {id}"))
    };
    for id in [
        "order3-taylor-data",
        "order3-reference-data",
        "r2-sde-noise-diverges",
        "r2-sde-data-finite",
        // The spec §9 headline and DMCMC, tracked as a regression test (seeded, deterministic).
        "r2-mrs3-20-vs-em-200-mmd",
        "r2-mrs3-20-vs-em-200-tv",
        "r2-mrs3-20-vs-em-200-std",
        "dlg-vs-heun-k5-5pt",
    ] {
        assert!(claim(id).pass, "{:?}", claim(id));
    }
    for id in [
        "r1-nfe-to-rmse-1e-2",
        "r3-mrs2-10-vs-posterior-100",
        "r3-mrs2-20-vs-posterior-100",
        "dlg-vs-heun-k5-10pt",
        "dlg-vs-heun-k20-5pt",
        "dlg-vs-heun-k20-10pt",
        "l3-dlg-vs-heun-k5-5pt",
        "l3-dlg-vs-heun-k5-10pt",
        "l3-dlg-vs-heun-k20-5pt",
        "l3-dlg-vs-heun-k20-10pt",
    ] {
        claim(id);
    }
    for plot in &outcome.plots {
        assert!(dir.path().join(plot).is_file(), "{plot}");
    }
    for table in [
        "orders.md",
        "r1_rmse.md",
        "r2_quality.md",
        "r3_quality.md",
        "dlg.md",
        "l3_dmcmc_digits.md",
    ] {
        assert!(dir.path().join(table).is_file(), "{table}");
    }
}
