//! `graft unlearn ssd`: make a classifier saved by graft forget a set of
//! training samples with Selective Synaptic Dampening, and write the edited
//! model, a report and (on request) the importances into a new directory.

use anyhow::{Context, Result};
use graft_nn::train::evaluate;
use graft_tensor::output::OutputRules;
use graft_unlearn::files::{input_shape, load_model, load_samples, subtract};
use graft_unlearn::importance::{ImportanceMode, save_importances};
use graft_unlearn::{ForgetRequest, Ssd, SsdConfig};
use std::path::PathBuf;

/// Arguments of `graft unlearn`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Selective Synaptic Dampening (Foster et al., AAAI 2024): retrain-free forgetting.
    Ssd(Box<SsdArgs>),
}

/// How importances are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// The reference code's: squares of mini-batch mean gradients.
    Batch,
    /// The true diagonal Fisher: squares of per-sample gradients (slower, steadier).
    PerSample,
}

/// Arguments of `graft unlearn ssd`.
#[derive(clap::Args)]
struct SsdArgs {
    /// The classifier: a safetensors file written by graft (its `graft.model` metadata describes the architecture).
    #[arg(long)]
    model: PathBuf,
    /// The full training data D: safetensors with `x` (f32 [n, ...]) and `y` (i64 [n]).
    #[arg(long)]
    data: PathBuf,
    /// The samples to forget (same format; each must also be in --data).
    #[arg(
        long,
        required_unless_present = "forget_class",
        conflicts_with = "forget_class"
    )]
    forget: Option<PathBuf>,
    /// Forget every sample of this class in --data (instead of --forget).
    #[arg(long)]
    forget_class: Option<i64>,
    /// Selection weighting α: parameters with forget importance > α × full importance are dampened.
    #[arg(long, allow_negative_numbers = true)]
    alpha: f64,
    /// Dampening constant λ: selected parameters are scaled by min(λ × full / forget importance, 1).
    #[arg(long = "lambda", allow_negative_numbers = true)]
    lambda: f64,
    /// How importances are taken.
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    mode: Mode,
    /// Samples per batch in batch mode.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Label-free SSD (LFSSD): importances of the squared logits' norm.
    #[arg(long)]
    label_free: bool,
    /// Leave parameters whose names start with this untouched (repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Also write both importances (`full/<param>`, `forget/<param>`) to OUT/importances.safetensors.
    #[arg(long)]
    save_importances: bool,
    /// Output directory (it appears only when SSD succeeds).
    #[arg(long)]
    out: PathBuf,
    /// Replace OUT if it holds an earlier graft output.
    #[arg(long)]
    force: bool,
}

/// Runs `graft unlearn`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Ssd(a) => ssd(*a),
    }
}

fn ssd(args: SsdArgs) -> Result<()> {
    let mut rules = OutputRules::new()
        .force(args.force)
        .inputs([&args.model, &args.data]);
    if let Some(f) = &args.forget {
        rules = rules.input(f);
    }
    rules.check(&args.out)?;
    let mut config = SsdConfig::new(args.alpha, args.lambda);
    config.importance.batch_size = args.batch_size;
    if args.mode == Mode::PerSample {
        config = config.per_sample();
    }
    if args.label_free {
        config = config.label_free();
    }
    config.exclude = args.exclude.clone();
    let ssd = Ssd::new(config)?;
    let file = load_model(&args.model)?;
    let (shape, classes) = input_shape(&file.config);
    let data = load_samples(&args.data, &shape, classes)?;
    let (forget, retain, forget_origin) = match (&args.forget, args.forget_class) {
        (Some(path), _) => {
            let forget = load_samples(path, &shape, classes)?;
            if forget.is_empty() {
                anyhow::bail!("{}: the forget set is empty", path.display());
            }
            let retain = subtract(&data, &forget).with_context(|| {
                format!(
                    "--forget {} against --data {}",
                    path.display(),
                    args.data.display()
                )
            })?;
            (forget, retain, path.display().to_string())
        }
        (None, Some(class)) => {
            if !(0..classes).contains(&class) {
                anyhow::bail!("--forget-class {class}: the model has classes 0..{classes}");
            }
            let others: Vec<i64> = (0..classes).filter(|&c| c != class).collect();
            let forget = data.with_classes(&[class])?;
            if forget.is_empty() {
                anyhow::bail!(
                    "{}: no sample of class {class} to forget",
                    args.data.display()
                );
            }
            let origin = format!("class {class} of {}", args.data.display());
            (forget, data.with_classes(&others)?, origin)
        }
        (None, None) => anyhow::bail!("give --forget FILE or --forget-class N"),
    };
    let acc =
        |d: &graft_nn::Dataset| -> Result<f64> { Ok(evaluate(&file.model, d, 512)?.accuracy) };
    let before = (acc(&forget)?, acc(&retain)?);
    let request = ForgetRequest {
        model: &file.model,
        vs: &file.vs,
        forget: &forget,
        retain: &retain,
    };
    let (report, full, forget_imp) = ssd.run(&request)?;
    let after = (acc(&forget)?, acc(&retain)?);

    let staging = graft_tensor::atomic::StagingDir::create(&args.out, &rules, "graft unlearn ssd")?;
    let mut metadata = file.metadata.clone();
    metadata.insert("graft.unlearn".into(), serde_json::json!({ "method": "ssd", "alpha": args.alpha, "lambda": args.lambda, "forget_samples": forget.len() }).to_string());
    graft_nn::models::save_varstore(
        &file.vs,
        &staging.path().join("model.safetensors"),
        &metadata,
    )?;
    let json = serde_json::json!({
        "model": args.model,
        "data": args.data,
        "forget": forget_origin,
        "ssd": report,
        "accuracy": {
            "forget_before": before.0, "forget_after": after.0,
            "retain_before": before.1, "retain_after": after.1,
        },
    });
    graft_tensor::atomic::write_atomic(
        staging.path().join("report.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    if args.save_importances {
        save_importances(
            &staging.path().join("importances.safetensors"),
            &[("full", &full), ("forget", &forget_imp)],
        )?;
    }
    staging.commit()?;
    let mode = match report.config.importance.mode {
        ImportanceMode::Batch => "batch",
        ImportanceMode::PerSample => "per-sample",
    };
    eprintln!(
        "SSD (alpha {}, lambda {}, {mode}): dampened {} of {} parameters in {:.2} s; forget accuracy {:.3} -> {:.3}, retain {:.3} -> {:.3}",
        args.alpha,
        args.lambda,
        report.selected,
        report.entries,
        report.importance_s + report.dampen_s,
        before.0,
        after.0,
        before.1,
        after.1
    );
    if let Some(w) = &report.warning {
        eprintln!("warning: {w}");
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
