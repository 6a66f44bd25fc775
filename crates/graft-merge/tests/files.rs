//! The checkpoint engine: YAML in, safetensors out, equal to the in-memory maths.

use graft_merge::config::MergeConfig;
use graft_merge::files::{RunOptions, decode_f32, run_merge};
use graft_merge::{ModelValues, merge_segment};
use graft_tensor::safetensors::{Checkpoint, INDEX_FILE, save, save_sharded};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const NAMES: [&str; 4] = [
    "model.layers.0.mlp.weight",
    "model.layers.1.mlp.weight",
    "model.norm.weight",
    "model.position_ids",
];

/// A tiny "model": two bf16 layers, an f32 norm and an int64 buffer; fine-tunes add seeded noise.
fn write_model(dir: &Path, seed: i64, noise: f64, sharded: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    graft_tensor::tch::manual_seed(0);
    let base = [
        Tensor::randn([4, 6], (Kind::Float, Device::Cpu)),
        Tensor::randn([4, 6], (Kind::Float, Device::Cpu)),
        Tensor::ones([6], (Kind::Float, Device::Cpu)),
    ];
    graft_tensor::tch::manual_seed(seed);
    // The int64 buffer sits between float tensors, as buffers do in real checkpoints.
    let tensors: Vec<(String, Tensor)> = vec![
        (
            NAMES[0].into(),
            (&base[0] + Tensor::randn([4, 6], (Kind::Float, Device::Cpu)) * noise)
                .to_kind(Kind::BFloat16),
        ),
        (
            NAMES[3].into(),
            Tensor::arange(6, (Kind::Int64, Device::Cpu)),
        ),
        (
            NAMES[1].into(),
            (&base[1] + Tensor::randn([4, 6], (Kind::Float, Device::Cpu)) * noise)
                .to_kind(Kind::BFloat16),
        ),
        (
            NAMES[2].into(),
            &base[2] + Tensor::randn([6], (Kind::Float, Device::Cpu)) * noise,
        ),
    ];
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    if sharded {
        save_sharded(
            dir,
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            &meta,
            Some(60),
        )
        .unwrap();
    } else {
        save(
            dir.join("model.safetensors"),
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            &meta,
        )
        .unwrap();
    }
    std::fs::write(dir.join("config.json"), format!("{{\"seed\": {seed}}}")).unwrap();
    dir.to_path_buf()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    write_model(&root.join("base"), 0, 0.0, false);
    write_model(&root.join("ft1"), 1, 0.1, true);
    write_model(&root.join("ft2"), 2, 0.1, false);
    write_model(&root.join("ft3"), 3, 0.1, false);
    Fixture { _tmp: tmp, root }
}

fn yaml(root: &Path, body: &str) -> MergeConfig {
    let text = body.replace("ROOT", &root.display().to_string());
    MergeConfig::from_yaml(&text, "test.yml").unwrap()
}

fn read_all(dir: &Path) -> HashMap<String, Vec<f32>> {
    let ckpt = Checkpoint::open(dir).unwrap();
    ckpt.names()
        .iter()
        .filter_map(|n| {
            let spec = ckpt.spec(n).unwrap();
            decode_f32(spec.dtype, ckpt.file_of(n).unwrap().bytes(n).unwrap())
                .map(|v| (n.clone(), v))
        })
        .collect()
}

const TIES: &str = "merge_method: ties
base_model: ROOT/base
models:
  - model: ROOT/ft1
    parameters: {weight: 0.5, density: 0.5}
  - model: ROOT/ft2
    parameters: {weight: [1.0, 0.2], density: 0.5}
  - model: ROOT/ft3
    parameters:
      weight: [{filter: norm, value: 2.0}, {value: 0.7}]
      density: 0.6
parameters: {normalize: true}
dtype: float32
";

#[test]
fn checkpoint_merge_equals_the_in_memory_maths_tensor_by_tensor() {
    let fx = fixture();
    for method_yaml in [
        TIES.to_string(),
        TIES.replace("merge_method: ties", "merge_method: dare_ties"),
        TIES.replace("merge_method: ties", "merge_method: task_arithmetic"),
        TIES.replace("merge_method: ties", "merge_method: linear"),
    ] {
        let config = yaml(&fx.root, &method_yaml);
        let out = fx.root.join("out");
        let report = run_merge(
            &config,
            &out,
            &RunOptions {
                max_shard_bytes: Some(64),
                threads: 2,
                chunk_elems: 5,
                force: true,
                copy_unmergeable: false,
            },
        )
        .unwrap();
        assert_eq!((report.merged, report.copied), (3, 1));
        let merged = read_all(&out);
        let inputs: Vec<HashMap<String, Vec<f32>>> = ["ft1", "ft2", "ft3"]
            .iter()
            .map(|m| read_all(&fx.root.join(m)))
            .collect();
        let base = read_all(&fx.root.join("base"));
        for (i, name) in NAMES[..3].iter().enumerate() {
            let layer = if i < 2 { Some((i, 2)) } else { None };
            let deltas: Vec<ModelValues> = config
                .models
                .iter()
                .zip(&inputs)
                .map(|(m, v)| ModelValues {
                    id: m.path.display().to_string(),
                    weight: m.weight.resolve(name, layer).unwrap() as f32,
                    density: m.density.resolve(name, layer).unwrap(),
                    values: &v[*name],
                })
                .collect();
            let base_arg: Option<&[f32]> = if config.method == graft_merge::Method::Linear {
                None
            } else {
                Some(&base[*name])
            };
            let expect =
                merge_segment(&config.method, &config.params, name, base_arg, &deltas).unwrap();
            // Output dtype float32 (the YAML's dtype): bit for bit.
            assert!(
                merged[*name]
                    .iter()
                    .zip(&expect)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name} in {method_yaml}"
            );
        }
        let ckpt = Checkpoint::open(&out).unwrap();
        assert!(
            ckpt.files().len() > 1 && out.join(INDEX_FILE).is_file(),
            "64-byte shards give a sharded output"
        );
        assert_eq!(ckpt.tensor("model.position_ids").unwrap().size(), [6]);
        assert!(ckpt.metadata()["graft.merge"].contains("\"seed\":0"));
        assert_eq!(
            std::fs::read_to_string(out.join("config.json")).unwrap(),
            "{\"seed\": 0}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn out_dtype_rounds_and_the_base_dtype_is_kept_by_default() {
    let fx = fixture();
    let config = yaml(
        &fx.root,
        &TIES.replace("dtype: float32\n", "out_dtype: bfloat16\n"),
    );
    run_merge(
        &config,
        &fx.root.join("bf16"),
        &RunOptions {
            ..RunOptions::default()
        },
    )
    .unwrap();
    let ckpt = Checkpoint::open(fx.root.join("bf16")).unwrap();
    assert_eq!(
        ckpt.spec("model.norm.weight").unwrap().dtype,
        graft_tensor::safetensors::Dtype::BF16
    );
    let config = yaml(&fx.root, &TIES.replace("dtype: float32\n", ""));
    run_merge(
        &config,
        &fx.root.join("native"),
        &RunOptions {
            ..RunOptions::default()
        },
    )
    .unwrap();
    let ckpt = Checkpoint::open(fx.root.join("native")).unwrap();
    assert_eq!(
        ckpt.spec("model.layers.0.mlp.weight").unwrap().dtype,
        graft_tensor::safetensors::Dtype::BF16
    );
    assert_eq!(
        ckpt.spec("model.norm.weight").unwrap().dtype,
        graft_tensor::safetensors::Dtype::F32
    );
}

#[test]
fn global_scope_differs_from_tensor_scope_and_uses_one_threshold() {
    let fx = fixture();
    let body = "merge_method: ties
base_model: ROOT/base
models:
  - {model: ROOT/ft1, parameters: {density: 0.3}}
  - {model: ROOT/ft2, parameters: {density: 0.3}}
";
    let per_tensor = yaml(&fx.root, body);
    let global = yaml(&fx.root, &format!("{body}scope: global\n"));
    let opts = RunOptions {
        ..RunOptions::default()
    };
    run_merge(&per_tensor, &fx.root.join("t"), &opts).unwrap();
    run_merge(&global, &fx.root.join("g"), &opts).unwrap();
    let (t, g) = (read_all(&fx.root.join("t")), read_all(&fx.root.join("g")));
    assert!(
        NAMES[..3].iter().any(|n| t[*n] != g[*n]),
        "global and per-tensor trims should differ somewhere"
    );
}

fn expect_err(fx: &Fixture, body: &str, needle: &str) {
    let text = body.replace("ROOT", &fx.root.display().to_string());
    let result = MergeConfig::from_yaml(&text, "bad.yml").and_then(|c| {
        run_merge(
            &c,
            &fx.root.join("never"),
            &RunOptions {
                ..RunOptions::default()
            },
        )
    });
    let err = result.unwrap_err().to_string();
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(
        !fx.root.join("never").exists(),
        "a failed merge must leave no output"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&fx.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".graft-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary output left behind");
}

#[test]
fn bad_configs_and_mismatched_checkpoints_are_clear_errors_and_leave_nothing() {
    let fx = fixture();
    expect_err(
        &fx,
        "merge_method: slerp\nbase_model: ROOT/base\nmodels: [{model: ROOT/ft1}]\n",
        "`slerp` is not supported",
    );
    expect_err(&fx, "merge_method: ties\nslices: []\n", "`slices`");
    expect_err(
        &fx,
        "merge_method: ties\nbase_model: ROOT/base\ntokenizer_source: union\nmodels: [{model: ROOT/ft1}]\n",
        "`tokenizer_source`",
    );
    expect_err(
        &fx,
        "merge_method: ties\nbase_model: ROOT/base\nmodels: [{model: ROOT/ft1, parameters: {dens1ty: 0.5}}]\n",
        "models[0].parameters.dens1ty",
    );
    expect_err(
        &fx,
        "merge_method: ties\nbase_model: ROOT/base\nmodels: [{model: ROOT/ft1, parameters: {density: 1.5}}]\n",
        "density 1.5",
    );
    expect_err(
        &fx,
        "merge_method: ties\nmodels: [{model: ROOT/ft1}]\n",
        "base_model",
    );
    expect_err(
        &fx,
        "merge_method: ties\nbase_model: ROOT/base\nmodels: [{model: ROOT/missing}]\n",
        "missing",
    );
    // A model with another shape for one tensor, and one with an extra tensor.
    let odd = fx.root.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    let t = Tensor::zeros([3], (Kind::Float, Device::Cpu));
    let mut tensors: Vec<(String, Tensor)> = Checkpoint::open(fx.root.join("ft2"))
        .unwrap()
        .names()
        .iter()
        .map(|n| {
            (
                n.clone(),
                Checkpoint::open(fx.root.join("ft2"))
                    .unwrap()
                    .tensor(n)
                    .unwrap(),
            )
        })
        .collect();
    let norm = tensors
        .iter()
        .position(|(n, _)| n == "model.norm.weight")
        .unwrap();
    tensors[norm].1 = t.shallow_clone();
    save(
        odd.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &HashMap::new(),
    )
    .unwrap();
    expect_err(
        &fx,
        "merge_method: task_arithmetic\nbase_model: ROOT/base\nmodels: [{model: ROOT/odd}]\n",
        "shape [3]",
    );
    let extra = fx.root.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    tensors[norm].1 = Tensor::ones([6], (Kind::Float, Device::Cpu));
    tensors.push(("lm_head.weight".into(), t));
    save(
        extra.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &HashMap::new(),
    )
    .unwrap();
    expect_err(
        &fx,
        "merge_method: task_arithmetic\nbase_model: ROOT/base\nmodels: [{model: ROOT/extra}]\n",
        "lm_head.weight",
    );
    // A truncated file, a non-finite value and another dtype.
    let cut = fx.root.join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    let whole = std::fs::read(fx.root.join("ft2/model.safetensors")).unwrap();
    std::fs::write(cut.join("model.safetensors"), &whole[..whole.len() - 10]).unwrap();
    expect_err(
        &fx,
        "merge_method: task_arithmetic\nbase_model: ROOT/base\nmodels: [{model: ROOT/cut}]\n",
        "cut",
    );
    let nan = fx.root.join("nan");
    std::fs::create_dir_all(&nan).unwrap();
    tensors.pop();
    tensors[norm].1 = Tensor::ones([6], (Kind::Float, Device::Cpu)) * f64::NAN;
    save(
        nan.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &HashMap::new(),
    )
    .unwrap();
    expect_err(
        &fx,
        "merge_method: task_arithmetic\nbase_model: ROOT/base\nmodels: [{model: ROOT/nan}]\n",
        "non-finite value NaN",
    );
    let f16 = fx.root.join("f16");
    std::fs::create_dir_all(&f16).unwrap();
    tensors[norm].1 = Tensor::ones([6], (Kind::Half, Device::Cpu));
    save(
        f16.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &HashMap::new(),
    )
    .unwrap();
    expect_err(
        &fx,
        "merge_method: task_arithmetic\nbase_model: ROOT/base\nmodels: [{model: ROOT/f16}]\n",
        "dtype F16",
    );
}

#[test]
fn thread_count_and_chunk_size_change_no_bit() {
    let fx = fixture();
    for body in [
        TIES.to_string(),
        TIES.replace("merge_method: ties", "merge_method: dare_ties"),
    ] {
        let config = yaml(&fx.root, &body);
        let mut files = Vec::new();
        for (threads, chunk_elems) in [(1, 1 << 20), (3, 7), (2, 1)] {
            let out = fx.root.join(format!("threads{threads}"));
            run_merge(
                &config,
                &out,
                &RunOptions {
                    max_shard_bytes: None,
                    threads,
                    chunk_elems,
                    ..RunOptions::default()
                },
            )
            .unwrap();
            files.push(std::fs::read(out.join("model.safetensors")).unwrap());
            std::fs::remove_dir_all(&out).unwrap();
        }
        assert!(
            files.iter().all(|f| *f == files[0]),
            "thread counts or chunk sizes changed the bytes"
        );
    }
}

/// The float tensors of `dir`, decoded and flattened in the checkpoint's order.
fn flat_in_order(dir: &Path) -> Vec<f32> {
    let ckpt = Checkpoint::open(dir).unwrap();
    let mut out = Vec::new();
    for spec in ckpt.specs().unwrap() {
        if let Some(v) = decode_f32(
            spec.dtype,
            ckpt.file_of(&spec.name).unwrap().bytes(&spec.name).unwrap(),
        ) {
            out.extend(v);
        }
    }
    out
}

#[test]
fn streamed_global_scope_equals_the_in_memory_flattened_merge_at_any_chunk_size() {
    let fx = fixture();
    let root = fx.root.display().to_string();
    for (extra, weight) in [
        ("parameters: {normalize: true}\n", 0.7f32),
        ("compat: paper\ntrim_rule: reference\n", 1.0),
        ("compat: paper\n", 1.0),
    ] {
        let body = format!(
            "merge_method: ties
base_model: ROOT/base
models:
  - {{model: ROOT/ft1, parameters: {{weight: {weight}, density: 0.3}}}}
  - {{model: ROOT/ft2, parameters: {{weight: {weight}, density: 0.5}}}}
  - {{model: ROOT/ft3, parameters: {{weight: {weight}, density: 0.2}}}}
scope: global
dtype: float32
{extra}"
        );
        let config = yaml(&fx.root, &body);
        let base = flat_in_order(&fx.root.join("base"));
        let values: Vec<Vec<f32>> = ["ft1", "ft2", "ft3"]
            .iter()
            .map(|m| flat_in_order(&fx.root.join(m)))
            .collect();
        let deltas: Vec<ModelValues> = ["ft1", "ft2", "ft3"]
            .iter()
            .zip(&values)
            .zip([0.3, 0.5, 0.2])
            .map(|((m, v), density)| ModelValues {
                id: format!("{root}/{m}"),
                weight,
                density,
                values: v,
            })
            .collect();
        let expect = merge_segment(
            &config.method,
            &config.params,
            "__global__",
            Some(&base),
            &deltas,
        )
        .unwrap();
        for chunk in [1usize, 5, 23, 1 << 20] {
            let out = fx.root.join(format!("g{chunk}{}", extra.len()));
            let opts = RunOptions {
                chunk_elems: chunk,
                ..RunOptions::default()
            };
            run_merge(&config, &out, &opts).unwrap();
            let got = flat_in_order(&out);
            assert_eq!(got.len(), expect.len());
            assert!(
                got.iter()
                    .zip(&expect)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{extra} chunk {chunk}: {got:?} vs {expect:?}"
            );
            let ckpt = Checkpoint::open(&out).unwrap();
            let ids = ckpt
                .file_of(NAMES[3])
                .unwrap()
                .bytes(NAMES[3])
                .unwrap()
                .to_vec();
            let base_ckpt = Checkpoint::open(fx.root.join("base")).unwrap();
            assert_eq!(
                ids,
                base_ckpt
                    .file_of(NAMES[3])
                    .unwrap()
                    .bytes(NAMES[3])
                    .unwrap()
            );
        }
    }
}
