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

/// A trained network saved with `graft_diffusion::saved::save`.
fn saved_denoiser(dir: &std::path::Path, cond_dim: i64) {
    use graft_diffusion::learned::{MlpDenoiser, MlpShape, TrainSpec};
    use graft_diffusion::param::Parameterization;
    use graft_diffusion::saved::{SavedConfig, save};
    let p = graft_diffusion::experiments::problems::r1().unwrap();
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
    let config = SavedConfig::new(
        shape,
        Parameterization::Noise,
        p.process_spec,
        p.t_start,
        p.t_end,
    );
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
        !out.status.success() && err.contains("conditional"),
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
