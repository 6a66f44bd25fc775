//! `cargo xtask bench diffusion`: wall time per sample batch for each
//! graft-diffusion sampler at equal NFE with a fixed MLP model (batch 256,
//! 64-D, 3×256 and 3×1024 SiLU on [x, 16 sinusoidal features of λ]), against the time
//! of the same number of bare model calls: the sampler overhead beyond the
//! model (spec target ≤ 5 % at batch 256). Writes `target/bench/diffusion.md`.

use graft_diffusion::grid::StepGrid;
use graft_diffusion::integrator::Form;
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    graft_benches::print_machine();
    let mut md = format!(
        "# diffusion samplers: overhead beyond the model\n\n{}\n\nMLP 3 hidden layers (SiLU) on [x, 16 sinusoidal features of lambda], batch {BATCH}, dim {DIM}, f32, {NFE} NFE per sample, median of {REPS} runs; overhead = sampler wall / wall of the same number of bare model calls timed right after it, minus 1 (median).\n",
        graft_nn::experiment::machine_description()
    );
    for hidden in [256, 1024] {
        run(hidden, &mut md);
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    graft_tensor::atomic::write_atomic(dir.join("diffusion.md"), md.as_bytes()).expect("write");
    println!("wrote {}", dir.join("diffusion.md").display());
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
    let samplers: Vec<(Box<dyn Sampler>, &str)> = vec![
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
    ];
    let _ = write!(
        md,
        "\n## hidden width {hidden}: {NFE} bare model calls take {model_ms:.2} ms\n\n| sampler | noise | NFE | wall (ms) | overhead vs bare model calls |\n|---|---|---|---|---|\n"
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
        let (mut walls, mut ratios) = (Vec::new(), Vec::new());
        for r in 0..REPS {
            let mut noise: Box<dyn NoiseSource> = match *noise_kind {
                "brownian" => Box::new(BrownianTree::new(r as u64, 1e-3, 1.0, 16).expect("tree")),
                _ => Box::new(SeededNoise::new(r as u64)),
            };
            let start = Instant::now();
            let (_, st) = s
                .sample(&process, &model, &x, &g, noise.as_mut())
                .expect("sample");
            let wall = start.elapsed().as_secs_f64() * 1e3;
            nfe = st.nfe;
            let reference = bare(nfe);
            walls.push(wall);
            ratios.push(wall / reference - 1.0);
        }
        let (wall, overhead) = (median(walls), median(ratios));
        println!(
            "{:<28} {noise_kind:<8} NFE {nfe:>3}  {wall:8.2} ms  overhead {:+.1} %",
            s.name(),
            100.0 * overhead
        );
        let _ = writeln!(
            md,
            "| {} | {noise_kind} | {nfe} | {wall:.2} | {:+.1} % |",
            s.name(),
            100.0 * overhead
        );
    }
}
