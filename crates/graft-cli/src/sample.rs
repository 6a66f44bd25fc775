//! `graft sample`: run a graft-diffusion sampler on a built-in Gaussian-mixture
//! problem (exact model, with quality metrics) or on a saved denoiser
//! (`--model DIR`, see `graft_diffusion::saved`; a conditional one with
//! `--condition FILE.safetensors`), and write the samples as safetensors plus
//! an SVG (a scatter, or a grid of gray images for square image dimensions).

use anyhow::{Context, Result, bail};
use graft_diffusion::gmm::GmmModel;
use graft_diffusion::grid::StepGrid;
use graft_diffusion::metrics::{MMD_SCALES, median_distance, mmd2_unbiased, mode_stats};
use graft_diffusion::noise::{BrownianTree, NoiseSource, SeededNoise};
use graft_diffusion::param::Parameterization;
use graft_diffusion::problems::{Problem, r1, r2, r3};
use graft_diffusion::samplers::{Sampler, SamplerName, SamplerOptions};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// Arguments of `graft sample`.
#[derive(clap::Args)]
pub struct Args {
    /// Built-in problem: r1 (2-D ring, MR continuous cosine), r2 (64-D, 10 modes), r3 (reference table T = 100).
    #[arg(long, default_value = "r1", conflicts_with = "model")]
    problem: String,
    /// A saved denoiser (a directory with config.json and model.safetensors) to sample instead of a built-in problem.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Sampler: mrs-ode, mrs-sde, euler-maruyama, euler-ode, posterior, dpm-single, edm-heun, pc
    /// (graft_diffusion::samplers::SamplerName).
    #[arg(long, default_value = "mrs-ode")]
    sampler: String,
    /// Solver order (MRS ODE 1-3, MRS SDE 1-2, DPM-Solver single-step 2-3).
    #[arg(long, default_value_t = 2)]
    order: usize,
    /// Form of the exponential integrators: data or noise.
    #[arg(long, default_value = "data")]
    form: String,
    /// Order-3 D2 term: taylor (default) or reference (the official code's).
    #[arg(long, default_value = "taylor")]
    third_order: String,
    /// What the (exact) model predicts: noise, data, velocity or score.
    #[arg(long, default_value = "noise")]
    param: String,
    /// Model evaluations per sample.
    #[arg(long, default_value_t = 10)]
    nfe: usize,
    /// Step grid: uniform-lambda, uniform-t, karras, quadratic-t, linspace, leading, trailing.
    #[arg(long, default_value = "uniform-lambda")]
    grid: String,
    /// Seed of the start states and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Noise source of stochastic samplers: seeded or brownian (a Brownian tree: consistent across NFE).
    #[arg(long, default_value = "seeded")]
    noise: String,
    /// Per-sample conditions of a conditional saved denoiser: a safetensors file
    /// holding an `[n, cond_dim]` tensor (or `[cond_dim]`, repeated for every sample).
    #[arg(long, requires = "model")]
    condition: Option<PathBuf>,
    /// The tensor in the --condition file (may be left out when it holds exactly one).
    #[arg(long, requires = "condition")]
    condition_key: Option<String>,
    /// Number of samples (default 1000, or the condition's row count).
    #[arg(short = 'n', long)]
    samples: Option<usize>,
    /// Output directory (samples.safetensors, samples.svg); it appears only when sampling succeeds.
    #[arg(long, default_value = "graft-samples")]
    out: PathBuf,
    /// Replace --out if it holds an earlier graft output (never a directory holding other files).
    #[arg(long)]
    force: bool,
}

/// The most samples one run may draw.
const MAX_SAMPLES: usize = 10_000_000;
/// The most model evaluations per sample.
const MAX_NFE: usize = 100_000;

/// Refuses `-n` and `--nfe` outside their bounds, and runs whose working
/// memory (about `bytes_per_sample` per sample) exceeds what the machine has.
fn check_budget(args: &Args, n: usize, bytes_per_sample: u64) -> Result<()> {
    if n > MAX_SAMPLES {
        bail!(
            "--samples {n} is more than {MAX_SAMPLES}; sample in several runs with different --seed"
        );
    }
    if args.nfe == 0 || args.nfe > MAX_NFE {
        bail!("--nfe {} must lie in 1..={MAX_NFE}", args.nfe);
    }
    let need = (n as u64).saturating_mul(bytes_per_sample);
    if let Some(available) = available_memory()
        && need > available
    {
        bail!(
            "{n} samples need about {:.1} GiB of working memory, and {:.1} GiB is available; lower --samples",
            need as f64 / (1u64 << 30) as f64,
            available as f64 / (1u64 << 30) as f64
        );
    }
    Ok(())
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Working bytes per sample of dimension `dim` through a network of width
/// `hidden` and `layers` layers: the sampler's f64 states and history (about
/// 12 rows) and the network's f32 activations.
fn bytes_per_sample(dim: i64, hidden: i64, layers: usize) -> u64 {
    (dim.max(1) as u64) * 8 * 12 + (hidden.max(1) as u64) * 4 * 4 * (layers as u64 + 1)
}

/// Builds the output directory beside `--out` and renames it into place.
fn stage_output(args: &Args, inputs: Vec<PathBuf>) -> Result<graft_tensor::atomic::StagingDir> {
    let rules = graft_tensor::output::OutputRules::new()
        .force(args.force)
        .inputs(inputs);
    Ok(graft_tensor::atomic::StagingDir::create(
        &args.out,
        &rules,
        "graft sample",
    )?)
}

fn sampler(a: &Args) -> Result<Box<dyn Sampler>> {
    let name: SamplerName = a.sampler.parse()?;
    Ok(name.build(SamplerOptions {
        order: a.order,
        form: a.form.parse()?,
        third_order: a.third_order.parse()?,
    }))
}

fn noise_source(args: &Args, t_end: f64, t_start: f64) -> Result<Box<dyn NoiseSource>> {
    Ok(match args.noise.as_str() {
        "seeded" => Box::new(SeededNoise::new(args.seed.wrapping_add(1))),
        "brownian" => Box::new(BrownianTree::new(args.seed, t_end, t_start, 24)?),
        other => bail!("unknown --noise `{other}` (seeded, brownian)"),
    })
}

/// Writes `samples.safetensors` and `samples.svg` into the staged output
/// directory and renames it into place at `--out`.
fn write_samples(
    staging: graft_tensor::atomic::StagingDir,
    x: &Tensor,
    meta: Vec<(&str, String)>,
    title: &str,
    reference: Option<&Tensor>,
    images: bool,
) -> Result<()> {
    let dir = staging.path().to_path_buf();
    let meta: HashMap<String, String> = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    graft_tensor::safetensors::save(
        dir.join("samples.safetensors"),
        [("samples", &x.to_kind(Kind::Float))],
        &meta,
    )?;
    let svg = dir.join("samples.svg");
    match image_side(x.size()[1]).filter(|_| images) {
        Some(side) => image_grid_svg(&svg, title, x, reference, side)?,
        None => scatter_svg(&svg, title, x, reference)?,
    }
    staging.commit()?;
    Ok(())
}

/// The side of square images of dimension `dim` (8 for the 64-D digits), for
/// dimensions 16 and above that are perfect squares.
fn image_side(dim: i64) -> Option<i64> {
    let side = (dim as f64).sqrt().round() as i64;
    (dim >= 16 && side * side == dim).then_some(side)
}

/// Writes an SVG grid of up to 64 samples as `side × side` gray images,
/// each beside its reference row (e.g. the condition) when one is given.
fn image_grid_svg(
    path: &std::path::Path,
    title: &str,
    x: &Tensor,
    reference: Option<&Tensor>,
    side: i64,
) -> Result<()> {
    let shown = x.size()[0].min(64);
    let rows = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(
            t.narrow(0, 0, shown)
                .to_kind(Kind::Double)
                .contiguous()
                .view([-1]),
        )?)
    };
    let mut panels = vec![rows(x)?];
    let mut title = title.to_string();
    if let Some(r) = reference.filter(|r| r.size() == x.size()) {
        panels.insert(0, rows(r)?);
        title.push_str(" (left: condition, right: sample)");
    }
    let panels: Vec<&[f64]> = panels.iter().map(Vec::as_slice).collect();
    graft_nn::plot::image_grid(path, &title, &panels, shown as usize, side as usize)?;
    Ok(())
}

/// Writes an SVG scatter of the samples' first two coordinates over the
/// reference samples' (a 1-D sample is drawn on the line y = 0).
fn scatter_svg(
    path: &std::path::Path,
    title: &str,
    x: &Tensor,
    reference: Option<&Tensor>,
) -> Result<()> {
    let points = |t: &Tensor| -> Result<Vec<(f64, f64)>> {
        let cols = t.size().get(1).copied().unwrap_or(0);
        if t.dim() != 2 || cols < 1 {
            bail!(
                "cannot plot samples of shape {:?}: expected [n, d]",
                t.size()
            );
        }
        let xy = if cols >= 2 {
            t.narrow(1, 0, 2)
        } else {
            Tensor::cat(&[t.shallow_clone(), t.zeros_like()], 1)
        };
        let v = Vec::<f64>::try_from(xy.to_kind(Kind::Double).contiguous().view([-1]))?;
        Ok(v.chunks(2).map(|c| (c[0], c[1])).collect())
    };
    let reference = reference.map(points).transpose()?.unwrap_or_default();
    graft_nn::plot::scatter(path, title, "x[0]", "x[1]", &points(x)?, &reference)?;
    Ok(())
}

/// The start states of a saved denoiser's sampling: `(1 − α_T) μ + σ_T z`,
/// the marginal at `t_start` without the data term (α_T ≈ 0 for MR and VP;
/// VE and EDM start at σ_max z, as Karras et al. do). For a network whose
/// condition is the process mean, μ is each sample's condition, so this is
/// the restoration prior μ + σ∞ z up to α_T (0.005 on the reference table).
fn prior_states(
    net: &graft_diffusion::learned::MlpDenoiser,
    t_start: f64,
    n: usize,
    seed: u64,
) -> Result<Tensor> {
    let process = net.process();
    let dim = net.shape().dim;
    let mut rng = graft_diffusion::noise::seeded_rng(seed);
    let like = Tensor::zeros([n as i64, dim], (Kind::Double, Device::Cpu));
    let z = graft_diffusion::noise::normal_like(&mut rng, &like)?;
    let (a, s) = (process.alpha(t_start), process.sigma(t_start));
    Ok(match process.mu() {
        Some(mu) => mu.to_kind(Kind::Double) * (1.0 - a) + z * s,
        None => z * s,
    })
}

/// Reads the `--condition` tensor: the one named by `--condition-key`, or
/// the file's only tensor.
fn read_condition(file: &std::path::Path, key: Option<&str>) -> Result<(String, Tensor)> {
    let ckpt = graft_tensor::safetensors::Checkpoint::open(file)
        .with_context(|| format!("reading the condition file {}", file.display()))?;
    let name = match key {
        Some(k) if ckpt.contains(k) => k.to_string(),
        Some(k) => bail!(
            "the condition file {} has no tensor `{k}` (it has: {})",
            file.display(),
            ckpt.names().join(", ")
        ),
        None => match ckpt.names() {
            [only] => only.clone(),
            names => bail!(
                "the condition file {} holds {} tensors ({}); name one with --condition-key",
                file.display(),
                names.len(),
                names.join(", ")
            ),
        },
    };
    let t = ckpt
        .tensor(&name)
        .with_context(|| format!("reading `{name}` from {}", file.display()))?;
    Ok((name, t))
}

fn run_model(args: &Args, dir: &std::path::Path) -> Result<()> {
    if args.samples == Some(0) {
        bail!("--samples must be at least 1");
    }
    let mut inputs = vec![dir.to_path_buf()];
    inputs.extend(args.condition.clone());
    let (mut net, config) = graft_diffusion::saved::load(dir)
        .with_context(|| format!("loading the denoiser in {}", dir.display()))?;
    let cond_dim = config.shape.cond_dim;
    let per_sample = bytes_per_sample(
        config.shape.dim + cond_dim,
        config.shape.hidden,
        config.shape.layers,
    );
    if let Some(n) = args.samples {
        check_budget(args, n, per_sample)?;
    }
    let mut condition = None;
    let n = match (&args.condition, cond_dim) {
        (None, 0) => args.samples.unwrap_or(1000),
        (None, _) => bail!(
            "{} is a conditional denoiser (condition dimension {cond_dim}): give its conditions with --condition FILE.safetensors",
            dir.display()
        ),
        (Some(file), 0) => bail!(
            "{} is an unconditional denoiser: it takes no --condition ({})",
            dir.display(),
            file.display()
        ),
        (Some(file), _) => {
            let (key, c) = read_condition(file, args.condition_key.as_deref())?;
            let size = c.size();
            let n = match (size.as_slice(), args.samples) {
                ([m, _], None) => *m as usize,
                (_, Some(n)) => n,
                (_, None) => 1000,
            };
            check_budget(args, n, per_sample)?;
            let rows = graft_diffusion::saved::bind_condition(&mut net, &config, &c, n)
                .with_context(|| {
                    format!(
                        "condition `{key}` in {} (shape {size:?}) for {} (condition dimension {cond_dim}, {n} samples)",
                        file.display(),
                        dir.display()
                    )
                })?;
            condition = Some(rows);
            n
        }
    };
    if n < 1 {
        bail!("--samples must be at least 1");
    }
    check_budget(args, n, per_sample)?;
    let s = sampler(args)?;
    // Refuse a bad output before the sampling work.
    graft_tensor::output::OutputRules::new()
        .force(args.force)
        .inputs(inputs.clone())
        .check(&args.out)?;
    let mut grid: StepGrid = args.grid.parse()?;
    if let StepGrid::UniformLambda { lambda_min } = &mut grid {
        *lambda_min = config.lambda_min;
    }
    let steps = s.steps_for_nfe(args.nfe);
    if steps == 0 {
        bail!("--nfe {} is too small for {}", args.nfe, s.name());
    }
    let process = net.process().clone();
    let times = grid.times(&*process, steps, config.t_start, config.t_end)?;
    let x_start = prior_states(&net, times[0], n, args.seed)?;
    let mut noise = noise_source(args, config.t_end, config.t_start)?;
    let (x, stats) = s.sample(&*process, &net, &x_start, &times, noise.as_mut())?;
    let staging = stage_output(args, inputs)?;
    let mut meta = vec![
        ("model", dir.display().to_string()),
        ("sampler", s.name()),
        ("nfe", stats.nfe.to_string()),
        ("grid", args.grid.clone()),
        ("seed", args.seed.to_string()),
    ];
    if let Some(file) = &args.condition {
        meta.push(("condition", file.display().to_string()));
    }
    // The directory's own name keeps the title inside the picture.
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let title = format!("{} on {name}: {} NFE", s.name(), stats.nfe);
    let mean = x.mean_dim(0, false, Kind::Double);
    let std = x.std_dim(0, true, false);
    // Only a process-mean condition lives in the data space.
    let conditioned = match &condition {
        Some(c) if config.condition_is_process_mean() => format!(
            "; RMS distance to the condition {:.4}",
            x.to_kind(Kind::Double)
                .f_sub(c)?
                .square()
                .mean(Kind::Double)
                .sqrt()
                .double_value(&[])
        ),
        _ => String::new(),
    };
    // A saved network's square dimensions are taken as images (the digits).
    write_samples(staging, &x, meta, &title, condition.as_ref(), true)?;
    println!(
        "{}: {} samples of dimension {}, {} NFE; per-dimension mean {:.4} .. {:.4}, std {:.4} .. {:.4}{conditioned}; wrote {}",
        s.name(),
        n,
        config.shape.dim,
        stats.nfe,
        mean.min().double_value(&[]),
        mean.max().double_value(&[]),
        std.min().double_value(&[]),
        std.max().double_value(&[]),
        args.out.display()
    );
    Ok(())
}

/// Runs `graft sample`.
pub fn run(args: Args) -> Result<()> {
    if let Some(dir) = args.model.clone() {
        return run_model(&args, &dir);
    }
    let problem: Problem = match args.problem.as_str() {
        "r1" => r1()?,
        "r2" => r2(args.seed)?,
        "r3" => r3(args.seed)?,
        other => bail!("unknown --problem `{other}` (r1, r2, r3)"),
    };
    let n = args.samples.unwrap_or(1000);
    if n < 2 {
        bail!("--samples must be at least 2");
    }
    graft_tensor::output::OutputRules::new()
        .force(args.force)
        .check(&args.out)?;
    let dim = problem.gmm.dim();
    // The metrics hold n × n distance matrices, twice.
    check_budget(&args, n, bytes_per_sample(dim, 1, 0) + 2 * 8 * n as u64)?;
    let param: Parameterization = args.param.parse()?;
    let s = sampler(&args)?;
    let mut grid: StepGrid = args.grid.parse()?;
    if let StepGrid::UniformLambda { lambda_min } = &mut grid {
        *lambda_min = problem.lambda_min;
    }
    let steps = s.steps_for_nfe(args.nfe);
    if steps == 0 {
        bail!("--nfe {} is too small for {}", args.nfe, s.name());
    }
    let times = grid.times(&*problem.process, steps, problem.t_start, problem.t_end)?;
    let mut rng = graft_diffusion::noise::seeded_rng(args.seed);
    let x_start = problem
        .gmm
        .sample_marginal(&*problem.process, times[0], n, &mut rng)?;
    let model = GmmModel::new(problem.gmm.clone(), problem.process.clone(), param);
    let mut noise = noise_source(&args, problem.t_end, problem.t_start)?;
    let (x, stats) = s.sample(&*problem.process, &model, &x_start, &times, noise.as_mut())?;
    let reference = problem
        .gmm
        .sample_marginal(&*problem.process, problem.t_end, n, &mut rng)?;
    let bw = median_distance(&reference)?;
    let mmd = mmd2_unbiased(&x, &reference, bw, &MMD_SCALES)?;
    let modes = mode_stats(&x, &problem.gmm)?;
    let meta = vec![
        ("problem", args.problem.clone()),
        ("sampler", s.name()),
        ("nfe", stats.nfe.to_string()),
        ("grid", args.grid.clone()),
        ("seed", args.seed.to_string()),
    ];
    let title = format!("{} on {}: {} NFE", s.name(), args.problem, stats.nfe);
    let staging = stage_output(&args, Vec::new())?;
    write_samples(staging, &x, meta, &title, Some(&reference), false)?;
    println!(
        "{}: {} samples, {} NFE; MMD² {mmd:.3e}, mode TV {:.4}, coverage {}/{}, std ratio {:.4}, outliers {:.4}; wrote {}",
        s.name(),
        n,
        stats.nfe,
        modes.tv,
        modes.coverage,
        problem.gmm.components(),
        modes.std_ratio,
        modes.outliers,
        args.out.display()
    );
    Ok(())
}
