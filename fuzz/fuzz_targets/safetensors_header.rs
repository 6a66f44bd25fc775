//! Fuzz target: `graft_tensor::safetensors::parse_header` on the bytes of a whole file.
//! What is checked for one input is in `fuzz/checks/safetensors.rs`, which the
//! stable replay tests share.

#![no_main]

#[path = "../checks/safetensors.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::safetensors_header(data);
});
