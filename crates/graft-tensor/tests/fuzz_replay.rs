//! The fuzz targets `safetensors_header` and `safetensors_index` on stable:
//! their seed corpus and seeded mutations of it, through the same checks
//! (`fuzz/checks/safetensors.rs`). See fuzz/README.md.

#[path = "../../../fuzz/replay.rs"]
#[allow(dead_code)]
mod replay;

#[path = "../../../fuzz/checks/safetensors.rs"]
mod checks;

use replay::Format;

#[test]
fn safetensors_header_never_panics_on_seeds_and_mutations() {
    replay::replay(
        "safetensors_header",
        Format::LengthPrefixed,
        100_000,
        checks::safetensors_header,
    );
}

#[test]
fn safetensors_index_never_panics_on_seeds_and_mutations() {
    replay::replay(
        "safetensors_index",
        Format::Text,
        50_000,
        checks::safetensors_index,
    );
}
