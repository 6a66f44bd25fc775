//! Adapters applied to checkpoint files, with no model code: merge a PEFT
//! adapter directory into a safetensors checkpoint (`merge_and_unload` on
//! disk, one tensor in memory at a time, sharded like the base) and
//! summarise an adapter directory (`graft adapter merge` / `inspect`).
//!
//! Each adapted layer is found by its weight `<path>.weight` in the base;
//! when the adapter's paths and the base's keys differ by a leading prefix
//! (`bert.` present in one and absent in the other), the unique base key
//! that matches at a `.` boundary is used, and an ambiguous or missing one
//! is an error naming both sides. The layer kind comes from the tensors:
//! `lora_embedding_*` is an embedding, a 4-D weight a convolution (groups
//! from the shapes), a 2-D weight `[out, in]` a Linear and `[in, out]` a
//! GPT-2 Conv1D (a square weight is a Conv1D only for GPT-2-style models,
//! `model_type` `gpt2`, as `config.json` says).

use crate::config::LoraConfig;
use crate::io::{CONFIG_FILE, WEIGHTS_FILE, adapter_dir};
use crate::layer::{BaseLayer, ConvGeometry, LayerKind};
use crate::methods::ADAPTER_SUFFIXES;
use crate::model::KEY_PREFIX;
use crate::targets::rank_and_alpha;
use crate::{Error, Result};
use graft_tensor::atomic::StagingDir;
use graft_tensor::output::OutputRules;
use graft_tensor::safetensors::{Checkpoint, ShardedWriter};
use graft_tensor::tch::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One adapter directory: its configuration and tensors by module path.
pub struct AdapterFiles {
    /// `adapter_config.json`.
    pub config: LoraConfig,
    /// Module path → (suffix → tensor).
    pub modules: BTreeMap<String, BTreeMap<String, Tensor>>,
}

/// Reads the adapter in folder `dir`.
pub fn read_adapter(dir: &Path) -> Result<AdapterFiles> {
    let config_path = dir.join(CONFIG_FILE);
    let text = graft_tensor::input::read_text(&config_path, graft_tensor::input::CONFIG_LIMIT)?;
    let config = LoraConfig::from_json(&text, &config_path.display().to_string())?;
    let file = Checkpoint::open(dir.join(WEIGHTS_FILE))?;
    // Adapter tensors, then a `modules_to_save` copy's own `weight` / `bias`.
    let suffixes = ADAPTER_SUFFIXES.iter().chain(&["weight", "bias"]);
    let mut modules: BTreeMap<String, BTreeMap<String, Tensor>> = BTreeMap::new();
    for key in file.names() {
        let short = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
        let Some(suffix) = suffixes.clone().find(|s| short.ends_with(&format!(".{s}"))) else {
            return Err(Error::Keys {
                file: dir.join(WEIGHTS_FILE),
                problem: "unexpected",
                keys: vec![key.clone()],
            });
        };
        let path = &short[..short.len() - suffix.len() - 1];
        modules
            .entry(path.to_string())
            .or_default()
            .insert(suffix.to_string(), file.tensor(key)?);
    }
    Ok(AdapterFiles { config, modules })
}

/// What [`merge_into_checkpoint`] did.
#[derive(Debug, Clone, Default)]
pub struct MergeSummary {
    /// Adapter module path → the base key it was merged into.
    pub merged: Vec<(String, String)>,
    /// Base keys replaced by a `modules_to_save` copy.
    pub replaced: Vec<String>,
    /// Tensors of `modules_to_save` modules the base lacked (a new head), added.
    pub added: Vec<String>,
    /// Base keys were renamed with this prefix (empty: kept).
    pub prefix: String,
}

/// The base key of adapter module `path` with `suffix` (`weight`, `bias`).
fn resolve(base: &Checkpoint, path: &str, suffix: &str, origin: &Path) -> Result<Option<String>> {
    let exact = format!("{path}.{suffix}");
    if base.contains(&exact) {
        return Ok(Some(exact));
    }
    let hits: Vec<&String> = base
        .names()
        .iter()
        .filter(|k| {
            k.strip_suffix(&format!(".{suffix}")).is_some_and(|stem| {
                stem.ends_with(&format!(".{path}")) || path.ends_with(&format!(".{stem}"))
            })
        })
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(Error::Unsupported {
            layer: path.into(),
            what: format!(
                "the adapter's module matches several base tensors in {} ({}); rename the keys so one matches",
                origin.display(),
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Merges the adapter in `adapter` (PEFT layout; `name` picks a
/// sub-folder's adapter, `default` the root's) into the checkpoint `base`
/// and writes the result to `out` under `rules`, sharded like the base.
/// `safe` refuses non-finite merged weights.
pub fn merge_into_checkpoint(
    base: &Path,
    adapter: &Path,
    name: &str,
    out: &Path,
    rules: &OutputRules,
    safe: bool,
) -> Result<MergeSummary> {
    let files = read_adapter(&adapter_dir(adapter, name))?;
    let ckpt = Checkpoint::open(base)?;
    let gpt2 = std::fs::read_to_string(base.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| {
            v["model_type"]
                .as_str()
                .is_some_and(|m| m.starts_with("gpt2"))
        });
    // Plan: base key → how to compute its new value.
    enum Plan<'a> {
        Adapter(&'a str, &'a BTreeMap<String, Tensor>),
        Copy(&'a Tensor),
    }
    let mut plan: HashMap<String, Plan> = HashMap::new();
    let mut summary = MergeSummary::default();
    let saved = files.config.modules_to_save.clone().unwrap_or_default();
    // A `modules_to_save` module the base lacks (a new head) is added.
    let mut added: Vec<(String, &Tensor)> = Vec::new();
    for (path, tensors) in &files.modules {
        let is_copy = tensors.keys().all(|k| k == "weight" || k == "bias");
        if is_copy
            && saved
                .iter()
                .any(|m| path == m || path.ends_with(&format!(".{m}")))
        {
            for (suffix, t) in tensors {
                match resolve(&ckpt, path, suffix, base)? {
                    Some(key) => {
                        summary.replaced.push(key.clone());
                        plan.insert(key, Plan::Copy(t));
                    }
                    None => added.push((format!("{path}.{suffix}"), t)),
                }
            }
            continue;
        }
        let key = resolve(&ckpt, path, "weight", base)?.ok_or_else(|| Error::Unsupported {
            layer: path.clone(),
            what: format!(
                "the base {} has no weight for this adapter module (looked for `{path}.weight` and keys that differ by a leading prefix)",
                base.display()
            ),
        })?;
        summary.merged.push((path.clone(), key.clone()));
        plan.insert(key, Plan::Adapter(path, tensors));
    }
    // Where the adapter's paths carry a prefix the base's keys lack (`bert.`
    // on a bare encoder), the output takes the adapter's names, so that an
    // added head and the encoder read as one model.
    let prefix = summary
        .merged
        .iter()
        .find_map(|(path, key)| {
            let stem = key.strip_suffix(".weight")?;
            path.strip_suffix(stem)
                .filter(|p| p.ends_with('.'))
                .map(str::to_string)
        })
        .unwrap_or_default();
    let rename = |k: &str| format!("{prefix}{k}");
    summary.added = added.iter().map(|(k, _)| k.clone()).collect();
    let staging = StagingDir::create(out, rules, "graft adapter merge")?;
    for extra in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ] {
        if base.join(extra).is_file() {
            std::fs::copy(base.join(extra), staging.path().join(extra)).map_err(|source| {
                Error::Io {
                    path: base.join(extra),
                    source,
                }
            })?;
        }
    }
    label_config(
        &staging.path().join("config.json"),
        &adapter_dir(adapter, name),
        &files.config,
    )?;
    let mut specs: Vec<graft_tensor::safetensors::TensorSpec> = ckpt
        .specs()?
        .into_iter()
        .map(|mut s| {
            s.name = rename(&s.name);
            s
        })
        .collect();
    for (k, t) in &added {
        specs.push(graft_tensor::safetensors::TensorSpec::of(k.clone(), t)?);
    }
    summary.prefix = prefix.clone();
    let largest = ckpt
        .files()
        .iter()
        .map(|f| f.specs().iter().map(|s| s.nbytes() as u64).sum::<u64>())
        .max()
        .unwrap_or(0);
    let shard = (ckpt.files().len() > 1).then_some(largest.max(1));
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let mut writer = ShardedWriter::create(staging.path(), specs, &meta, shard)?;
    for key in ckpt.names() {
        let t = ckpt.tensor(key)?;
        let new = match plan.get(key) {
            None => t,
            Some(Plan::Copy(c)) => {
                if c.size() != t.size() {
                    return Err(Error::Shape {
                        what: format!("modules_to_save tensor for `{key}`"),
                        expected: t.size(),
                        got: c.size(),
                    });
                }
                c.to_kind(t.kind())
            }
            Some(Plan::Adapter(path, tensors)) => {
                let bias_key = key.strip_suffix(".weight").map(|s| format!("{s}.bias"));
                let bias = match &bias_key {
                    Some(b) if ckpt.contains(b) => Some(ckpt.tensor(b)?),
                    _ => None,
                };
                let layer = base_layer(path, t, bias, tensors, gpt2)?;
                let (_, alpha) = rank_and_alpha(&files.config, path)?;
                let owned: BTreeMap<&'static str, Tensor> = tensors
                    .iter()
                    .filter_map(|(k, v)| static_suffix(k).map(|s| (s, v.shallow_clone())))
                    .collect();
                let a = crate::methods::from_tensors(&layer, path, alpha, &files.config, owned)?;
                let merged = a.merge(&layer).map_err(|e| match e {
                    Error::Unsupported { what, .. } => Error::Unsupported {
                        layer: path.to_string(),
                        what,
                    },
                    other => other,
                })?;
                if safe && merged.weight.f_isfinite()?.f_all()?.f_int64_value(&[])? != 1 {
                    return Err(Error::NonFinite {
                        layer: path.to_string(),
                        adapter: name.into(),
                    });
                }
                if let (Some(_), Some(_)) = (&merged.bias, &bias_key) {
                    return Err(Error::Unsupported {
                        layer: path.to_string(),
                        what: "adapters that change the bias (lora_bias, HUT's β) cannot be merged into files yet".into(),
                    });
                }
                merged.weight
            }
        };
        writer.write(&rename(key), &new)?;
    }
    for (k, t) in &added {
        writer.write(k, t)?;
    }
    writer.finish()?;
    staging.commit()?;
    Ok(summary)
}

/// Records a sequence classifier's labels (`labels.json`, written by
/// `graft finetune`) in the merged model's `config.json`, as transformers
/// reads them, with the architecture of a BERT classifier.
fn label_config(config: &Path, adapter: &Path, adapter_config: &LoraConfig) -> Result<()> {
    let labels = adapter.join("labels.json");
    if !labels.is_file() || !config.is_file() {
        return Ok(());
    }
    let read = |p: &Path| -> Result<serde_json::Value> {
        let text = graft_tensor::input::read_text(p, graft_tensor::input::CONFIG_LIMIT)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::config(&p.display().to_string(), "<document>", e.to_string()))
    };
    let id2label = read(&labels)?["id2label"].clone();
    let Some(map) = id2label.as_object() else {
        return Ok(());
    };
    let mut c = read(config)?;
    c["id2label"] = id2label.clone();
    c["label2id"] = map
        .iter()
        .map(|(k, v)| {
            (
                v.as_str().unwrap_or_default().to_string(),
                serde_json::json!(k.parse::<i64>().unwrap_or(0)),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    if adapter_config.task_type.as_deref() == Some("SEQ_CLS") && c["model_type"] == "bert" {
        c["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    }
    let text = serde_json::to_string_pretty(&c)
        .map_err(|e| Error::config("config.json", "<document>", e.to_string()))?;
    graft_tensor::atomic::write_atomic(config, text.as_bytes())?;
    Ok(())
}

fn static_suffix(k: &str) -> Option<&'static str> {
    ADAPTER_SUFFIXES.into_iter().find(|s| *s == k)
}

/// The base layer of an adapter module, its kind read from the shapes.
fn base_layer(
    path: &str,
    weight: Tensor,
    bias: Option<Tensor>,
    tensors: &BTreeMap<String, Tensor>,
    gpt2: bool,
) -> Result<BaseLayer> {
    let w = weight.size();
    let a = tensors
        .get("lora_A.weight")
        .or_else(|| tensors.get("hut_A"))
        .or_else(|| tensors.get("flora_U.0"))
        .map(Tensor::size);
    let kind = if tensors.contains_key("lora_embedding_A") {
        LayerKind::Embedding
    } else if w.len() == 4 {
        LayerKind::Conv2d
    } else if w.len() == 5 {
        LayerKind::Conv3d
    } else if w.len() == 2 {
        // The input width the adapter expects: lora_A [r, in], hut_A [in, r], flora_U.0 [in, r].
        let inp = match (tensors.contains_key("lora_A.weight"), &a) {
            (true, Some(a)) => a[1],
            (false, Some(a)) => a[0],
            _ => w[1],
        };
        if w[0] == w[1] {
            if gpt2 {
                LayerKind::Conv1D
            } else {
                LayerKind::Linear
            }
        } else if w[1] == inp {
            LayerKind::Linear
        } else {
            LayerKind::Conv1D
        }
    } else {
        return Err(Error::Unsupported {
            layer: path.into(),
            what: format!(
                "a weight of shape {w:?} is not a Linear, Conv1D, Conv2d, Conv3d or Embedding weight"
            ),
        });
    };
    let groups = match (kind, tensors.get("lora_A.weight")) {
        (LayerKind::Conv2d | LayerKind::Conv3d, Some(a)) if w[1] > 0 => (a.size()[1] / w[1]).max(1),
        _ => 1,
    };
    Ok(BaseLayer {
        kind,
        conv: ConvGeometry {
            groups,
            ..ConvGeometry::default()
        },
        weight,
        bias,
    })
}

/// One line per adapter module: kind of tensors, rank, `α`, scale and
/// parameter count, for `graft adapter inspect`.
pub fn describe(dir: &Path) -> Result<String> {
    let mut names = Vec::new();
    if dir.join(CONFIG_FILE).is_file() {
        names.push("default".to_string());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut subs: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(CONFIG_FILE).is_file())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        subs.sort();
        names.extend(subs);
    }
    if names.is_empty() {
        return Err(Error::Io {
            path: dir.join(CONFIG_FILE),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no adapter here"),
        });
    }
    let mut out = String::new();
    for name in names {
        let files = read_adapter(&adapter_dir(dir, &name))?;
        let c = &files.config;
        let total: i64 = files
            .modules
            .values()
            .flat_map(|m| m.values())
            .map(|t| t.numel() as i64)
            .sum();
        out.push_str(&format!(
            "adapter `{name}`: {}{}{}, r {}, alpha {}, targets {}, modules_to_save {}, written by {}\n  {} tensors in {} modules, {total} parameters\n",
            c.peft_type,
            if c.use_dora { " (DoRA)" } else { "" },
            if c.use_rslora { " (rsLoRA)" } else { "" },
            c.r,
            c.lora_alpha,
            c.target_modules.as_ref().map_or("-".into(), ToString::to_string),
            c.modules_to_save.as_ref().map_or("-".into(), |m| m.join(", ")),
            c.peft_version.as_deref().unwrap_or("?"),
            files.modules.values().map(BTreeMap::len).sum::<usize>(),
            files.modules.len(),
        ));
        for (path, t) in &files.modules {
            let params: i64 = t.values().map(|x| x.numel() as i64).sum();
            let rank = t
                .get("lora_A.weight")
                .or_else(|| t.get("lora_embedding_A"))
                .map(|a| a.size()[0])
                .or_else(|| t.get("hut_A").map(|a| a.size()[1]));
            let (_, alpha) = rank_and_alpha(c, path)?;
            let line = match rank {
                Some(r) if c.peft_type == "LORA" => format!(
                    "  {path}: r {r}, alpha {alpha}, scale {:.4}, {params} parameters\n",
                    c.scaling(r, alpha)
                ),
                Some(r) => format!("  {path}: r {r}, {params} parameters\n"),
                None if c.peft_type == "FLORA" => format!(
                    "  {path}: core {:?}, scale {}, {params} parameters\n",
                    t.get("flora_G").map(Tensor::size).unwrap_or_default(),
                    c.flora_scale.unwrap_or(1.0)
                ),
                None => format!("  {path}: saved whole (modules_to_save), {params} parameters\n"),
            };
            out.push_str(&line);
        }
    }
    Ok(out)
}
