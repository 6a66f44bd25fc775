//! `graft unlearn ssd` end to end on a small MLP saved as graft-nn saves
//! models: the edited model keeps its format and metadata and forgets the
//! class, the report and importances are written, and bad input is a
//! one-line error naming the file and what is wrong, with no output left.

use graft_nn::Dataset;
use graft_nn::models::{MlpConfig, ModelConfig, build, save_varstore};
use graft_nn::train::{TrainConfig, train_classifier};
use graft_tensor::safetensors::Checkpoint;
use graft_tensor::tch::{Device, Kind, Tensor, nn::VarStore};
use std::collections::HashMap;
use std::path::Path;

mod common;
use common::*;

/// `graft unlearn ssd` on the files in `d` with the forget set given by
/// `forget` (e.g. `["--forget", FILE]`), α, λ and any `extra` arguments.
fn ssd_args(
    d: &Path,
    forget: [&str; 2],
    alpha: &str,
    lambda: &str,
    extra: &[&str],
    out: &str,
) -> Vec<String> {
    let s = |p: &str| d.join(p).to_str().unwrap().to_string();
    let mut args: Vec<String> = vec![
        "unlearn".into(),
        "ssd".into(),
        "--model".into(),
        s("model.safetensors"),
        "--data".into(),
        s("data.safetensors"),
        forget[0].into(),
        if forget[0] == "--forget" {
            s(forget[1])
        } else {
            forget[1].into()
        },
        "--alpha".into(),
        alpha.into(),
        "--lambda".into(),
        lambda.into(),
        "--out".into(),
        s(out),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn save_data(path: &Path, x: &Tensor, y: &Tensor) {
    graft_tensor::safetensors::save(path, [("x", x), ("y", y)], &HashMap::new()).unwrap();
}

/// libtorch's generator is global: tests that seed it run one at a time.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Five Gaussian classes in 4-D, an MLP trained on them (one
/// thread, seeded), and the files.
fn setup(dir: &Path) -> (Tensor, Tensor) {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    graft_tensor::tch::set_num_threads(1);
    graft_tensor::seed::seed_everything(0);
    let y = Tensor::arange(500, (Kind::Int64, Device::Cpu)).remainder(5);
    let centres = Tensor::randn([5, 4], (Kind::Float, Device::Cpu)) * 3.0;
    let x = centres.index_select(0, &y) + Tensor::randn([500, 4], (Kind::Float, Device::Cpu)) * 0.5;
    let data = Dataset::new(x.shallow_clone(), y.shallow_clone(), 5, "blobs").unwrap();
    let config = ModelConfig::Mlp(MlpConfig {
        input: 4,
        hidden: vec![64],
        classes: 5,
    });
    let vs = VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &config).unwrap();
    train_classifier(
        &model,
        &vs,
        &data,
        None,
        &TrainConfig {
            epochs: 30,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let meta = HashMap::from([(
        "graft.model".to_string(),
        serde_json::to_string(&config).unwrap(),
    )]);
    save_varstore(&vs, &dir.join("model.safetensors"), &meta).unwrap();
    save_data(&dir.join("data.safetensors"), &x, &y);
    let forget_idx = y.eq(2).nonzero().squeeze_dim(1);
    save_data(
        &dir.join("forget.safetensors"),
        &x.index_select(0, &forget_idx),
        &y.index_select(0, &forget_idx),
    );
    (x, y)
}

#[test]
fn ssd_forgets_a_class_and_writes_model_report_and_importances() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _ = setup(d);
    let run = ssd_args(
        d,
        ["--forget", "forget.safetensors"],
        "2",
        "1",
        &["--mode", "per-sample", "--save-importances"],
        "out",
    );
    let msg = ok(&strs(&run));
    assert!(msg.contains("dampened") && msg.contains("wrote"), "{msg}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/report.json")).unwrap()).unwrap();
    let acc = &report["accuracy"];
    eprintln!("accuracy before and after SSD: {acc}");
    assert!(acc["forget_before"].as_f64().unwrap() > 0.9, "{acc}");
    assert!(
        acc["forget_after"].as_f64().unwrap() < 0.2,
        "the class is forgotten: {acc}"
    );
    assert!(
        acc["retain_after"].as_f64().unwrap() > 0.8,
        "the rest is kept: {acc}"
    );
    let layers = report["ssd"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "hidden.0 and head, weight and bias");
    assert!(layers.iter().any(|l| l["selected"].as_i64().unwrap() > 0));
    let before = Checkpoint::open(d.join("model.safetensors")).unwrap();
    let after = Checkpoint::open(d.join("out/model.safetensors")).unwrap();
    assert_eq!(before.names(), after.names());
    assert_eq!(
        before.metadata()["graft.model"],
        after.metadata()["graft.model"]
    );
    assert!(after.metadata().contains_key("graft.unlearn"));
    let imp = Checkpoint::open(d.join("out/importances.safetensors")).unwrap();
    assert!(imp.contains("full/head.weight") && imp.contains("forget/hidden.0.bias"));
    // The edited model loads back with the library and is the one reported.
    let file = graft_unlearn::files::load_model(&d.join("out/model.safetensors")).unwrap();
    let forget =
        graft_unlearn::files::load_samples(&d.join("forget.safetensors"), &[4], 5).unwrap();
    let a = graft_nn::train::evaluate(&file.model, &forget, 512)
        .unwrap()
        .accuracy;
    assert_eq!(a, acc["forget_after"].as_f64().unwrap());
    // --forget-class: the same forget set, named by its class.
    let by_class = ssd_args(
        d,
        ["--forget-class", "2"],
        "2",
        "1",
        &["--mode", "per-sample"],
        "by_class",
    );
    ok(&strs(&by_class));
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("by_class/report.json")).unwrap())
            .unwrap();
    assert_eq!(
        a["accuracy"], report["accuracy"],
        "same forget set, same result"
    );
    assert_eq!(a["ssd"]["selected"], report["ssd"]["selected"]);
    let err = fails(&strs(&ssd_args(
        d,
        ["--forget-class", "9"],
        "2",
        "1",
        &[],
        "x",
    )));
    assert!(err.contains("--forget-class 9"), "{err}");
    // An existing output is kept unless --force.
    let err = fails(&strs(&ssd_args(
        d,
        ["--forget", "forget.safetensors"],
        "2",
        "1",
        &[],
        "out",
    )));
    assert!(
        err.contains("--force") || err.contains("not empty"),
        "{err}"
    );
}

#[test]
fn bad_input_is_named_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = setup(d);
    let s = |p: &str| d.join(p).to_str().unwrap().to_string();
    // A forget sample that is not in the data.
    save_data(
        &d.join("stranger.safetensors"),
        &(x.narrow(0, 0, 2) + 100.0),
        &y.narrow(0, 0, 2),
    );
    // Labels outside the head, wrong feature shape, empty set, f64 inputs.
    save_data(
        &d.join("label.safetensors"),
        &x.narrow(0, 0, 2),
        &Tensor::from_slice(&[0i64, 7]),
    );
    save_data(&d.join("shape.safetensors"), &x.narrow(1, 0, 3), &y);
    save_data(
        &d.join("empty.safetensors"),
        &x.narrow(0, 0, 0),
        &y.narrow(0, 0, 0),
    );
    save_data(&d.join("double.safetensors"), &x.to_kind(Kind::Double), &y);
    let run = |forget: &str, alpha: &str| {
        fails(&strs(&ssd_args(
            d,
            ["--forget", forget],
            alpha,
            "1",
            &[],
            "out",
        )))
    };
    let cases = [
        (
            "stranger.safetensors",
            "1",
            vec!["stranger.safetensors", "not in", "sample 0"],
        ),
        (
            "label.safetensors",
            "1",
            vec!["label.safetensors", "7", "5 classes"],
        ),
        (
            "shape.safetensors",
            "1",
            vec!["shape.safetensors", "[3]", "[4]"],
        ),
        ("empty.safetensors", "1", vec!["empty"]),
        ("double.safetensors", "1", vec!["double.safetensors", "f32"]),
        ("forget.safetensors", "0", vec!["alpha", "> 0"]),
        ("forget.safetensors", "-2", vec!["alpha"]),
    ];
    for (file, alpha, needles) in cases {
        let err = run(file, alpha);
        for n in needles {
            assert!(err.contains(n), "{file} alpha {alpha}: `{n}` not in {err}");
        }
        assert!(!d.join("out").exists(), "{file}: no output after an error");
    }
    // A model file without graft's metadata: the data file given as the model.
    let mut args = ssd_args(d, ["--forget", "forget.safetensors"], "1", "1", &[], "out");
    args[3] = s("data.safetensors");
    let err = fails(&strs(&args));
    assert!(err.contains("graft.model"), "{err}");
}
