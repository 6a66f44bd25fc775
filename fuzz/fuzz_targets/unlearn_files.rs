//! Fuzz target: `graft_unlearn::files::{load_model, load_samples}` on the
//! files `graft unlearn ssd` reads. What is checked for one input is in
//! `fuzz/checks/unlearn.rs`, which the stable replay tests share.

#![no_main]

#[path = "../checks/unlearn.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::unlearn_files(data);
});
