//! The typed entry points: a configuration built in Rust equals the same
//! YAML parsed, and merging tensors in memory gives, bit for bit, what the
//! file engine writes for the same tensors.

use graft_merge::config::MergeConfig;
use graft_merge::files::{RunOptions, run_merge};
use graft_merge::{DType, MergeParams, Method, merge_tensors};
use graft_tensor::safetensors::Checkpoint;
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn tensors(seed: i64, kind: Kind) -> HashMap<String, Tensor> {
    graft_tensor::tch::manual_seed(seed);
    let mut m = HashMap::new();
    for i in 0..3 {
        let w = Tensor::randn([6, 5], (Kind::Float, Device::Cpu)).to_kind(kind);
        m.insert(format!("model.layers.{i}.weight"), w);
    }
    m.insert(
        "embed.weight".into(),
        Tensor::randn([4, 5], (Kind::Float, Device::Cpu)).to_kind(kind),
    );
    m.insert(
        "position_ids".into(),
        Tensor::arange(7, (Kind::Int64, Device::Cpu)),
    );
    m
}

fn write(dir: &Path, t: &HashMap<String, Tensor>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut names: Vec<&String> = t.keys().collect();
    names.sort();
    graft_tensor::safetensors::save(
        dir.join("model.safetensors"),
        names.iter().map(|n| (n.as_str(), &t[*n])),
        &Default::default(),
    )
    .unwrap();
}

#[test]
fn a_built_config_equals_the_same_yaml() {
    let yaml = "merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: 1.0, density: 0.5}\n  - model: b\n    parameters: {weight: 0.3}\nout_dtype: bfloat16\n";
    let parsed = MergeConfig::from_yaml(yaml, "t.yml").unwrap();
    let built = MergeConfig::new(Method::Ties, Some("base".into()))
        .model("a", 1.0)
        .density(0.5)
        .model("b", 0.3)
        .out_dtype(DType::BF16);
    assert_eq!(built, parsed);
    assert!(
        MergeConfig::new(Method::Ties, None)
            .model("a", 1.0)
            .validate()
            .is_err()
    );
    let dup = MergeConfig::new(Method::Linear, None)
        .model("a", 1.0)
        .model("a", 2.0);
    assert!(
        dup.validate()
            .unwrap_err()
            .to_string()
            .contains("models[1]")
    );
}

#[test]
fn merging_in_memory_equals_the_file_engine_bit_for_bit() {
    let _rng = graft_tensor::testing::rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for kind in [Kind::Float, Kind::BFloat16] {
        let base = tensors(1, kind);
        let a = tensors(2, kind);
        let b = tensors(3, kind);
        for (name, t) in [("base", &base), ("a", &a), ("b", &b)] {
            write(&root.join(name), t);
        }
        let (pa, pb) = (root.join("a"), root.join("b"));
        for method in [
            Method::Linear,
            Method::TaskArithmetic,
            Method::Ties,
            Method::DareTies,
        ] {
            let mut config = MergeConfig::new(method.clone(), Some(root.join("base")))
                .model(&pa, 0.7)
                .density(0.6)
                .model(&pb, 0.4)
                .density(0.8)
                .params(MergeParams {
                    seed: 5,
                    ..MergeParams::default()
                });
            // mergekit's `dtype` alone also sets the written dtype.
            if method == Method::TaskArithmetic {
                config.dtype = Some(DType::F16);
            }
            let out = root.join(format!("out-{method:?}-{kind:?}"));
            run_merge(&config, &out, &RunOptions::default()).unwrap();
            let merged = merge_tensors(&config, &base, &[&a, &b]).unwrap();
            let ckpt = Checkpoint::open(&out).unwrap();
            assert_eq!(merged.len(), ckpt.names().len());
            for name in ckpt.names() {
                let file = ckpt.tensor(name).unwrap();
                let mem = &merged[name];
                assert_eq!(mem.kind(), file.kind(), "{method:?} {name}");
                assert!(mem.equal(&file), "{method:?} {kind:?}: `{name}` differs");
            }
        }
    }
    // A model missing a tensor, and an integer tensor that differs, are named.
    let base = tensors(1, Kind::Float);
    let mut a = tensors(2, Kind::Float);
    a.remove("embed.weight");
    let config = MergeConfig::new(Method::TaskArithmetic, Some("base".into())).model("a", 1.0);
    let err = merge_tensors(&config, &base, &[&a])
        .unwrap_err()
        .to_string();
    assert!(err.contains("embed.weight"), "{err}");
    let mut a = tensors(2, Kind::Float);
    a.insert(
        "position_ids".into(),
        Tensor::arange(7, (Kind::Int64, Device::Cpu)) + 1,
    );
    let err = merge_tensors(&config, &base, &[&a])
        .unwrap_err()
        .to_string();
    assert!(err.contains("position_ids"), "{err}");
}

/// Tensors on `device` merge to the same bits as on the CPU, and come back
/// on the base's device.
fn merging_device_tensors_equals_the_cpu_merge(device: Device) {
    let _rng = graft_tensor::testing::rng_lock();
    let on = |m: &HashMap<String, Tensor>| -> HashMap<String, Tensor> {
        m.iter()
            .map(|(k, t)| (k.clone(), t.to_device(device)))
            .collect()
    };
    let (base, a, b) = (
        tensors(1, Kind::Float),
        tensors(2, Kind::Float),
        tensors(3, Kind::Float),
    );
    let config = MergeConfig::new(Method::Ties, Some("base".into()))
        .model("a", 0.7)
        .density(0.5)
        .model("b", 0.4);
    let cpu = merge_tensors(&config, &base, &[&a, &b]).unwrap();
    let dev = merge_tensors(&config, &on(&base), &[&on(&a), &on(&b)]).unwrap();
    for (name, t) in &cpu {
        assert_eq!(dev[name].device(), device, "{name}");
        assert!(
            dev[name].to_device(Device::Cpu).equal(t),
            "`{name}` differs"
        );
    }
}

graft_tensor::test_device!(
    merging_device_tensors_equals_the_cpu_merge,
    device_merge_cpu,
    device_merge_cuda
);
