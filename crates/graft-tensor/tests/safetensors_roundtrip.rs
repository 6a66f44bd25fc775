//! Round trips: every dtype and random shapes, single files and shards.

use graft_tensor::safetensors::{
    Checkpoint, INDEX_FILE, SafetensorsFile, load, plan_shards, save, save_sharded,
};
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::{bitwise_equal, proptest_config};
use proptest::prelude::*;
use std::collections::HashMap;

const KINDS: [Kind; 7] = [
    Kind::Double,
    Kind::Float,
    Kind::Half,
    Kind::BFloat16,
    Kind::Int64,
    Kind::Uint8,
    Kind::Bool,
];

fn make(kind: Kind, shape: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let opts = (Kind::Float, Device::Cpu);
    match kind {
        Kind::Int64 | Kind::Uint8 => Tensor::randint(200, shape, (kind, Device::Cpu)),
        Kind::Bool => Tensor::rand(shape, opts).gt(0.5),
        // Extreme magnitudes too, so a lossy path could not hide.
        _ => (Tensor::randn(shape, opts) * 1e3).to_kind(kind),
    }
}

fn shape_strategy() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0i64..6, 0..4)
}

fn metadata() -> HashMap<String, String> {
    HashMap::from([
        ("format".into(), "pt".into()),
        ("note".into(), "ünïcode ✓".into()),
    ])
}

proptest! {
    #![proptest_config(proptest_config(48))]

    #[test]
    fn read_after_write_is_identity_for_every_dtype(
        shapes in prop::collection::vec(shape_strategy(), 1..6),
        seed in 0i64..1000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let tensors: Vec<(String, Tensor)> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("layer.{i}.w"), make(KINDS[i % KINDS.len()], s, seed + i as i64)))
            .collect();
        save(&path, tensors.iter().map(|(n, t)| (n.as_str(), t)), &metadata()).unwrap();
        let file = SafetensorsFile::open(&path).unwrap();
        prop_assert_eq!(file.metadata(), metadata());
        let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        prop_assert_eq!(file.names().iter().map(String::as_str).collect::<Vec<_>>(), names);
        for (name, t) in &tensors {
            let back = file.tensor(name).unwrap();
            prop_assert!(bitwise_equal(&back, t), "{} changed", name);
        }
    }

    #[test]
    fn sharded_write_then_read_equals_the_input(
        shapes in prop::collection::vec(shape_strategy(), 1..8),
        max_shard in prop::option::of(1u64..400),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("model");
        let tensors: Vec<(String, Tensor)> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("t{i}"), make(KINDS[i % 4], s, i as i64)))
            .collect();
        save_sharded(&out, tensors.iter().map(|(n, t)| (n.as_str(), t)), &metadata(), max_shard).unwrap();
        let specs: Vec<_> = tensors
            .iter()
            .map(|(n, t)| graft_tensor::safetensors::TensorSpec::of(n.as_str(), t).unwrap())
            .collect();
        let shards = plan_shards(&specs, max_shard).len();
        prop_assert_eq!(out.join(INDEX_FILE).exists(), shards > 1);
        let files = std::fs::read_dir(&out).unwrap().count();
        prop_assert_eq!(files, if shards > 1 { shards + 1 } else { 1 });
        let ckpt = Checkpoint::open(&out).unwrap();
        prop_assert_eq!(ckpt.files().len(), shards);
        prop_assert_eq!(ckpt.metadata(), metadata());
        let back = load(&out).unwrap();
        prop_assert_eq!(back.len(), tensors.len());
        for ((n1, t1), (n2, t2)) in tensors.iter().zip(&back) {
            prop_assert_eq!(n1, n2);
            prop_assert!(bitwise_equal(t1, t2), "{} changed", n1);
        }
    }
}

#[test]
fn shards_respect_the_size_limit_and_hf_names() {
    let dir = tempfile::tempdir().unwrap();
    let tensors: Vec<(String, Tensor)> = (0..5)
        .map(|i| {
            (
                format!("w{i}"),
                Tensor::ones([10], (Kind::Float, Device::Cpu)) * i,
            )
        })
        .collect();
    // 40 bytes each, 100-byte shards: 2 + 2 + 1.
    save_sharded(
        dir.path(),
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &HashMap::new(),
        Some(100),
    )
    .unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(INDEX_FILE)).unwrap())
            .unwrap();
    assert_eq!(index["metadata"]["total_size"], 200);
    assert_eq!(
        index["weight_map"]["w0"],
        "model-00001-of-00003.safetensors"
    );
    assert_eq!(
        index["weight_map"]["w3"],
        "model-00002-of-00003.safetensors"
    );
    assert_eq!(
        index["weight_map"]["w4"],
        "model-00003-of-00003.safetensors"
    );
    let ckpt = Checkpoint::open(dir.path().join(INDEX_FILE)).unwrap();
    assert_eq!(ckpt.names(), ["w0", "w1", "w2", "w3", "w4"]);
    assert_eq!(ckpt.data_bytes(), 200);
    assert!(
        ckpt.file_of("w4")
            .unwrap()
            .path()
            .ends_with("model-00003-of-00003.safetensors")
    );
}

#[test]
fn non_contiguous_and_sliced_tensors_are_written_as_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.safetensors");
    let base = Tensor::arange(24, (Kind::Float, Device::Cpu)).reshape([4, 6]);
    let transposed = base.tr();
    let sliced = base.narrow(1, 2, 3);
    save(&path, [("t", &transposed), ("s", &sliced)], &HashMap::new()).unwrap();
    let file = SafetensorsFile::open(&path).unwrap();
    assert!(bitwise_equal(
        &file.tensor("t").unwrap(),
        &transposed.contiguous()
    ));
    assert!(bitwise_equal(
        &file.tensor("s").unwrap(),
        &sliced.contiguous()
    ));
}
