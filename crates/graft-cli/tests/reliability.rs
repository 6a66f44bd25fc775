//! The promises of docs/reliability.md, kept by the `graft` binary: a
//! user's files are never deleted, a killed run leaves its output absent or
//! complete and nothing behind for long, bad input is a one-line error and
//! never a panic, a hang or a runaway.

use graft_tensor::tch::{Device, Kind, Tensor};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::*;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn temp_entries(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|e| e.starts_with(".graft-"))
        .collect()
}

/// A checkpoint with one `[rows, 256]` f32 tensor of `value` and an int64 buffer.
fn model(dir: &Path, rows: i64, value: f64, position_offset: i64) {
    fs::create_dir_all(dir).unwrap();
    let w = Tensor::ones([rows, 256], (Kind::Float, Device::Cpu)) * value;
    let pos = Tensor::arange(8, (Kind::Int64, Device::Cpu)) + position_offset;
    graft_tensor::safetensors::save(
        dir.join("model.safetensors"),
        [("layers.0.weight", &w), ("position_ids", &pos)],
        &Default::default(),
    )
    .unwrap();
    fs::write(dir.join("config.json"), "{}").unwrap();
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    yaml: PathBuf,
}

impl Fixture {
    fn new(rows: i64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        model(&root.join("base"), rows, 1.0, 0);
        model(&root.join("a"), rows, 1.5, 0);
        model(&root.join("b"), rows, 2.0, 0);
        let yaml = root.join("merge.yml");
        fs::write(
            &yaml,
            format!(
                "merge_method: ties\nbase_model: {r}/base\nparameters: {{density: 0.5}}\nmodels:\n  - model: {r}/a\n    parameters: {{weight: 1.0}}\n  - model: {r}/b\n    parameters: {{weight: 0.5}}\n",
                r = root.display()
            ),
        )
        .unwrap();
        Self {
            _tmp: tmp,
            root,
            yaml,
        }
    }

    fn path(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

#[test]
fn merge_never_deletes_a_users_files() {
    let fx = Fixture::new(4);
    let yaml = fx.yaml.to_str().unwrap();
    // A directory holding a user's file: refused with and without --force.
    let d = fx.root.join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("IMPORTANT.txt"), "keep").unwrap();
    let err = fails(&["merge", yaml, d.to_str().unwrap(), "--quiet"]);
    assert!(
        err.contains("IMPORTANT.txt") && err.contains("--force"),
        "{err}"
    );
    let err = fails(&["merge", yaml, d.to_str().unwrap(), "--quiet", "--force"]);
    assert!(err.contains("did not write"), "{err}");
    assert_eq!(fs::read_to_string(d.join("IMPORTANT.txt")).unwrap(), "keep");
    // The inputs' parent, an input, a directory inside an input.
    for (out, word) in [
        (fx.path(""), "contains the input"),
        (fx.path("base"), "is the input"),
        (fx.path("a/merged"), "lies inside the input"),
    ] {
        let err = fails(&["merge", yaml, &out, "--quiet", "--force"]);
        assert!(err.contains(word), "{out}: {err}");
    }
    // A file in the output's place stays a file.
    let f = fx.root.join("f.txt");
    fs::write(&f, "file").unwrap();
    let err = fails(&["merge", yaml, f.to_str().unwrap(), "--quiet"]);
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(fs::read_to_string(&f).unwrap(), "file");
    for m in ["base", "a", "b"] {
        assert_eq!(
            entries(&fx.root.join(m)),
            ["config.json", "model.safetensors"]
        );
    }
    assert!(temp_entries(&fx.root).is_empty());
    // An earlier graft output is replaced with --force only.
    let out = fx.path("out");
    assert!(graft(&["merge", yaml, &out, "--quiet"]).status.success());
    let err = fails(&["merge", yaml, &out, "--quiet"]);
    assert!(err.contains("--force"), "{err}");
    assert!(
        graft(&["merge", yaml, &out, "--quiet", "--force"])
            .status
            .success()
    );
    assert!(temp_entries(&fx.root).is_empty());
}

/// Merges with `yaml` into `out`, which must succeed.
fn merge_ok(yaml: &str, out: &Path) {
    let done = graft(&["merge", yaml, out.to_str().unwrap(), "--quiet"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// The merged bytes of a completed merge into `out`.
fn merged_bytes(out: &Path) -> Vec<u8> {
    fs::read(out.join("model.safetensors")).unwrap()
}

#[test]
fn a_killed_merge_leaves_its_output_absent_or_complete_and_the_next_run_cleans_up() {
    // 4096 x 256 f32 = 4 MiB per model: a merge takes tens of milliseconds.
    let fx = Fixture::new(4096);
    let yaml = fx.yaml.to_str().unwrap();
    let reference = fx.root.join("reference");
    merge_ok(yaml, &reference);
    let expected = merged_bytes(&reference);
    let out = fx.root.join("out");
    let mut complete = 0;
    for k in 0..12u64 {
        let mut child = graft_cmd(&["merge", yaml, out.to_str().unwrap(), "--quiet", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(3 + 11 * k));
        let _ = child.kill();
        child.wait().unwrap();
        if out.exists() {
            assert_eq!(merged_bytes(&out), expected, "kill {k}: a partial output");
            complete += 1;
        }
        // The next run removes what the killed one left.
        let next = graft(&["merge", yaml, out.to_str().unwrap(), "--quiet", "--force"]);
        assert!(
            next.status.success(),
            "{}",
            String::from_utf8_lossy(&next.stderr)
        );
        assert_eq!(merged_bytes(&out), expected);
        assert!(
            temp_entries(&fx.root).is_empty(),
            "kill {k}: {:?}",
            entries(&fx.root)
        );
        fs::remove_dir_all(&out).unwrap();
    }
    assert!(
        complete < 12,
        "no kill landed before the commit: the test saw nothing"
    );
}

#[test]
fn a_kill_at_any_commit_step_leaves_an_output_old_or_new_never_both_hidden() {
    let fx = Fixture::new(4);
    let yaml = fx.yaml.to_str().unwrap();
    let out = fx.root.join("out");
    merge_ok(yaml, &out);
    let old = merged_bytes(&out);
    // A different merge, so old and new outputs differ.
    let linear = fx.root.join("linear.yml");
    fs::write(
        &linear,
        fs::read_to_string(&fx.yaml)
            .unwrap()
            .replace("merge_method: ties", "merge_method: linear"),
    )
    .unwrap();
    for faults in [
        "commit-before-rename",
        "commit-after-exchange",
        "no-exchange,commit-between-renames",
    ] {
        let status = graft_cmd(&[
            "merge",
            linear.to_str().unwrap(),
            out.to_str().unwrap(),
            "--quiet",
            "--force",
        ])
        .env("GRAFT_FAULT", faults)
        .stderr(Stdio::null())
        .status()
        .unwrap();
        assert!(!status.success(), "{faults}: the fault did not fire");
        // The next run (any graft command writing `out`) restores or cleans.
        let again = graft(&["merge", yaml, out.to_str().unwrap(), "--quiet", "--force"]);
        assert!(
            again.status.success(),
            "{faults}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(merged_bytes(&out), old, "{faults}");
        assert!(
            temp_entries(&fx.root).is_empty(),
            "{faults}: {:?}",
            entries(&fx.root)
        );
    }
    // Between the two renames the output is absent; the next run puts the old one back.
    let status = graft_cmd(&[
        "merge",
        linear.to_str().unwrap(),
        out.to_str().unwrap(),
        "--quiet",
        "--force",
    ])
    .env("GRAFT_FAULT", "no-exchange,commit-between-renames")
    .stderr(Stdio::null())
    .status()
    .unwrap();
    assert!(!status.success());
    assert!(!out.exists());
    let err = fails(&["merge", yaml, out.to_str().unwrap(), "--quiet"]);
    assert!(
        err.contains("--force"),
        "the old output is back and protected: {err}"
    );
    assert_eq!(merged_bytes(&out), old);
}

#[test]
fn a_killed_sample_leaves_its_output_absent_or_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("samples");
    let args = |o: &Path| {
        vec![
            "sample".to_string(),
            "--problem".into(),
            "r2".into(),
            "-n".into(),
            "3000".into(),
            "--nfe".into(),
            "20".into(),
            "--out".into(),
            o.display().to_string(),
            "--force".into(),
        ]
    };
    let argv = args(&out);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut complete = 0;
    for k in 0..6u64 {
        let mut child = graft_cmd(&argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + 90 * k));
        let _ = child.kill();
        child.wait().unwrap();
        if out.exists() {
            let ckpt = graft_tensor::safetensors::Checkpoint::open(out.join("samples.safetensors"))
                .expect("a complete samples file");
            assert_eq!(ckpt.spec("samples").unwrap().shape, [3000, 64]);
            assert!(out.join("samples.svg").is_file());
            complete += 1;
            fs::remove_dir_all(&out).unwrap();
        }
        let left = temp_entries(tmp.path());
        if !left.is_empty() {
            // The next run cleans what the killed one left.
            let next = graft(&argv);
            assert!(
                next.status.success(),
                "{}",
                String::from_utf8_lossy(&next.stderr)
            );
            assert!(temp_entries(tmp.path()).is_empty(), "kill {k}");
            fs::remove_dir_all(&out).unwrap();
        }
    }
    assert!(
        complete < 6,
        "no kill landed before the commit: the test saw nothing"
    );
}

#[test]
fn merge_refuses_bad_options_and_inputs_before_writing_anything() {
    let fx = Fixture::new(4);
    let yaml = fx.yaml.to_str().unwrap();
    let out = fx.path("out");
    let err = fails(&["merge", yaml, &out, "-j", "20000"]);
    assert!(err.contains("threads") && err.contains("1024"), "{err}");
    let err = fails(&["merge", yaml, &out, "--out-shard-size", "0"]);
    assert!(err.contains("shard size"), "{err}");
    // An integer tensor whose values differ: an error unless asked to copy.
    model(&fx.root.join("b"), 4, 2.0, 1);
    let err = fails(&["merge", yaml, &out, "--quiet"]);
    assert!(
        err.contains("position_ids") && err.contains("--copy-unmergeable"),
        "{err}"
    );
    let ok = graft(&["merge", yaml, &out, "--quiet", "--copy-unmergeable"]);
    assert!(ok.status.success());
    assert!(
        String::from_utf8_lossy(&ok.stderr).contains("position_ids"),
        "warned"
    );
    fs::remove_dir_all(&out).unwrap();
    // Weights that sum to zero under normalize: merged, with a warning.
    let zero = fx.root.join("zero.yml");
    fs::write(
        &zero,
        format!(
            "merge_method: linear\nmodels:\n  - model: {r}/a\n    parameters: {{weight: 1.0}}\n  - model: {r}/base\n    parameters: {{weight: -1.0}}\n",
            r = fx.root.display()
        ),
    )
    .unwrap();
    let ok = graft(&["merge", zero.to_str().unwrap(), &out, "--quiet"]);
    assert!(ok.status.success());
    assert!(
        String::from_utf8_lossy(&ok.stderr).contains("sum to 0"),
        "warned"
    );
    fs::remove_dir_all(&out).unwrap();
    // A non-float out_dtype and a duplicate model are refused at parse time.
    let text = fs::read_to_string(&fx.yaml).unwrap();
    let bad = fx.root.join("bad.yml");
    fs::write(&bad, format!("{text}out_dtype: int64\n")).unwrap();
    let err = fails(&["merge", bad.to_str().unwrap(), &out]);
    assert!(err.contains("out_dtype") && err.contains("int64"), "{err}");
    let dup = text.replace(
        &format!("{}/b\n", fx.root.display()),
        &format!("{}/a\n", fx.root.display()),
    );
    fs::write(&bad, dup).unwrap();
    let err = fails(&["merge", bad.to_str().unwrap(), &out]);
    assert!(
        err.contains("models[1]") && err.contains("already"),
        "{err}"
    );
    assert!(!Path::new(&out).exists());
    assert!(temp_entries(&fx.root).is_empty());
}

#[test]
fn merge_reads_the_yaml_mergekit_users_write_and_refuses_special_files() {
    let fx = Fixture::new(4);
    let out = fx.path("out");
    // A byte-order mark and `<<` merge keys, as PyYAML accepts them.
    let yaml = format!(
        "\u{feff}merge_method: task_arithmetic\nbase_model: {r}/base\ncommon: &common\n  weight: 0.5\nmodels:\n  - model: {r}/a\n    parameters:\n      <<: *common\n  - model: {r}/b\n    parameters:\n      <<: *common\n      density: 1.0\n",
        r = fx.root.display()
    );
    let path = fx.root.join("anchors.yml");
    fs::write(&path, yaml).unwrap();
    let err = fails(&["merge", path.to_str().unwrap(), &out, "--quiet"]);
    // `common` is not a mergekit key: named, not a parse failure.
    assert!(
        err.contains("`common`") && err.contains("unknown key"),
        "{err}"
    );
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("common: &common", "parameters: &common");
    fs::write(&path, text).unwrap();
    let ok = graft(&["merge", path.to_str().unwrap(), &out, "--quiet"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A FIFO given as the config or a model: an error at once, not a hang.
    let fifo = fx.root.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let started = Instant::now();
    let err = fails(&["merge", fifo.to_str().unwrap(), &fx.path("o2")]);
    assert!(err.contains("FIFO"), "{err}");
    let yaml = fs::read_to_string(&fx.yaml).unwrap().replace(
        &format!("{}/b\n", fx.root.display()),
        &format!("{}\n", fifo.display()),
    );
    fs::write(fx.root.join("fifo.yml"), yaml).unwrap();
    let err = fails(&["merge", &fx.path("fifo.yml"), &fx.path("o2")]);
    assert!(err.contains("FIFO") && err.contains("pipe"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // A bad header: one line that says what is wrong, no Debug dump.
    fs::write(
        fx.root.join("b/model.safetensors"),
        b"\x0f\0\0\0\0\0\0\0{\"a\": nonsense}",
    )
    .unwrap();
    let err = fails(&["merge", fx.yaml.to_str().unwrap(), &fx.path("o2")]);
    assert!(
        err.contains("model.safetensors") && err.contains("invalid JSON"),
        "{err}"
    );
    assert!(
        !err.contains("InvalidHeader") && !err.contains("Error("),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // A missing file: the OS error once.
    let err = fails(&["merge", &fx.path("nope.yml"), &fx.path("o2")]);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

/// A saved unconditional denoiser with `mutate` applied to its config.json.
fn saved_model(dir: &Path, mutate: impl Fn(&mut serde_json::Value)) {
    use graft_diffusion::learned::{MlpDenoiser, MlpShape};
    use graft_diffusion::param::Parameterization;
    use graft_diffusion::saved::{SavedConfig, save};
    let p = graft_diffusion::problems::r1().unwrap();
    let shape = MlpShape {
        dim: 2,
        cond_dim: 0,
        hidden: 8,
        layers: 2,
    };
    let net = MlpDenoiser::new(p.process.clone(), shape, Parameterization::Noise, 1);
    let config = SavedConfig::new(
        shape,
        Parameterization::Noise,
        p.process_spec,
        p.t_start,
        p.t_end,
    );
    save(&net, &config, dir).unwrap();
    let path = dir.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    mutate(&mut json);
    fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
}

#[test]
fn sample_validates_a_saved_model_before_allocating_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "neg-dim",
            Box::new(|j| j["shape"]["dim"] = (-2).into()),
            "shape.dim",
        ),
        (
            "layers",
            Box::new(|j| j["shape"]["layers"] = 1_000_000.into()),
            "shape.layers",
        ),
        (
            "hidden",
            Box::new(|j| j["shape"]["hidden"] = 60_000.into()),
            "parameters",
        ),
        (
            "times",
            Box::new(|j| j["t_start"] = (-1.0).into()),
            "t_start",
        ),
        (
            "more-layers",
            Box::new(|j| j["shape"]["layers"] = 3.into()),
            "l2.weight",
        ),
        (
            "wider",
            Box::new(|j| j["shape"]["hidden"] = 9.into()),
            "l0.weight",
        ),
    ];
    for (name, mutate, word) in cases {
        let dir = tmp.path().join(name);
        saved_model(&dir, mutate);
        let started = Instant::now();
        let err = fails(&["sample", "--model", dir.to_str().unwrap(), "--out", o]);
        assert!(err.contains(word), "{name}: {err}");
        assert!(started.elapsed() < Duration::from_secs(20), "{name}");
    }
    // Weights and mu that are not finite, or mu of the wrong length.
    let dir = tmp.path().join("nan");
    saved_model(&dir, |_| {});
    let weights = dir.join("model.safetensors");
    let read = || -> Vec<(String, Tensor)> {
        let ckpt = graft_tensor::safetensors::Checkpoint::open(&weights).unwrap();
        ckpt.names()
            .iter()
            .map(|n| (n.clone(), ckpt.tensor(n).unwrap()))
            .collect()
    };
    let good = read();
    let tensors = read();
    let write = |tensors: &[(String, Tensor)]| {
        graft_tensor::safetensors::save(
            &weights,
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            &Default::default(),
        )
        .unwrap()
    };
    let first = tensors[0].0.clone();
    let _ = tensors[0].1.get(0).fill_(f64::NAN);
    write(&tensors);
    let err = fails(&["sample", "--model", dir.to_str().unwrap(), "--out", o]);
    assert!(err.contains("non-finite") && err.contains(&first), "{err}");
    let mut with_mu = good;
    with_mu.retain(|(n, _)| n != "process.mu");
    with_mu.push(("process.mu".into(), Tensor::from_slice(&[0.0f64, 1.0, 2.0])));
    write(&with_mu);
    let err = fails(&["sample", "--model", dir.to_str().unwrap(), "--out", o]);
    assert!(err.contains("process.mu") && err.contains("[3]"), "{err}");
    with_mu.pop();
    with_mu.push((
        "process.mu".into(),
        Tensor::from_slice(&[0.0f64, f64::INFINITY]),
    ));
    write(&with_mu);
    let err = fails(&["sample", "--model", dir.to_str().unwrap(), "--out", o]);
    assert!(
        err.contains("process.mu") && err.contains("non-finite"),
        "{err}"
    );
    assert!(!out.exists());
    assert!(temp_entries(tmp.path()).is_empty());
}

#[test]
fn sample_bounds_its_sizes_and_checks_the_device() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("out");
    let o = o.to_str().unwrap();
    for (args, word) in [
        (vec!["-n", "100000000000"], "--samples"),
        (vec!["--nfe", "18446744073709551615"], "--nfe"),
        (vec!["--nfe", "0"], "--nfe"),
        (vec!["-n", "9000000"], "memory"),
    ] {
        let mut argv = vec!["sample", "--problem", "r2", "--out", o];
        argv.extend(args);
        let started = Instant::now();
        let err = fails(&argv);
        assert!(err.contains(word), "{argv:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(20), "{argv:?}");
    }
    for device in ["xyz", "cuda:7"] {
        let out = graft_cmd(&["sample", "-n", "10", "--out", o])
            .env("GRAFT_DEVICE", device)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if device == "cuda:7" && graft_tensor::tch::Cuda::device_count() > 7 {
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{device}: {err}");
        assert!(err.contains("GRAFT_DEVICE"), "{err}");
    }
    assert!(!Path::new(o).exists());
}
