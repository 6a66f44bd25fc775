//! Device selection.

use graft_tensor::device::{load_cuda_library, parse_device};
use graft_tensor::tch::Device;
use std::path::Path;

#[test]
fn cuda_library_is_loaded_exactly_when_the_setup_has_it() {
    let lib =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/libtorch/lib/libtorch_cuda.so");
    if std::env::var_os("CARGO_TARGET_DIR").is_some() {
        eprintln!("skipped: CARGO_TARGET_DIR moves target/libtorch");
        return;
    }
    assert_eq!(load_cuda_library(), lib.exists());
    if lib.exists() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            maps.contains("libtorch_cuda.so"),
            "libtorch_cuda.so is not mapped"
        );
    }
}

#[test]
fn device_names_parse_and_bad_ones_are_refused() {
    assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
    assert_eq!(parse_device(" CPU ").unwrap(), Device::Cpu);
    let err = parse_device("tpu").unwrap_err().to_string();
    assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
    if !graft_tensor::tch::Cuda::is_available() {
        let err = parse_device("cuda:0").unwrap_err().to_string();
        assert!(err.contains("0 CUDA device"), "{err}");
    } else {
        assert_eq!(parse_device("cuda").unwrap(), Device::Cuda(0));
        assert!(parse_device("cuda:4096").is_err());
    }
}
