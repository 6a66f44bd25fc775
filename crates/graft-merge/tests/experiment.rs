//! The `merge` reproduction runs (quick size) and its smoke claims hold
//! (spec §8: merges between base and fine-tuned, drop-only DARE collapses).

use graft_nn::experiment::{ExperimentContext, Size};

#[test]
fn placed_digits_quick_runs_and_orders_the_methods() {
    let _rng = graft_tensor::testing::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let ctx = ExperimentContext {
        size: Size::Quick,
        seed: 0,
        out_dir: dir.path().to_path_buf(),
    };
    let outcome = graft_merge::experiments::placed_digits::run(&ctx).unwrap();
    let claim = |id: &str| {
        outcome
            .claims
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no claim {id}"))
    };
    assert!(
        claim("merges-between").pass,
        "{:?}",
        claim("merges-between")
    );
    assert!(
        claim("drop-only-collapses").pass,
        "{:?}",
        claim("drop-only-collapses")
    );
    for plot in &outcome.plots {
        assert!(dir.path().join(plot).is_file(), "{plot}");
    }
    assert!(dir.path().join("per_task.md").is_file());
}
