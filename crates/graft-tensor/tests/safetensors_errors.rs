//! Bad files and interrupted writes: always an `Err` naming the file, never a
//! panic, never a partial file.

use graft_tensor::Error;
use graft_tensor::safetensors::{
    Checkpoint, SafetensorsFile, SafetensorsWriter, ShardedWriter, TensorSpec, save,
};
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::proptest_config;
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::Path;

fn sample_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("good.safetensors");
    let a = Tensor::arange(12, (Kind::Float, Device::Cpu)).reshape([3, 4]);
    let b = Tensor::arange(5, (Kind::Int64, Device::Cpu));
    save(
        &path,
        [("a", &a), ("b", &b)],
        &HashMap::from([("k".into(), "v".into())]),
    )
    .unwrap();
    path
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(proptest_config(64))]

    #[test]
    fn every_truncation_is_an_error_naming_the_file(cut_fraction in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let good = sample_file(dir.path());
        let bytes = std::fs::read(&good).unwrap();
        let cut = ((bytes.len() as f64) * cut_fraction) as usize;
        let bad = dir.path().join("cut.safetensors");
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        let err = SafetensorsFile::open(&bad).unwrap_err();
        prop_assert!(err.to_string().contains("cut.safetensors"), "{}", err);
        prop_assert!(matches!(err, Error::Truncated { .. } | Error::BadHeader { .. }), "{:?}", err);
    }

    #[test]
    fn corrupt_bytes_never_panic(pos in 0usize..200, byte in any::<u8>()) {
        let dir = tempfile::tempdir().unwrap();
        let good = sample_file(dir.path());
        let mut bytes = std::fs::read(&good).unwrap();
        let pos = pos % bytes.len();
        bytes[pos] = byte;
        let bad = dir.path().join("corrupt.safetensors");
        std::fs::write(&bad, &bytes).unwrap();
        // Either the header is still valid (a data byte changed) and every
        // tensor reads, or opening fails with an error naming the file.
        match SafetensorsFile::open(&bad) {
            Ok(file) => {
                for name in file.names() {
                    prop_assert!(file.tensor(name).is_ok());
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("corrupt.safetensors"), "{}", e),
        }
    }
}

#[test]
fn truncated_data_reports_expected_and_actual_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let good = sample_file(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("short.safetensors");
    std::fs::write(&bad, &bytes[..bytes.len() - 4]).unwrap();
    match SafetensorsFile::open(&bad).unwrap_err() {
        Error::Truncated {
            expected, actual, ..
        } => {
            assert_eq!(expected, bytes.len() as u64);
            assert_eq!(actual, bytes.len() as u64 - 4);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn wrong_header_is_a_bad_header() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notjson.safetensors");
    let header = b"{not json at all";
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(&bad, &bytes).unwrap();
    let err = SafetensorsFile::open(&bad).unwrap_err();
    assert!(matches!(err, Error::BadHeader { .. }), "{err:?}");
    let missing = SafetensorsFile::open(dir.path().join("absent.safetensors")).unwrap_err();
    assert!(
        matches!(missing, Error::Io { .. }) && missing.to_string().contains("absent.safetensors")
    );
}

#[test]
fn missing_tensor_and_mismatches_name_tensor_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = sample_file(dir.path());
    let ckpt = Checkpoint::open(&good).unwrap();
    let err = ckpt.tensor("c").unwrap_err();
    assert!(matches!(err, Error::MissingTensor { .. }));
    assert!(
        err.to_string().contains("`c`") && err.to_string().contains("good.safetensors"),
        "{err}"
    );
    let err = ckpt.tensor_checked("a", Kind::Float, &[4, 3]).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert!(
        err.to_string().contains("[4, 3]") && err.to_string().contains("[3, 4]"),
        "{err}"
    );
    let err = ckpt.tensor_checked("a", Kind::Half, &[3, 4]).unwrap_err();
    assert!(matches!(err, Error::DtypeMismatch { .. }), "{err:?}");
    assert!(ckpt.tensor_checked("a", Kind::Float, &[3, 4]).is_ok());
}

#[test]
fn interrupted_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.safetensors");
    let a = Tensor::ones([4], (Kind::Float, Device::Cpu));
    let specs = vec![
        TensorSpec::of("a", &a).unwrap(),
        TensorSpec::of("b", &a).unwrap(),
    ];
    {
        let mut w = SafetensorsWriter::create(&path, specs.clone(), &HashMap::new()).unwrap();
        w.write("a", &a).unwrap();
        // Dropped here, as if the process stopped half-way.
    }
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));

    let mut w = SafetensorsWriter::create(&path, specs.clone(), &HashMap::new()).unwrap();
    w.write("a", &a).unwrap();
    let err = w.finish().unwrap_err();
    assert!(err.to_string().contains("`b`"), "{err}");
    assert!(entries(dir.path()).is_empty());

    let mut w = SafetensorsWriter::create(&path, specs, &HashMap::new()).unwrap();
    let err = w.write("b", &a).unwrap_err();
    assert!(
        err.to_string().contains("expected tensor `a` next"),
        "{err}"
    );
    let wrong = Tensor::ones([5], (Kind::Float, Device::Cpu));
    assert!(matches!(
        w.write("a", &wrong).unwrap_err(),
        Error::ShapeMismatch { .. }
    ));
    drop(w);
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn interrupted_sharded_write_leaves_no_shard() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tensor::ones([10], (Kind::Float, Device::Cpu));
    let specs: Vec<TensorSpec> = (0..4)
        .map(|i| TensorSpec::of(format!("w{i}"), &t).unwrap())
        .collect();
    {
        let mut w = ShardedWriter::create(dir.path(), specs, &HashMap::new(), Some(40)).unwrap();
        assert_eq!(w.shard_count(), 4);
        for i in 0..3 {
            w.write(&format!("w{i}"), &t).unwrap();
        }
    }
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn sharded_index_pointing_at_a_wrong_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _ = sample_file(dir.path());
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"weight_map": {"a": "good.safetensors", "zz": "good.safetensors"}}"#,
    )
    .unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::BadIndex { .. }) && err.to_string().contains("`zz`"),
        "{err}"
    );
    std::fs::write(&index, r#"{"weight_map": {"a": "../good.safetensors"}}"#).unwrap();
    assert!(matches!(
        Checkpoint::open(&index).unwrap_err(),
        Error::BadIndex { .. }
    ));
    std::fs::write(&index, r#"{"weight_map": {"a": "gone.safetensors"}}"#).unwrap();
    assert!(
        Checkpoint::open(&index)
            .unwrap_err()
            .to_string()
            .contains("gone.safetensors")
    );
}
