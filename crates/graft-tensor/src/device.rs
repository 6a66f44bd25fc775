//! Device selection: `GRAFT_DEVICE=cpu|cuda|cuda:N`, else CUDA when available, else CPU.

use crate::{Error, Result};
use tch::Device;

/// The device graft computes on: `GRAFT_DEVICE` if set, else CUDA if available, else CPU.
///
/// Fails when `GRAFT_DEVICE` names CUDA and none is available, or names
/// something else than `cpu`, `cuda` or `cuda:N`.
pub fn default_device() -> Result<Device> {
    load_cuda_library();
    match std::env::var("GRAFT_DEVICE") {
        Ok(v) if !v.trim().is_empty() => parse_device(&v),
        _ => Ok(Device::cuda_if_available()),
    }
}

/// Parses `cpu`, `cuda` or `cuda:N`, checking that a CUDA device exists.
pub fn parse_device(text: &str) -> Result<Device> {
    let t = text.trim().to_ascii_lowercase();
    let device = match t.as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" | "gpu" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::Cuda(n),
            _ => {
                return Err(Error::Invalid(format!(
                    "GRAFT_DEVICE=`{text}`: expected cpu, cuda or cuda:N"
                )));
            }
        },
    };
    load_cuda_library();
    let available = tch::Cuda::device_count().max(0) as usize;
    match device {
        Device::Cuda(n) if n >= available => Err(Error::Invalid(format!(
            "GRAFT_DEVICE=`{text}`: {available} CUDA device(s) available (this libtorch is {})",
            if tch::Cuda::is_available() {
                "CUDA-enabled"
            } else {
                "CPU-only or finds no GPU"
            }
        ))),
        d => Ok(d),
    }
}

/// Loads libtorch's CUDA library (`libtorch_cuda.so`) if this libtorch has
/// one; returns whether it is loaded.
///
/// The linker drops `libtorch_cuda.so` from graft's binaries because no
/// symbol of it is referenced directly (rustc links with `--as-needed`), and
/// without it libtorch registers no CUDA backend. Loading it at run time,
/// through the executable's rpath, restores the backend. With the CPU
/// libtorch (`cargo xtask setup`) the library does not exist and this
/// returns `false`. [`default_device`] and [`parse_device`] call it.
pub fn load_cuda_library() -> bool {
    static LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOADED.get_or_init(|| {
        // SAFETY: dlopen with a constant, NUL-terminated name; the handle is
        // kept for the life of the process (never dlclose'd).
        let handle = unsafe {
            libc::dlopen(
                c"libtorch_cuda.so".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_GLOBAL,
            )
        };
        !handle.is_null()
    })
}
