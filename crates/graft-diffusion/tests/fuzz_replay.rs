//! The fuzz target `saved_config` on stable: its seed corpus and seeded
//! mutations of it, through the same check (`fuzz/checks/saved.rs`). See
//! fuzz/README.md.

#[path = "../../../fuzz/replay.rs"]
#[allow(dead_code)]
mod replay;

#[path = "../../../fuzz/checks/saved.rs"]
mod checks;

#[test]
fn saved_config_never_panics_on_seeds_and_mutations() {
    replay::replay(
        "saved_config",
        replay::Format::Text,
        100_000,
        checks::saved_config,
    );
}
