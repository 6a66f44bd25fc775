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
