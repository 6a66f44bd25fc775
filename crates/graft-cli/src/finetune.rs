//! `graft finetune`: fine-tune a sentence classifier on a BERT-style
//! checkpoint (e.g. all-MiniLM-L6-v2) through adapters (LoRA, DoRA, HUT,
//! FLoRA) or fully, from CSV files, and write a PEFT adapter directory (or,
//! for `full`, a checkpoint directory).

use anyhow::{Context, Result, bail};
use graft_nn::models::{BertConfig, BertForSequenceClassification, BertInput, load_bert_weights};
use graft_nn::text::Tokenizer;
use graft_peft::config::{HutForm, Targets};
use graft_peft::{Layers, LoraConfig, PeftModel};
use graft_tensor::output::OutputRules;
use graft_tensor::tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    let mut opt = nn::AdamW::default().build(store, lr)?;

    let batch = |texts: &[String], idx: &[usize]| -> Result<BertInput> {
        let refs: Vec<&str> = idx.iter().map(|&i| texts[i].as_str()).collect();
        let b = tok.encode(&refs)?;
        Ok(BertInput {
            input_ids: b.input_ids.to_device(device),
            attention_mask: b.attention_mask.to_device(device),
            token_type_ids: b.token_type_ids.to_device(device),
        })
    };
    let steps_per_epoch = train.texts.len().div_ceil(args.batch_size);
    let bar = if args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new((steps_per_epoch * args.epochs) as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("finetune [{bar:30}] {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let evaluate = |rows: &Rows, y: &[i64]| -> Result<f64> {
        let order: Vec<usize> = (0..rows.texts.len()).collect();
        let mut correct = 0i64;
        for chunk in order.chunks(64) {
            let input = batch(&rows.texts, chunk)?;
            let logits = graft_tensor::tch::no_grad(|| model.forward(&input, false))?;
            let want = Tensor::from_slice(&chunk.iter().map(|&i| y[i]).collect::<Vec<_>>())
                .to_device(device);
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&want)
                .sum(Kind::Int64)
                .int64_value(&[]);
        }
        Ok(correct as f64 / rows.texts.len() as f64)
    };
    let started = Instant::now();
    let mut seen = 0usize;
    for epoch in 0..args.epochs {
        graft_tensor::tch::manual_seed(graft_tensor::seed::derive_seed(
            args.seed,
            &format!("epoch {epoch}"),
        ) as i64);
        let perm = Tensor::randperm(train.texts.len() as i64, (Kind::Int64, Device::Cpu));
        let order: Vec<usize> = Vec::<i64>::try_from(&perm)?
            .into_iter()
            .map(|i| i as usize)
            .collect();
        let mut loss_sum = 0.0;
        for (step, chunk) in order.chunks(args.batch_size).enumerate() {
            let input = batch(&train.texts, chunk)?;
            let y = Tensor::from_slice(&chunk.iter().map(|&i| train_y[i]).collect::<Vec<_>>())
                .to_device(device);
            let logits = model.forward(&input, true)?;
            let loss = logits.cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            let l = loss.double_value(&[]);
            if !l.is_finite() {
                bail!(
                    "the training loss became {l} at epoch {} step {}; try a smaller --lr",
                    epoch + 1,
                    step + 1
                );
            }
            loss_sum += l;
            seen += chunk.len();
            bar.inc(1);
            bar.set_message(format!(
                "epoch {}/{} loss {:.4} {:.1} examples/s",
                epoch + 1,
                args.epochs,
                loss_sum / (step + 1) as f64,
                seen as f64 / started.elapsed().as_secs_f64()
            ));
        }
        let train_loss = loss_sum / steps_per_epoch as f64;
        match &eval {
            Some((rows, y)) => {
                let acc = evaluate(rows, y)?;
                bar.suspend(|| {
                    eprintln!(
                        "epoch {}: train loss {train_loss:.4}, eval accuracy {acc:.4}",
                        epoch + 1
                    )
                });
            }
            None => bar.suspend(|| eprintln!("epoch {}: train loss {train_loss:.4}", epoch + 1)),
        }
    }
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
