//! The `graft` command as a user runs it.

use std::process::Command;

fn graft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("graft runs")
}

#[test]
fn reproduce_lists_the_registered_experiments() {
    let out = graft(&["reproduce", "--list"]);
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(names.contains(&"baselines".to_string()), "{names:?}");
}

#[test]
fn unknown_experiment_is_refused_with_the_registered_names() {
    let out = graft(&["reproduce", "no-such-experiment"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-experiment") && err.contains("baselines"),
        "{err}"
    );
}

fn tiny_model(dir: &std::path::Path, value: f64) {
    use graft_tensor::tch::{Device, Kind, Tensor};
    std::fs::create_dir_all(dir).unwrap();
    let w = Tensor::ones([2, 2], (Kind::BFloat16, Device::Cpu)) * value;
    graft_tensor::safetensors::save(
        dir.join("model.safetensors"),
        [("layers.0.weight", &w)],
        &Default::default(),
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
}

#[test]
fn merge_writes_the_model_only_on_success() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    tiny_model(&root.join("base"), 1.0);
    tiny_model(&root.join("a"), 1.5);
    tiny_model(&root.join("b"), 2.0);
    let yaml = root.join("merge.yml");
    std::fs::write(
        &yaml,
        format!(
            "merge_method: task_arithmetic\nbase_model: {r}/base\nmodels:\n  - model: {r}/a\n    parameters: {{weight: 1.0}}\n  - model: {r}/b\n    parameters: {{weight: 0.5}}\n",
            r = root.display()
        ),
    )
    .unwrap();
    let out = root.join("merged");
    let run = graft(&[
        "merge",
        yaml.to_str().unwrap(),
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let merged = graft_tensor::safetensors::Checkpoint::open(&out)
        .unwrap()
        .tensor("layers.0.weight")
        .unwrap();
    // 1 + 1·0.5 + 0.5·1.0 = 2.0, stored as bf16 like the base.
    assert_eq!(
        merged
            .to_kind(graft_tensor::tch::Kind::Float)
            .double_value(&[0, 0]),
        2.0
    );
    assert!(out.join("config.json").is_file());

    std::fs::write(
        &yaml,
        format!(
            "merge_method: ties\nbase_model: {r}/base\nslices: []\n",
            r = root.display()
        ),
    )
    .unwrap();
    let bad_out = root.join("bad");
    let run = graft(&["merge", yaml.to_str().unwrap(), bad_out.to_str().unwrap()]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("`slices`"));
    assert!(!bad_out.exists());
}

/// The `rev` reproduction re-executes `graft` for each memory probe, so it
/// is tested through the binary: the quick run finishes and reports its
/// claims, and the memory claims that hold at quick size hold.
#[test]
fn reproduce_rev_quick_runs_its_probes_in_child_processes() {
    let dir = tempfile::tempdir().unwrap();
    let out = graft(&[
        "reproduce",
        "rev",
        "--quick",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("rev/result.json")).unwrap())
            .unwrap();
    let claims = result["claims"].as_array().unwrap();
    let holds = |id: &str| {
        claims
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no claim {id}"))["pass"]
            == true
    };
    for id in [
        "rev-slope",
        "ledger-agrees",
        "heun-memory-flat",
        "unet-volume",
    ] {
        assert!(holds(id), "{id}: {claims:?}");
    }
}
