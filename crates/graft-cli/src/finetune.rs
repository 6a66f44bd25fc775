//! `graft finetune`: fine-tune a sentence classifier on a BERT-style
//! checkpoint (e.g. all-MiniLM-L6-v2) through adapters (LoRA, DoRA, HUT,
//! FLoRA) or fully, from CSV files, and write a PEFT adapter directory (or,
//! for `full`, a checkpoint directory).

use anyhow::{Context, Result, bail};
use graft_nn::models::{BertConfig, BertForSequenceClassification, load_bert_weights};
use graft_nn::text::Tokenizer;
use graft_nn::train_text::{TextData, TextTrainConfig, text_accuracy, train_text_classifier};
use graft_peft::config::{HutForm, Targets};
use graft_peft::{Layers, LoraConfig, PeftModel};
use graft_tensor::output::OutputRules;
use graft_tensor::tch::{Device, Tensor, nn};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How to fine-tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// LoRA on the target layers.
    Lora,
    /// DoRA on the target layers.
    Dora,
    /// HUT (the diag reading) on the target layers.
    Hut,
    /// FLoRA on the target layers.
    Flora,
    /// Every parameter.
    Full,
}

/// Arguments of `graft finetune`.
#[derive(clap::Args)]
pub struct Args {
    /// A BERT-style model directory: config.json, model.safetensors (or shards) and tokenizer.json.
    #[arg(long)]
    model: PathBuf,
    /// Training data: a CSV file with a header row.
    #[arg(long)]
    train: PathBuf,
    /// Evaluation data (same columns); accuracy is reported after every epoch.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// The column holding the text.
    #[arg(long, default_value = "text")]
    text_column: String,
    /// The column holding the label (any strings; classes are their sorted distinct values).
    #[arg(long, default_value = "label")]
    label_column: String,
    /// How to fine-tune.
    #[arg(long, value_enum, default_value_t = Method::Lora)]
    method: Method,
    /// Adapter rank.
    #[arg(long, default_value_t = 8)]
    r: i64,
    /// LoRA/DoRA α (default 2r).
    #[arg(long)]
    alpha: Option<f64>,
    /// Layers to adapt (PEFT's suffix match), comma-separated.
    #[arg(long, default_value = "query,value", value_delimiter = ',')]
    target: Vec<String>,
    /// Passes over the training data.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate (AdamW; default 2e-3 for adapters, 5e-5 for full).
    #[arg(long)]
    lr: Option<f64>,
    /// Tokens per text, [CLS] and [SEP] included (longer texts are truncated).
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Use only the first N rows of each file.
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the head's initialisation, the adapters' and the shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (it appears only when training succeeds).
    #[arg(long)]
    out: PathBuf,
    /// Replace OUT if it holds an earlier graft output.
    #[arg(long)]
    force: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Texts and their label strings.
struct Rows {
    texts: Vec<String>,
    labels: Vec<String>,
}

fn read_csv(path: &Path, text: &str, label: &str, limit: Option<usize>) -> Result<Rows> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let headers = reader
        .headers()
        .with_context(|| format!("{}: no header row", path.display()))?
        .clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: no column `{name}` (columns: {})",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let (ti, li) = (column(text)?, column(label)?);
    let mut rows = Rows {
        texts: Vec::new(),
        labels: Vec::new(),
    };
    for (i, record) in reader.records().enumerate() {
        if limit.is_some_and(|n| rows.texts.len() >= n) {
            break;
        }
        let record = record.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let value = record.get(li).unwrap_or_default().trim();
        if value.is_empty() {
            bail!(
                "{}: row {}: empty value in column `{label}`",
                path.display(),
                i + 2
            );
        }
        rows.texts
            .push(record.get(ti).unwrap_or_default().to_string());
        rows.labels.push(value.to_string());
    }
    if rows.texts.is_empty() {
        bail!("{}: no data rows", path.display());
    }
    Ok(rows)
}

/// Runs `graft finetune`.
pub fn run(args: Args) -> Result<()> {
    for name in ["config.json", "tokenizer.json"] {
        if !args.model.join(name).is_file() {
            bail!(
                "{}: no {name} (a model directory needs config.json, model.safetensors and tokenizer.json)",
                args.model.display()
            );
        }
    }
    if !args.model.join("model.safetensors").is_file()
        && !args.model.join("model.safetensors.index.json").is_file()
    {
        bail!(
            "{}: no model.safetensors (or model.safetensors.index.json)",
            args.model.display()
        );
    }
    if args.epochs == 0 || args.batch_size == 0 || args.r < 1 {
        bail!("--epochs, --batch-size and --r must be at least 1");
    }
    let mut rules = OutputRules::new()
        .force(args.force)
        .input(&args.model)
        .input(&args.train);
    if let Some(e) = &args.eval {
        rules = rules.input(e);
    }
    rules.check(&args.out)?;

    let train = read_csv(
        &args.train,
        &args.text_column,
        &args.label_column,
        args.limit,
    )?;
    let classes: Vec<String> = {
        let mut c: Vec<String> = train.labels.clone();
        c.sort();
        c.dedup();
        c
    };
    if classes.len() < 2 {
        bail!(
            "{}: column `{}` has one class ({}); a classifier needs at least two",
            args.train.display(),
            args.label_column,
            classes.join(", ")
        );
    }
    let index: BTreeMap<&str, i64> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as i64))
        .collect();
    let to_ids = |rows: &Rows, file: &Path| -> Result<Vec<i64>> {
        rows.labels
            .iter()
            .map(|l| {
                index.get(l.as_str()).copied().with_context(|| {
                    format!(
                        "{}: label `{l}` in column `{}` is not among the training classes ({})",
                        file.display(),
                        args.label_column,
                        classes.join(", ")
                    )
                })
            })
            .collect()
    };
    let train_y = to_ids(&train, &args.train)?;
    let eval = match &args.eval {
        Some(p) => {
            let rows = read_csv(p, &args.text_column, &args.label_column, args.limit)?;
            let y = to_ids(&rows, p)?;
            Some((rows, y))
        }
        None => None,
    };

    let config_text = std::fs::read_to_string(args.model.join("config.json"))
        .with_context(|| format!("reading {}", args.model.join("config.json").display()))?;
    let config = BertConfig::from_json(
        &config_text,
        &args.model.join("config.json").display().to_string(),
    )?;
    let tok = Tokenizer::from_file(&args.model.join("tokenizer.json"), args.max_len)?;
    graft_tensor::seed::seed_everything(args.seed);
    let device = graft_tensor::device::default_device()?;
    let mut vs = nn::VarStore::new(device);
    let layers = Layers::new();
    let model =
        BertForSequenceClassification::new(&vs.root(), &config, classes.len() as i64, &layers);
    let missing = load_bert_weights(&vs, &args.model)?;
    if let Some(m) = missing.iter().find(|m| !m.starts_with("classifier.")) {
        bail!(
            "{}: the checkpoint has no `{m}` (is it a BERT model?)",
            args.model.display()
        );
    }
    let (peft, lr) = match args.method {
        Method::Full => (None, args.lr.unwrap_or(5e-5)),
        m => {
            let targets: Vec<&str> = args.target.iter().map(String::as_str).collect();
            let base = match m {
                Method::Hut => LoraConfig::hut(args.r, HutForm::Diag, &targets),
                Method::Flora => LoraConfig::flora(args.r, args.alpha.unwrap_or(2.0), &targets),
                _ => LoraConfig::new(args.r, args.alpha.unwrap_or(2.0 * args.r as f64), &targets),
            };
            let adapter = LoraConfig {
                use_dora: m == Method::Dora,
                modules_to_save: Some(vec!["classifier".into()]),
                task_type: Some("SEQ_CLS".into()),
                target_modules: Some(Targets::List(args.target.clone())),
                base_model_name_or_path: Some(args.model.display().to_string()),
                ..base
            };
            let mut peft = PeftModel::new(&mut vs, &layers);
            peft.add_adapter("default", adapter)?;
            (Some(peft), args.lr.unwrap_or(2e-3))
        }
    };
    let count = match &peft {
        Some(p) => p.parameter_count().to_string(),
        None => {
            let n: i64 = vs
                .trainable_variables()
                .iter()
                .map(|t| t.numel() as i64)
                .sum();
            format!("trainable params: {n} || all params: {n} || trainable%: 100.0000")
        }
    };
    eprintln!("{count}");
    let store = peft.as_ref().map_or(&vs, |p| p.var_store());
    let bar = if args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("finetune [{bar:30}] {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let data = TextData {
        texts: train.texts.clone(),
        labels: train_y,
    };
    let eval_data = eval.map(|(rows, y)| TextData {
        texts: rows.texts,
        labels: y,
    });
    let cfg = TextTrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr,
        seed: args.seed,
    };
    train_text_classifier(
        &model,
        store,
        &tok,
        &data,
        &cfg,
        &mut |p| {
            bar.set_length(p.steps as u64);
            bar.set_position(p.step as u64);
            bar.set_message(format!(
                "epoch {}/{} loss {:.4} {:.1} examples/s",
                p.epoch + 1,
                args.epochs,
                p.loss,
                p.examples_per_s
            ));
        },
        &mut |epoch, loss| {
            let line = match &eval_data {
                Some(e) => format!(
                    "epoch {}: train loss {loss:.4}, eval accuracy {:.4}",
                    epoch + 1,
                    text_accuracy(&model, &tok, e, device)?
                ),
                None => format!("epoch {}: train loss {loss:.4}", epoch + 1),
            };
            bar.suspend(|| eprintln!("{line}"));
            Ok(())
        },
    )?;
    bar.finish_and_clear();

    let id2label: serde_json::Map<String, serde_json::Value> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (i.to_string(), serde_json::Value::from(c.clone())))
        .collect();
    let labels = serde_json::to_vec_pretty(&serde_json::json!({ "id2label": id2label }))?;
    match &peft {
        Some(p) => p.save_pretrained_with(&args.out, &rules, &[("labels.json", labels)])?,
        None => save_full(&args, &vs, &config_text, &id2label, &rules)?,
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// A full fine-tune as a checkpoint directory transformers reads.
fn save_full(
    args: &Args,
    vs: &nn::VarStore,
    config_text: &str,
    id2label: &serde_json::Map<String, serde_json::Value>,
    rules: &OutputRules,
) -> Result<()> {
    let staging = graft_tensor::atomic::StagingDir::create(&args.out, rules, "graft finetune")?;
    let mut config: serde_json::Value = serde_json::from_str(config_text)?;
    config["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    config["id2label"] = serde_json::Value::Object(id2label.clone());
    config["label2id"] = serde_json::Value::Object(
        id2label
            .iter()
            .map(|(k, v)| {
                (
                    v.as_str().unwrap_or_default().to_string(),
                    serde_json::Value::from(k.parse::<i64>().unwrap_or(0)),
                )
            })
            .collect(),
    );
    graft_tensor::atomic::write_atomic(
        staging.path().join("config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    std::fs::copy(
        args.model.join("tokenizer.json"),
        staging.path().join("tokenizer.json"),
    )
    .with_context(|| format!("copying {}", args.model.join("tokenizer.json").display()))?;
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach().to_device(Device::Cpu)))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    graft_tensor::safetensors::save(staging.path().join("model.safetensors"), vars, &meta)?;
    staging.commit()?;
    Ok(())
}
