//! Helpers for graft's tests (feature `testing`): a fixed-seed proptest
//! configuration and bitwise tensor comparison.

use tch::{Device, Tensor};

/// A proptest configuration with `cases` cases, a fixed seed and no failure
/// files, so CI runs the same cases every time.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x67_72_61_66_74),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// The raw bytes of a tensor's elements, row-major, copied to the CPU.
pub fn raw_bytes(t: &Tensor) -> Vec<u8> {
    let cpu = t.to_device(Device::Cpu).contiguous();
    let n = cpu.numel();
    let mut out = vec![0u8; n * cpu.kind().elt_size_in_bytes()];
    cpu.copy_data_u8(&mut out, n);
    out
}

/// Whether two tensors have the same kind, shape and bits (NaN payloads and
/// signed zeros included).
pub fn bitwise_equal(a: &Tensor, b: &Tensor) -> bool {
    a.kind() == b.kind() && a.size() == b.size() && raw_bytes(a) == raw_bytes(b)
}

/// Serialises the tests of one test binary that seed libtorch's global
/// generator and depend on what it draws: tests run on parallel threads and
/// would otherwise interleave their draws.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Turns one test body into a CPU test and a CUDA test (candle's
/// `test_device!` pattern). The body is a function `fn(Device)`; the CUDA
/// test prints a message and returns when no GPU is present.
///
/// ```ignore
/// fn adds(device: Device) { assert_eq!((Tensor::ones([2], (Kind::Float, device)) * 2).sum(Kind::Float).double_value(&[]), 4.0) }
/// graft_tensor::test_device!(adds, adds_cpu, adds_cuda);
/// ```
#[macro_export]
macro_rules! test_device {
    ($body:ident, $cpu:ident, $cuda:ident) => {
        #[test]
        fn $cpu() {
            $body($crate::tch::Device::Cpu);
        }

        #[test]
        fn $cuda() {
            if !($crate::device::load_cuda_library() && $crate::tch::Cuda::is_available()) {
                eprintln!("skipped {}: no CUDA device", stringify!($cuda));
                return;
            }
            $body($crate::tch::Device::Cuda(0));
        }
    };
}
