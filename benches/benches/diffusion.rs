//! `cargo xtask bench diffusion`: wall time per sample batch for each
//! graft-diffusion sampler at equal NFE with a fixed MLP model (batch 256,
//! 64-D, 3×256 and 3×1024 SiLU on [x, 16 sinusoidal features of λ]), against the time
//! of the same number of bare model calls: the sampler overhead beyond the
//! model (spec target ≤ 5 % at batch 256); the NFE each sampler needs to reach
//! a quality target on R2 with the exact oracle, and the wall time of that NFE
//! with the MLP (time to target); and the fused linear combination against the
//! chain of libtorch ops it replaces. Writes `target/bench/diffusion.md`.

use graft_diffusion::experiments::problems;
use graft_diffusion::gmm::GmmModel;
use graft_diffusion::grid::StepGrid;
use graft_diffusion::integrator::Form;
use graft_diffusion::metrics::mode_stats;
use graft_diffusion::model::Model;
use graft_diffusion::noise::{BrownianTree, NoiseSource, SeededNoise};
use graft_diffusion::param::Parameterization;
use graft_diffusion::process::{MeanReverting, Process};
use graft_diffusion::samplers::{
    DpmSolverSingle, EdmHeun, EulerMaruyama, EulerOde, Mrs, Posterior, PredictorCorrector, Sampler,
};
use graft_tensor::tch::nn::{self, Module};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::fmt::Write as _;
use std::time::Instant;

const BATCH: i64 = 256;
const DIM: i64 = 64;
const NFE: usize = 20;
const REPS: usize = 15;

struct Mlp {
    _vs: nn::VarStore,
    net: nn::Sequential,
    process: MeanReverting,
}

impl Mlp {
    fn new(process: MeanReverting, h: i64) -> Self {
        graft_tensor::tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let net = nn::seq()
            .add(nn::linear(&root / "l0", DIM + 16, h, Default::default()))
            .add_fn(|x| x.silu())
            .add(nn::linear(&root / "l1", h, h, Default::default()))
            .add_fn(|x| x.silu())
            .add(nn::linear(&root / "l2", h, h, Default::default()))
            .add_fn(|x| x.silu())
            .add(nn::linear(&root / "l3", h, DIM, Default::default()));
        Self {
            _vs: vs,
            net,
            process,
        }
    }
}

impl Model for Mlp {
    fn parameterization(&self) -> Parameterization {
        Parameterization::Noise
    }
    fn eval(&self, x: &Tensor, t: f64) -> graft_diffusion::Result<Tensor> {
        let lam = self.process.lambda(t);
        let freqs: Vec<f32> = (0..8).map(|k| (lam * 2f64.powi(k - 3)) as f32).collect();
        let f = Tensor::from_slice(&freqs);
        let emb = Tensor::cat(&[f.sin(), f.cos()], 0)
            .unsqueeze(0)
            .expand([x.size()[0], 16], false);
        let _g = graft_tensor::tch::no_grad_guard();
        Ok(self.net.forward(&Tensor::cat(&[x.shallow_clone(), emb], 1)))
    }
}

/// A model that adds the wall time of its own calls to a counter, so a
/// sampler's overhead is measured inside the same run (same caches, same load).
struct Timed<'a> {
    inner: &'a dyn Model,
    spent: std::cell::Cell<f64>,
}

impl Model for Timed<'_> {
    fn parameterization(&self) -> Parameterization {
        self.inner.parameterization()
    }
    fn eval(&self, x: &Tensor, t: f64) -> graft_diffusion::Result<Tensor> {
        let start = Instant::now();
        let out = self.inner.eval(x, t);
        self.spent
            .set(self.spent.get() + start.elapsed().as_secs_f64() * 1e3);
        out
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    graft_benches::print_machine();
    let mut md = format!(
        "# diffusion samplers: overhead beyond the model\n\n{}\n\nMLP 3 hidden layers (SiLU) on [x, 16 sinusoidal features of lambda], batch {BATCH}, dim {DIM}, f32, {NFE} NFE per sample, median of {REPS} runs. Overhead beyond its own model calls: sampler wall / the time spent inside the model's `eval` during that same run, minus 1 (what the sampler adds). Overhead vs bare model calls: sampler wall / the wall of the same number of model calls in a bare loop on one fixed input, timed right after it, minus 1 (this also counts the model running slower inside a sampler, e.g. colder caches).\n",
        graft_nn::experiment::machine_description()
    );
    for hidden in [256, 1024] {
        run(hidden, &mut md);
    }
    nfe_to_target(&mut md);
    fused_ops(&mut md);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    graft_tensor::atomic::write_atomic(dir.join("diffusion.md"), md.as_bytes()).expect("write");
    println!("wrote {}", dir.join("diffusion.md").display());
}

/// The samplers of the overhead table, with their noise source.
fn samplers() -> Vec<(Box<dyn Sampler>, &'static str)> {
    vec![
        (Box::new(Mrs::ode(3, Form::Data)), "seeded"),
        (Box::new(Mrs::ode(2, Form::Noise)), "seeded"),
        (Box::new(Mrs::sde(2, Form::Data)), "seeded"),
        (Box::new(Mrs::sde(2, Form::Data)), "brownian"),
        (Box::new(EulerMaruyama), "seeded"),
        (Box::new(EulerOde), "seeded"),
        (Box::new(Posterior), "seeded"),
        (
            Box::new(DpmSolverSingle {
                order: 2,
                form: Form::Data,
            }),
            "seeded",
        ),
        (
            Box::new(DpmSolverSingle {
                order: 3,
                form: Form::Noise,
            }),
            "seeded",
        ),
        (
            Box::new(EdmHeun {
                churn: None,
                final_zero: false,
            }),
            "seeded",
        ),
        (Box::new(PredictorCorrector::default()), "seeded"),
    ]
}

fn run(hidden: i64, md: &mut String) {
    let mu = Tensor::full([DIM], 0.3, (Kind::Float, Device::Cpu));
    let process = MeanReverting::continuous_cosine(0.005, 1.0, Some(mu)).expect("process");
    let model = Mlp::new(
        process
            .with(
                1.0,
                Some(Tensor::full([DIM], 0.3, (Kind::Float, Device::Cpu))),
            )
            .expect("process"),
        hidden,
    );
    let x = Tensor::randn([BATCH, DIM], (Kind::Float, Device::Cpu));
    let grid = StepGrid::UniformLambda { lambda_min: None };
    // Bare model time: NFE calls at the grid's times.
    let times = grid.times(&process, NFE, 1.0, 1e-3).expect("grid");
    for _ in 0..3 {
        let _ = model.eval(&x, times[0]);
    }
    let model_ms = median(
        (0..REPS)
            .map(|_| {
                let start = Instant::now();
                for &t in &times[..NFE] {
                    let _ = model.eval(&x, t).expect("model");
                }
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    let samplers = samplers();
    let _ = write!(
        md,
        "\n## hidden width {hidden}: {NFE} bare model calls take {model_ms:.2} ms\n\n| sampler | noise | NFE | wall (ms) | overhead beyond its own model calls | overhead vs bare model calls |\n|---|---|---|---|---|---|\n"
    );
    println!("hidden {hidden}: bare model {NFE} calls in {model_ms:.2} ms");
    // Interleaved: each repetition times the bare calls and the sampler back to
    // back, so load from other processes hits both; the median ratio is reported.
    let bare = |n: usize| {
        let start = Instant::now();
        for k in 0..n {
            let _ = model.eval(&x, times[k % NFE]).expect("model");
        }
        start.elapsed().as_secs_f64() * 1e3
    };
    for (s, noise_kind) in &samplers {
        let steps = s.steps_for_nfe(NFE);
        let g = grid.times(&process, steps, 1.0, 1e-3).expect("grid");
        let mut nfe = 0;
        let (mut walls, mut ratios, mut inside) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..REPS {
            let mut noise: Box<dyn NoiseSource> = match *noise_kind {
                "brownian" => Box::new(BrownianTree::new(r as u64, 1e-3, 1.0, 16).expect("tree")),
                _ => Box::new(SeededNoise::new(r as u64)),
            };
            let timed = Timed {
                inner: &model,
                spent: std::cell::Cell::new(0.0),
            };
            let start = Instant::now();
            let (_, st) = s
                .sample(&process, &timed, &x, &g, noise.as_mut())
                .expect("sample");
            let wall = start.elapsed().as_secs_f64() * 1e3;
            nfe = st.nfe;
            let reference = bare(nfe);
            walls.push(wall);
            ratios.push(wall / reference - 1.0);
            inside.push(wall / timed.spent.get() - 1.0);
        }
        let (wall, overhead, own) = (median(walls), median(ratios), median(inside));
        println!(
            "{:<28} {noise_kind:<8} NFE {nfe:>3}  {wall:8.2} ms  overhead {:+.1} % (vs bare loop {:+.1} %)",
            s.name(),
            100.0 * own,
            100.0 * overhead
        );
        let _ = writeln!(
            md,
            "| {} | {noise_kind} | {nfe} | {wall:.2} | {:+.1} % | {:+.1} % |",
            s.name(),
            100.0 * own,
            100.0 * overhead
        );
    }
}

/// The quality target on R2: the within-mode std ratio within 3 % of 1.
const STD_TOL: f64 = 0.03;

/// NFE to target on R2 with the exact oracle, and the wall time of that NFE
/// with the 3×256 MLP at batch 256 (time to target).
fn nfe_to_target(md: &mut String) {
    let p = problems::r2(graft_tensor::seed::derive_seed(0, "bench/r2")).expect("r2");
    let mut start_noise = SeededNoise::new(1);
    let n = 1000;
    let x_t = p
        .gmm
        .sample_marginal(&*p.process, p.t_start, n, start_noise.rng())
        .expect("x_T");
    let oracle = GmmModel::new(p.gmm.clone(), p.process.clone(), Parameterization::Noise);
    let grid = StepGrid::UniformLambda {
        lambda_min: p.lambda_min,
    };
    let mu = Tensor::full([DIM], 0.3, (Kind::Float, Device::Cpu));
    let mlp_process = MeanReverting::continuous_cosine(0.005, 1.0, Some(mu)).expect("process");
    let mlp = Mlp::new(mlp_process, 256);
    let x_mlp = Tensor::randn([BATCH, DIM], (Kind::Float, Device::Cpu));
    let nfes = [5usize, 10, 20, 40, 80, 160, 320];
    let _ = write!(
        md,
        "\n## NFE to target on R2 and time to target\n\nR2 (64-D, 10 modes, exact GMM oracle, {n} samples, uniform-lambda grid): the NFE at which the within-mode std ratio comes within {STD_TOL} of 1 (floor of exact samples: about 1.00), found on the grid {nfes:?}, the last gap refined by factors of 1.25, and interpolated log-log in |std ratio − 1| between the bracketing points. Time to target: the median wall of one batch of {BATCH} with the 3x256 MLP at the first NFE reaching the target (5 runs), scaled to the interpolated NFE (ms per NFE × NFE); the speed-up's bracket uses the bracketing NFEs instead.\n\n| sampler | NFE to target (bracket) | std ratio at the reached NFE | time to target (ms) | speed-up vs Euler-Maruyama (bracket) |\n|---|---|---|---|---|\n"
    );
    struct Hit {
        target: graft_diffusion::to_target::ToTarget,
        ratio: f64,
        ms_per_nfe: f64,
    }
    let mut rows: Vec<(String, Option<Hit>)> = Vec::new();
    for (s, noise_kind) in samplers() {
        if noise_kind != "seeded" {
            continue;
        }
        let mut ratios = std::collections::BTreeMap::new();
        let mut grids = std::collections::BTreeMap::new();
        let target = graft_diffusion::to_target::nfe_to_target(&nfes, 1.25, 640, STD_TOL, |nfe| {
            let steps = s.steps_for_nfe(nfe).max(1);
            let g = grid.times(&*p.process, steps, p.t_start, p.t_end)?;
            let (x, st) = s.sample(&*p.process, &oracle, &x_t, &g, &mut SeededNoise::new(7))?;
            let finite = x.isfinite().all().int64_value(&[]) == 1;
            let ratio = if finite {
                mode_stats(&x, &p.gmm)?.std_ratio
            } else {
                f64::INFINITY
            };
            ratios.insert(st.nfe, ratio);
            grids.insert(st.nfe, g);
            Ok((st.nfe, (ratio - 1.0).abs()))
        })
        .expect("NFE to target");
        let row = match target.reached {
            Some((used, _)) => {
                let g = &grids[&used];
                let walls: Vec<f64> = (0..5)
                    .map(|r| {
                        let start = Instant::now();
                        let _ = s
                            .sample(&mlp.process, &mlp, &x_mlp, g, &mut SeededNoise::new(r))
                            .expect("sample");
                        start.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                Some(Hit {
                    target,
                    ratio: ratios[&used],
                    ms_per_nfe: median(walls) / used as f64,
                })
            }
            None => None,
        };
        println!(
            "{:<28} to target: {:?}",
            s.name(),
            row.as_ref()
                .map(|h| (h.target.bracket(), h.target.interpolated()))
        );
        rows.push((s.name(), row));
    }
    let time = |h: &Hit| h.target.interpolated().unwrap_or(f64::NAN) * h.ms_per_nfe;
    let em = rows.iter().find(|r| r.0 == "Euler-Maruyama").and_then(|r| {
        r.1.as_ref()
            .map(|h| (time(h), h.target.bracket(), h.ms_per_nfe))
    });
    for (name, v) in &rows {
        let _ = match v {
            Some(h) => {
                let (lo, hi) = h.target.bracket();
                let hi = hi.unwrap_or(0);
                let speedup = em
                    .map(|(e, (e_lo, e_hi), e_ms)| {
                        let lo_ratio = e_lo as f64 * e_ms / (hi as f64 * h.ms_per_nfe);
                        let hi_ratio =
                            e_hi.unwrap_or(0) as f64 * e_ms / (lo.max(1) as f64 * h.ms_per_nfe);
                        format!("{:.1}x ({lo_ratio:.1}-{hi_ratio:.1})", e / time(h))
                    })
                    .unwrap_or_else(|| "-".into());
                writeln!(
                    md,
                    "| {name} | {:.0} ({lo}, {hi}] | {:.3} | {:.2} | {speedup} |",
                    h.target.interpolated().unwrap_or(f64::NAN),
                    h.ratio,
                    time(h)
                )
            }
            None => writeln!(md, "| {name} | > 640 | - | - | - |"),
        };
    }
}

/// The fused linear combination (`graft_tensor::fused::lincomb`) against the
/// libtorch chain it replaces: a 4-term update `a·y + b·q0 + c·q1 + d·q2`.
fn fused_ops(md: &mut String) {
    let _ = write!(
        md,
        "\n## fused 4-term linear combination vs the chain of libtorch ops\n\nOne multistep update `a y + b q0 + c q1 + d q2` (f32, contiguous); median of 200 calls.\n\n| elements | libtorch ops (us) | fused (us) | ratio |\n|---|---|---|---|\n"
    );
    let mut noise_draw_us = 0.0;
    for numel in [BATCH * DIM, 1 << 20, 1 << 22] {
        let t: Vec<Tensor> = (0..4)
            .map(|_| Tensor::randn([numel], (Kind::Float, Device::Cpu)))
            .collect();
        let time = |f: &dyn Fn() -> Tensor| {
            for _ in 0..5 {
                let _ = f();
            }
            median(
                (0..200)
                    .map(|_| {
                        let start = Instant::now();
                        let _ = f();
                        start.elapsed().as_secs_f64() * 1e6
                    })
                    .collect(),
            )
        };
        let chained = time(&|| &t[0] * 0.9 + &t[1] * 0.3 - &t[2] * 0.2 + &t[3] * 0.1);
        let fused = time(&|| {
            graft_tensor::fused::lincomb(&[(0.9, &t[0]), (0.3, &t[1]), (-0.2, &t[2]), (0.1, &t[3])])
                .expect("lincomb")
        });
        println!("lincomb {numel}: ops {chained:.1} us, fused {fused:.1} us");
        if numel == BATCH * DIM {
            // What the stochastic samplers pay per step on top: one batch of noise.
            let like = Tensor::zeros([BATCH, DIM], (Kind::Float, Device::Cpu));
            let mut src = SeededNoise::new(0);
            let draws: Vec<f64> = (0..200)
                .map(|_| {
                    let start = Instant::now();
                    let _ = src.standard_normal(&like, 0.5, 0.4).expect("noise");
                    start.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            noise_draw_us = median(draws);
        }
        let _ = writeln!(
            md,
            "| {numel} | {chained:.1} | {fused:.1} | {:.2}x |",
            chained / fused
        );
    }
    println!("one seeded noise draw [{BATCH}, {DIM}]: {noise_draw_us:.1} us");
    let _ = write!(
        md,
        "\nOne seeded noise draw of [{BATCH}, {DIM}] standard normals (ChaCha8 + ziggurat, what a stochastic sampler adds per step): {noise_draw_us:.1} us (median of 200).\n"
    );
}
