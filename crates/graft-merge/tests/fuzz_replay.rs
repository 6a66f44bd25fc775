//! The fuzz target `merge_yaml` on stable: its seed corpus and seeded
//! mutations of it, through the same check (`fuzz/checks/merge.rs`). See
//! fuzz/README.md.

#[path = "../../../fuzz/replay.rs"]
#[allow(dead_code)]
mod replay;

#[path = "../../../fuzz/checks/merge.rs"]
mod checks;

#[test]
fn merge_yaml_never_panics_on_seeds_and_mutations() {
    replay::replay(
        "merge_yaml",
        replay::Format::Text,
        50_000,
        checks::merge_yaml,
    );
}
