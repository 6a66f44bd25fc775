//! Models: stable parameter names and safetensors save/load.

use graft_nn::models::{ModelConfig, build, load_varstore, save_varstore, varstore_tensors};
use graft_tensor::safetensors::SafetensorsFile;
use graft_tensor::tch::nn::{ModuleT, VarStore};
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::bitwise_equal;
use std::collections::HashMap;

fn names(config: &ModelConfig) -> Vec<String> {
    let vs = VarStore::new(Device::Cpu);
    build(&vs.root(), config).unwrap();
    varstore_tensors(&vs).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn parameter_names_are_stable() {
    assert_eq!(
        names(&ModelConfig::mlp_8x8(10)),
        [
            "head.bias",
            "head.weight",
            "hidden.0.bias",
            "hidden.0.weight",
            "hidden.1.bias",
            "hidden.1.weight"
        ]
    );
    assert_eq!(
        names(&ModelConfig::cnn_28x28(10)),
        [
            "conv.0.bias",
            "conv.0.weight",
            "conv.1.bias",
            "conv.1.weight",
            "fc.bias",
            "fc.weight",
            "head.bias",
            "head.weight"
        ]
    );
}

#[test]
fn output_shapes_match_the_class_count() {
    for (config, input) in [
        (ModelConfig::mlp_8x8(10), [3, 1, 8, 8]),
        (ModelConfig::cnn_8x8(10), [3, 1, 8, 8]),
        (ModelConfig::mlp_28x28(4), [3, 1, 28, 28]),
        (ModelConfig::cnn_28x28(4), [3, 1, 28, 28]),
    ] {
        let vs = VarStore::new(Device::Cpu);
        let model = build(&vs.root(), &config).unwrap();
        let out = model.forward_t(&Tensor::zeros(input, (Kind::Float, Device::Cpu)), false);
        let classes = match &config {
            ModelConfig::Mlp(c) => c.classes,
            ModelConfig::Cnn(c) => c.classes,
        };
        assert_eq!(out.size(), [3, classes]);
    }
}

#[test]
fn save_then_load_restores_every_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.safetensors");
    graft_tensor::tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    build(&vs.root(), &ModelConfig::cnn_8x8(10)).unwrap();
    save_varstore(&vs, &path, &HashMap::from([("format".into(), "pt".into())])).unwrap();
    graft_tensor::tch::manual_seed(2);
    let mut other = VarStore::new(Device::Cpu);
    build(&other.root(), &ModelConfig::cnn_8x8(10)).unwrap();
    load_varstore(&mut other, &path).unwrap();
    for ((n1, a), (_, b)) in varstore_tensors(&vs)
        .iter()
        .zip(varstore_tensors(&other).iter())
    {
        assert!(bitwise_equal(a, b), "{n1}");
    }
    assert_eq!(SafetensorsFile::open(&path).unwrap().names().len(), 8);
}

#[test]
fn loading_into_another_architecture_names_the_tensor_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    let vs = VarStore::new(Device::Cpu);
    build(&vs.root(), &ModelConfig::mlp_8x8(10)).unwrap();
    save_varstore(&vs, &path, &HashMap::new()).unwrap();
    let mut wider = VarStore::new(Device::Cpu);
    build(&wider.root(), &ModelConfig::mlp_8x8(12)).unwrap();
    let before = varstore_tensors(&wider);
    let err = load_varstore(&mut wider, &path).unwrap_err().to_string();
    assert!(
        err.contains("head.bias") && err.contains("mlp.safetensors"),
        "{err}"
    );
    for ((n, a), (_, b)) in before.iter().zip(varstore_tensors(&wider).iter()) {
        assert!(bitwise_equal(a, b), "{n} was changed by a failed load");
    }
    let mut cnn = VarStore::new(Device::Cpu);
    build(&cnn.root(), &ModelConfig::cnn_8x8(10)).unwrap();
    let err = load_varstore(&mut cnn, &path).unwrap_err().to_string();
    assert!(
        err.contains("conv.0.bias") && err.contains("not found"),
        "{err}"
    );
}
