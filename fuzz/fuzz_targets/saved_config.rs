//! Fuzz target: `graft_diffusion::saved::SavedConfig::from_json` on a saved denoiser's `config.json`.
//! What is checked for one input is in `fuzz/checks/saved.rs`, which the
//! stable replay tests share.

#![no_main]

#[path = "../checks/saved.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::saved_config(data);
});
