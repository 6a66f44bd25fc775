//! `graft sample` as a user runs it: samples and a scatter are written, and
//! impossible configurations are refused with the reason.

use std::process::Command;

fn graft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("graft runs")
}

#[test]
fn sample_writes_samples_and_a_scatter() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = graft(&[
        "sample",
        "--problem",
        "r1",
        "--sampler",
        "mrs-ode",
        "--order",
        "3",
        "--nfe",
        "20",
        "--seed",
        "3",
        "-n",
        "200",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("MRS ODE-3 data") && stdout.contains("20 NFE"),
        "{stdout}"
    );
    let ckpt =
        graft_tensor::safetensors::Checkpoint::open(out_dir.join("samples.safetensors")).unwrap();
    let t = ckpt.tensor("samples").unwrap();
    assert_eq!(t.size(), vec![200, 2]);
    assert!(
        std::fs::read_to_string(out_dir.join("samples.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    // Same seed, same samples.
    let again = dir.path().join("again");
    let out2 = graft(&[
        "sample",
        "--problem",
        "r1",
        "--sampler",
        "mrs-ode",
        "--order",
        "3",
        "--nfe",
        "20",
        "--seed",
        "3",
        "-n",
        "200",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(out2.status.success());
    let t2 = graft_tensor::safetensors::Checkpoint::open(again.join("samples.safetensors"))
        .unwrap()
        .tensor("samples")
        .unwrap();
    assert!(t.equal(&t2));
}

#[test]
fn sample_refuses_an_sde_of_order_three_and_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().to_str().unwrap();
    let out = graft(&["sample", "--sampler", "mrs-sde", "--order", "3", "--out", o]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SDE order 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = graft(&["sample", "--grid", "zigzag", "--out", o]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zigzag"));
}

/// A trained network saved with `graft_diffusion::saved::save` (a
/// conditional one, cond_dim > 0, uses its condition as a plain input).
fn saved_denoiser(dir: &std::path::Path, cond_dim: i64) {
    use graft_diffusion::learned::{MlpDenoiser, MlpShape, TrainSpec};
    use graft_diffusion::param::Parameterization;
    use graft_diffusion::saved::{ConditionSpec, SavedConfig, save};
    let p = graft_diffusion::problems::r1().unwrap();
    let shape = MlpShape {
        dim: 2,
        cond_dim,
        hidden: 16,
        layers: 2,
    };
    let mut net = MlpDenoiser::new(p.process.clone(), shape, Parameterization::Noise, 1);
    if cond_dim == 0 {
        let data = p
            .gmm
            .sample_data(256, &mut graft_diffusion::noise::seeded_rng(1))
            .unwrap();
        let spec = TrainSpec {
            steps: 10,
            batch: 64,
            lr: 1e-3,
            t_lo: p.t_end,
            t_hi: p.t_start,
        };
        net.train(&data, None, false, spec, 2).unwrap();
    }
    let mut config = SavedConfig::new(
        shape,
        Parameterization::Noise,
        p.process_spec,
        p.t_start,
        p.t_end,
    );
    if cond_dim > 0 {
        config = config.with_condition(ConditionSpec {
            dim: cond_dim,
            is_process_mean: false,
        });
    }
    save(&net, &config, dir).unwrap();
}

#[test]
fn sample_runs_a_saved_denoiser() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    saved_denoiser(&model, 0);
    let out_dir = dir.path().join("out");
    let out = graft(&[
        "sample",
        "--model",
        model.to_str().unwrap(),
        "--sampler",
        "mrs-sde",
        "--order",
        "2",
        "--nfe",
        "8",
        "-n",
        "40",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("40 samples of dimension 2, 8 NFE"),
        "{stdout}"
    );
    let ckpt =
        graft_tensor::safetensors::Checkpoint::open(out_dir.join("samples.safetensors")).unwrap();
    let samples = ckpt.tensor("samples").unwrap();
    assert_eq!(samples.size(), [40, 2]);
    assert!(samples.isfinite().all().int64_value(&[]) == 1);
    assert!(out_dir.join("samples.svg").is_file());

    // A conditional network needs its condition; a missing directory names its file.
    let cond = dir.path().join("cond");
    saved_denoiser(&cond, 3);
    let out = graft(&["sample", "--model", cond.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("conditional") && err.contains("--condition"),
        "{err}"
    );
    let out = graft(&[
        "sample",
        "--model",
        dir.path().join("none").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("config.json"),
        "{err}"
    );
}

/// The four conditions of the trivial restoration task: the clean point is
/// the negated condition, x0 = −μ.
const CENTERS: [[f64; 2]; 4] = [[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]];

/// A conditional network whose condition is the process mean (as the L2
/// digits restorer), trained a few hundred steps on x0 = −μ, μ one of
/// [`CENTERS`] plus a little jitter.
fn restorer(dir: &std::path::Path) {
    use graft_diffusion::learned::{MlpDenoiser, MlpShape, TrainSpec};
    use graft_diffusion::param::Parameterization;
    use graft_diffusion::saved::{ConditionSpec, SavedConfig, save};
    use graft_tensor::tch::{Kind, Tensor};
    graft_tensor::tch::set_num_threads(1);
    let p = graft_diffusion::problems::r1().unwrap();
    let shape = MlpShape {
        dim: 2,
        cond_dim: 2,
        hidden: 64,
        layers: 2,
    };
    let mut rng = graft_diffusion::noise::seeded_rng(11);
    let n = 1024;
    let idx: Vec<f64> = (0..n).flat_map(|i| CENTERS[i % 4]).collect();
    let centers = Tensor::from_slice(&idx).reshape([n as i64, 2]);
    let mu = &centers + graft_diffusion::noise::normal_like(&mut rng, &centers).unwrap() * 0.1;
    let x0 = -&mu;
    let mut net = MlpDenoiser::new(p.process.clone(), shape, Parameterization::Noise, 7);
    let spec = TrainSpec {
        steps: 600,
        batch: 128,
        lr: 3e-3,
        t_lo: p.t_end,
        t_hi: p.t_start,
    };
    let losses = net.train(&x0, Some(&mu), true, spec, 12).unwrap();
    assert!(losses.last().unwrap() < &losses[0], "{losses:?}");
    let config = SavedConfig::new(
        shape,
        Parameterization::Noise,
        p.process_spec,
        p.t_start,
        p.t_end,
    )
    .with_condition(ConditionSpec {
        dim: 2,
        is_process_mean: true,
    });
    save(&net, &config, dir).unwrap();
    let _ = Kind::Float;
}

fn samples_of(out_dir: &std::path::Path) -> graft_tensor::tch::Tensor {
    graft_tensor::safetensors::Checkpoint::open(out_dir.join("samples.safetensors"))
        .unwrap()
        .tensor("samples")
        .unwrap()
        .to_kind(graft_tensor::tch::Kind::Double)
}

/// Index of the nearest of the restoration targets −CENTERS.
fn nearest_target(p: &[f64]) -> usize {
    let d = |c: &[f64; 2]| (p[0] + c[0]).powi(2) + (p[1] + c[1]).powi(2);
    (0..4)
        .min_by(|&a, &b| d(&CENTERS[a]).total_cmp(&d(&CENTERS[b])))
        .unwrap()
}

#[test]
fn sample_restores_with_a_conditional_denoiser() {
    use graft_tensor::tch::{Kind, Tensor};
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("restorer");
    restorer(&model);
    // Eight conditions in a scrambled order of the centres.
    let order = [2usize, 0, 3, 1, 1, 3, 0, 2];
    let rows: Vec<f64> = order.iter().flat_map(|&i| CENTERS[i]).collect();
    let cond = Tensor::from_slice(&rows).reshape([8, 2]);
    let file = dir.path().join("cond.safetensors");
    graft_tensor::safetensors::save(&file, [("mu", &cond)], &HashMap::new()).unwrap();
    let out_dir = dir.path().join("out");
    let (m, f, o) = (
        model.to_str().unwrap(),
        file.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    );
    let out = graft(&[
        "sample",
        "--model",
        m,
        "--condition",
        f,
        "--nfe",
        "20",
        "--out",
        o,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("8 samples of dimension 2, 20 NFE") && stdout.contains("condition"),
        "{stdout}"
    );
    let x = samples_of(&out_dir);
    assert_eq!(x.size(), [8, 2]);
    let v = Vec::<f64>::try_from(x.contiguous().view([-1])).unwrap();
    for (i, &c) in order.iter().enumerate() {
        // Each sample restores its own condition: near −μ_i (targets are
        // 2.8 apart; ignoring or mixing up the conditions would fail).
        let p = &v[2 * i..2 * i + 2];
        assert_eq!(
            nearest_target(p),
            c,
            "sample {i} = {p:?} for μ = {:?}",
            CENTERS[c]
        );
        let err = ((p[0] + CENTERS[c][0]).powi(2) + (p[1] + CENTERS[c][1]).powi(2)).sqrt();
        assert!(err < 0.7, "sample {i} = {p:?} is {err} from −μ");
    }
    assert!(
        std::fs::read_to_string(out_dir.join("samples.svg"))
            .unwrap()
            .starts_with("<svg")
    );

    // A [dim] condition with -n repeats it; the key may be named.
    let one = dir.path().join("one.safetensors");
    let c1 = Tensor::from_slice(&CENTERS[3]);
    graft_tensor::safetensors::save(
        &one,
        [
            ("a", &c1),
            (
                "b",
                &Tensor::zeros([3], (Kind::Double, graft_tensor::tch::Device::Cpu)),
            ),
        ],
        &HashMap::new(),
    )
    .unwrap();
    let out = graft(&[
        "sample",
        "--model",
        m,
        "--condition",
        one.to_str().unwrap(),
        "--condition-key",
        "a",
        "-n",
        "5",
        "--out",
        o,
        "--force",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let x = samples_of(&out_dir);
    assert_eq!(x.size(), [5, 2]);
    let v = Vec::<f64>::try_from(x.contiguous().view([-1])).unwrap();
    for p in v.chunks(2) {
        assert_eq!(nearest_target(p), 3, "{p:?}");
    }

    // Errors name the file, the key and the shape.
    let fail = |args: &[&str]| {
        let out = graft(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let oname = one.to_str().unwrap();
    let e = fail(&["sample", "--model", m, "--condition", oname, "--out", o]);
    assert!(
        e.contains("--condition-key") && e.contains("a, b") && e.contains(oname),
        "{e}"
    );
    let e = fail(&[
        "sample",
        "--model",
        m,
        "--condition",
        oname,
        "--condition-key",
        "c",
        "--out",
        o,
    ]);
    assert!(e.contains("no tensor `c`") && e.contains(oname), "{e}");
    let e = fail(&[
        "sample",
        "--model",
        m,
        "--condition",
        oname,
        "--condition-key",
        "b",
        "--out",
        o,
    ]);
    assert!(
        e.contains("`b`") && e.contains("[3]") && e.contains("[n, 2]"),
        "{e}"
    );
    let e = fail(&[
        "sample",
        "--model",
        m,
        "--condition",
        f,
        "-n",
        "5",
        "--out",
        o,
        "--force",
    ]);
    assert!(
        e.contains("8 rows") && e.contains("5 samples") && e.contains(f),
        "{e}"
    );
    let plain = dir.path().join("plain");
    saved_denoiser(&plain, 0);
    let e = fail(&[
        "sample",
        "--model",
        plain.to_str().unwrap(),
        "--condition",
        f,
        "--out",
        o,
    ]);
    assert!(e.contains("unconditional") && e.contains(f), "{e}");
    let e = fail(&["sample", "--model", m, "--out", o]);
    assert!(
        e.contains("conditional") && e.contains("--condition"),
        "{e}"
    );
    let e = fail(&["sample", "--condition", f, "--out", o]);
    assert!(e.contains("--model"), "{e}");
}
