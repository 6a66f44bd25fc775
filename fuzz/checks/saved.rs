//! One input of the `saved_config` target: `SavedConfig::from_json`, and
//! for an accepted configuration what `saved::load` does with it next
//! (the parameter shapes, building the process) and a round trip through
//! JSON, which must be accepted again and describe the same network.
//!
//! Shared by the fuzz target and `crates/graft-diffusion/tests/fuzz_replay.rs`.

use graft_diffusion::saved::{MAX_PARAMS, ProcessSpec, SavedConfig};
use std::path::Path;

/// Tables longer than this are not built here: they are valid (up to
/// `MAX_TABLE_STEPS`) but each build allocates and fills them, which would
/// slow every later execution of the fuzzer for no new code.
const BUILD_STEPS: usize = 1 << 12;

/// `from_json` on `data` (as UTF-8, invalid sequences replaced).
pub fn saved_config(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new("config.json");
    let Ok(config) = SavedConfig::from_json(&text, origin) else {
        return false;
    };
    let shapes = config.parameter_shapes();
    assert_eq!(shapes.len(), 2 * config.shape.layers + 2);
    let params: u64 = shapes
        .iter()
        .map(|(_, s)| s.iter().map(|&d| d as u64).product::<u64>())
        .sum();
    assert!(
        (1..=MAX_PARAMS).contains(&params),
        "{params} parameters accepted"
    );
    let small = !matches!(config.process, ProcessSpec::MeanRevertingTable { steps, .. } if steps > BUILD_STEPS);
    if small {
        // An error is fine (e.g. VE with sigma_min >= sigma_max); a panic is not.
        let _ = config.process.build(None);
    }
    let json = serde_json::to_string(&config).expect("an accepted config serialises");
    let back = SavedConfig::from_json(&json, origin).unwrap_or_else(|e| {
        panic!("an accepted config is refused after a round trip: {e}\n{json}")
    });
    assert_eq!(back.shape, config.shape);
    assert_eq!(back.parameterization, config.parameterization);
    assert_eq!(back.condition, config.condition);
    assert_eq!(back.format, config.format);
    assert_eq!(back.version, config.version);
    true
}
