//! Fuzz target: `graft_merge::config::MergeConfig::from_yaml` on a mergekit YAML file.
//! What is checked for one input is in `fuzz/checks/merge.rs`, which the
//! stable replay tests share.

#![no_main]

#[path = "../checks/merge.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::merge_yaml(data);
});
