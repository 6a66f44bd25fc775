//! The benchmark's inputs: a synthetic Llama-shaped base and its
//! fine-tunes in bf16, and the large-tensor checkpoints of the memory bound.

use graft_tensor::safetensors::{Dtype, ParallelWriter, ShardedWriter, TensorSpec};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A Llama-style shape.
pub struct Shape {
    pub hidden: i64,
    pub intermediate: i64,
    pub layers: i64,
    pub heads: i64,
    pub vocab: i64,
}

fn llama_tensors(s: &Shape) -> Vec<(String, Vec<i64>)> {
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![s.vocab, s.hidden],
    )];
    for i in 0..s.layers {
        let p = format!("model.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            t.push((
                format!("{p}.self_attn.{proj}.weight"),
                vec![s.hidden, s.hidden],
            ));
        }
        t.push((
            format!("{p}.mlp.gate_proj.weight"),
            vec![s.intermediate, s.hidden],
        ));
        t.push((
            format!("{p}.mlp.up_proj.weight"),
            vec![s.intermediate, s.hidden],
        ));
        t.push((
            format!("{p}.mlp.down_proj.weight"),
            vec![s.hidden, s.intermediate],
        ));
        t.push((format!("{p}.input_layernorm.weight"), vec![s.hidden]));
        t.push((
            format!("{p}.post_attention_layernorm.weight"),
            vec![s.hidden],
        ));
    }
    t.push(("model.norm.weight".into(), vec![s.hidden]));
    t.push(("lm_head.weight".into(), vec![s.vocab, s.hidden]));
    t
}

fn exists(dir: &Path) -> bool {
    dir.join("model.safetensors.index.json").is_file() || dir.join("model.safetensors").is_file()
}

/// Writes a base (seed 0) or a fine-tune (base + Student-t noise, ν = 3,
/// scale 1e-3 × RMS) in bf16, in 1 GB shards; kept for later runs.
pub fn write_llama(dir: &Path, s: &Shape, noise_seed: Option<i64>) {
    if exists(dir) {
        return;
    }
    std::fs::create_dir_all(dir).expect("model dir");
    let tensors = llama_tensors(s);
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|(n, shape)| TensorSpec {
            name: n.clone(),
            dtype: Dtype::BF16,
            shape: shape.iter().map(|&d| d as usize).collect(),
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let mut w = ShardedWriter::create(dir, specs, &meta, Some(1_000_000_000)).expect("writer");
    for (i, (name, shape)) in tensors.iter().enumerate() {
        graft_tensor::tch::manual_seed(i as i64);
        let base = if name.ends_with("layernorm.weight") || name == "model.norm.weight" {
            Tensor::ones(shape.as_slice(), (Kind::Float, Device::Cpu))
        } else {
            Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * 0.02
        };
        let value = match noise_seed {
            None => base,
            Some(seed) => {
                graft_tensor::tch::manual_seed(seed * 100_003 + i as i64);
                let z = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu));
                let chi2 = (0..3)
                    .map(|_| Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)).square())
                    .fold(
                        Tensor::zeros(shape.as_slice(), (Kind::Float, Device::Cpu)),
                        |a, b| a + b,
                    );
                let t = z / (chi2 / 3.0).sqrt();
                let rms = base.square().mean(Kind::Float).sqrt();
                &base + t * rms * 1e-3
            }
        };
        w.write(name, &value.to_kind(Kind::BFloat16))
            .expect("write");
    }
    w.finish().expect("finish");
    let config = format!(
        r#"{{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": {}, "intermediate_size": {}, "num_hidden_layers": {}, "num_attention_heads": {}, "num_key_value_heads": {}, "vocab_size": {}, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "tie_word_embeddings": false, "torch_dtype": "bfloat16"}}"#,
        s.hidden, s.intermediate, s.layers, s.heads, s.heads, s.vocab
    );
    std::fs::write(dir.join("config.json"), config).expect("config");
}

/// The memory bound's checkpoints: an embedding and a head of
/// `rows × cols` f32 each and two small layers.
pub const BOUND_TENSORS: [&str; 4] = [
    "model.embed_tokens.weight",
    "model.layers.0.mlp.weight",
    "model.norm.weight",
    "lm_head.weight",
];

/// The shape of one of [`BOUND_TENSORS`].
pub fn bound_shape(name: &str, rows: usize, cols: usize) -> Vec<usize> {
    match name {
        "model.layers.0.mlp.weight" => vec![cols, cols],
        "model.norm.weight" => vec![cols],
        _ => vec![rows, cols],
    }
}

/// Element `i` of tensor `t` of model `m` (0 = base): a cheap, finite,
/// irregular pattern (no tensor of the bound needs real weights).
pub fn bound_value(m: u32, t: usize, i: usize) -> f32 {
    let h = (i as u32 ^ (t as u32).wrapping_mul(0x9e37_79b9)).wrapping_mul(0x85eb_ca6b);
    let base = ((h >> 8) as f32 / 16_777_216.0 - 0.5) * 0.04;
    let delta = (((h.rotate_left(13) ^ m.wrapping_mul(0xc2b2_ae35)) >> 8) as f32 / 16_777_216.0
        - 0.5)
        * 1e-3;
    if m == 0 { base } else { base + delta }
}

/// Writes model `m` of the memory bound, a chunk at a time; kept for later runs.
pub fn write_bound_model(dir: &Path, m: u32, rows: usize, cols: usize) -> PathBuf {
    if exists(dir) {
        return dir.to_path_buf();
    }
    let specs = BOUND_TENSORS
        .iter()
        .map(|n| TensorSpec {
            name: (*n).into(),
            dtype: Dtype::F32,
            shape: bound_shape(n, rows, cols),
        })
        .collect();
    let w = ParallelWriter::create(dir, specs, &HashMap::new(), None).expect("writer");
    let chunk = 1 << 20;
    for (t, name) in BOUND_TENSORS.iter().enumerate() {
        let n: usize = bound_shape(name, rows, cols).iter().product();
        let mut bytes = Vec::with_capacity(chunk * 4);
        for start in (0..n).step_by(chunk) {
            bytes.clear();
            for i in start..(start + chunk).min(n) {
                bytes.extend_from_slice(&bound_value(m, t, i).to_le_bytes());
            }
            w.write_range(name, (start * 4) as u64, &bytes)
                .expect("write");
        }
    }
    w.finish().expect("finish");
    dir.to_path_buf()
}
