//! Fuzz target: `graft_tensor::safetensors::parse_index` on a `model.safetensors.index.json`.
//! What is checked for one input is in `fuzz/checks/safetensors.rs`, which the
//! stable replay tests share.

#![no_main]

#[path = "../checks/safetensors.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::safetensors_index(data);
});
