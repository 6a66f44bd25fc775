//! The fuzz target `unlearn_files` on stable: its seed corpus and seeded
//! mutations of it, through the same check (`fuzz/checks/unlearn.rs`). See
//! fuzz/README.md.

#[path = "../../../fuzz/replay.rs"]
#[allow(dead_code)]
mod replay;

#[path = "../../../fuzz/checks/unlearn.rs"]
mod checks;

#[test]
fn unlearn_files_never_panic_on_seeds_and_mutations() {
    replay::replay(
        "unlearn_files",
        replay::Format::LengthPrefixed,
        10_000,
        checks::unlearn_files,
    );
}
