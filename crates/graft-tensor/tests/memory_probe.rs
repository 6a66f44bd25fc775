//! Memory probes measure what they claim.

use graft_tensor::memory::{peak_rss_in_child, tensor_bytes, test_args};
use graft_tensor::tch::{Device, Kind, Tensor};

const MIB: u64 = 1 << 20;

#[test]
fn child_probe_sees_a_256_mib_allocation() {
    let report = peak_rss_in_child(
        "alloc-256",
        &test_args("child_probe_sees_a_256_mib_allocation"),
        || {
            let t = Tensor::ones([64 * MIB as i64], (Kind::Float, Device::Cpu));
            assert_eq!(t.numel(), 64 * MIB as usize);
            Ok(())
        },
    )
    .unwrap();
    let delta = report.delta_bytes();
    assert!(
        (250 * MIB..300 * MIB).contains(&delta),
        "delta {} MiB",
        delta / MIB
    );
    assert!(report.baseline_bytes > 0);
}

#[test]
fn child_probe_of_nothing_is_near_zero() {
    let report = peak_rss_in_child(
        "nothing",
        &test_args("child_probe_of_nothing_is_near_zero"),
        || Ok(()),
    )
    .unwrap();
    assert!(
        report.delta_bytes() < 8 * MIB,
        "delta {} bytes",
        report.delta_bytes()
    );
}

#[test]
fn child_probe_reports_a_failing_closure() {
    let err = peak_rss_in_child(
        "fails",
        &test_args("child_probe_reports_a_failing_closure"),
        || Err(graft_tensor::Error::Invalid("on purpose".into())),
    )
    .unwrap_err();
    assert!(err.to_string().contains("on purpose"), "{err}");
}

#[test]
fn tensor_bytes_counts_shared_storage_once() {
    let a = Tensor::zeros([1000], (Kind::Float, Device::Cpu));
    let b = Tensor::zeros([10, 10], (Kind::Double, Device::Cpu));
    assert_eq!(tensor_bytes([&a]), 4000);
    assert_eq!(tensor_bytes([&a, &b]), 4800);
    let view = a.narrow(0, 100, 200);
    let alias = a.shallow_clone();
    assert_eq!(tensor_bytes([&a, &view, &alias]), 4000);
    assert_eq!(tensor_bytes([&view]), 800);
    let strided = b.tr();
    assert_eq!(tensor_bytes([&strided]), 800);
}

#[test]
fn releasing_a_tensor_drops_its_resident_pages_and_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    let t = Tensor::arange(16 * MIB as i64, (Kind::Float, Device::Cpu));
    graft_tensor::safetensors::save(&path, [("t", &t)], &Default::default()).unwrap();
    let report = peak_rss_in_child(
        "release",
        &test_args("releasing_a_tensor_drops_its_resident_pages_and_keeps_its_bytes"),
        || {
            let file = graft_tensor::safetensors::SafetensorsFile::open(&path)?;
            let bytes = file.bytes("t")?;
            let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
            let touched = graft_tensor::memory::current_rss_bytes().unwrap_or(0);
            file.release("t", 0, bytes.len())?;
            let released = graft_tensor::memory::current_rss_bytes().unwrap_or(0);
            assert!(
                touched - released > 48 * MIB,
                "released {} MiB",
                (touched - released) / MIB
            );
            let again: u64 = file.bytes("t")?.iter().map(|&b| u64::from(b)).sum();
            assert_eq!(sum, again, "bytes changed after release");
            Ok(())
        },
    )
    .unwrap();
    assert!(report.peak_bytes > 0);
}
