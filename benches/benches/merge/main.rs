//! `cargo xtask bench merge`: TIES (density 0.2) and Task Arithmetic over a
//! base and 4 fine-tunes of a synthetic Llama-shaped checkpoint, with
//! `graft merge` and, when the peers environment has it, `mergekit-yaml` on
//! the same YAML and files in the same run; beside the physical floor of
//! spec §9, `T* = bytes in / read bandwidth + bytes out / write bandwidth`
//! (warm page-cache reads; writes with `fdatasync`, as a merge must end),
//! both measured on the same disk in the same run. Reports wall time, peak RSS and
//! bytes read, and writes the table to `target/bench/merge.md`.
//!
//! `GRAFT_BENCH_MERGE_SIZE=small` (default: hidden 512, 4 layers, ≈ 50 MB per
//! model in bf16) or `full` (the spec's hidden 2048, 16 layers, vocab 32000:
//! ≈ 1.9 GB per model, ≈ 10 GB of disk).

use graft_tensor::safetensors::{ShardedWriter, TensorSpec};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Shape {
    hidden: i64,
    intermediate: i64,
    layers: i64,
    heads: i64,
    vocab: i64,
}

fn llama_tensors(s: &Shape) -> Vec<(String, Vec<i64>)> {
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![s.vocab, s.hidden],
    )];
    for i in 0..s.layers {
        let p = format!("model.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            t.push((
                format!("{p}.self_attn.{proj}.weight"),
                vec![s.hidden, s.hidden],
            ));
        }
        t.push((
            format!("{p}.mlp.gate_proj.weight"),
            vec![s.intermediate, s.hidden],
        ));
        t.push((
            format!("{p}.mlp.up_proj.weight"),
            vec![s.intermediate, s.hidden],
        ));
        t.push((
            format!("{p}.mlp.down_proj.weight"),
            vec![s.hidden, s.intermediate],
        ));
        t.push((format!("{p}.input_layernorm.weight"), vec![s.hidden]));
        t.push((
            format!("{p}.post_attention_layernorm.weight"),
            vec![s.hidden],
        ));
    }
    t.push(("model.norm.weight".into(), vec![s.hidden]));
    t.push(("lm_head.weight".into(), vec![s.vocab, s.hidden]));
    t
}

/// Writes a base (seed 0) or a fine-tune (base + Student-t noise, ν = 3, scale 1e-3 × RMS) in bf16.
fn write_model(dir: &Path, s: &Shape, noise_seed: Option<i64>) {
    if dir.join("model.safetensors.index.json").is_file() || dir.join("model.safetensors").is_file()
    {
        return;
    }
    std::fs::create_dir_all(dir).expect("model dir");
    let tensors = llama_tensors(s);
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|(n, shape)| TensorSpec {
            name: n.clone(),
            dtype: graft_tensor::safetensors::Dtype::BF16,
            shape: shape.iter().map(|&d| d as usize).collect(),
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let mut w = ShardedWriter::create(dir, specs, &meta, Some(1_000_000_000)).expect("writer");
    for (i, (name, shape)) in tensors.iter().enumerate() {
        graft_tensor::tch::manual_seed(i as i64);
        let base = if name.ends_with("layernorm.weight") || name == "model.norm.weight" {
            Tensor::ones(shape.as_slice(), (Kind::Float, Device::Cpu))
        } else {
            Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * 0.02
        };
        let value = match noise_seed {
            None => base,
            Some(seed) => {
                graft_tensor::tch::manual_seed(seed * 100_003 + i as i64);
                let z = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu));
                let chi2 = (0..3)
                    .map(|_| Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)).square())
                    .fold(
                        Tensor::zeros(shape.as_slice(), (Kind::Float, Device::Cpu)),
                        |a, b| a + b,
                    );
                let t = z / (chi2 / 3.0).sqrt();
                let rms = base.square().mean(Kind::Float).sqrt();
                &base + t * rms * 1e-3
            }
        };
        w.write(name, &value.to_kind(Kind::BFloat16))
            .expect("write");
    }
    w.finish().expect("finish");
    let config = format!(
        r#"{{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": {}, "intermediate_size": {}, "num_hidden_layers": {}, "num_attention_heads": {}, "num_key_value_heads": {}, "vocab_size": {}, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "tie_word_embeddings": false, "torch_dtype": "bfloat16"}}"#,
        s.hidden, s.intermediate, s.layers, s.heads, s.heads, s.vocab
    );
    std::fs::write(dir.join("config.json"), config).expect("config");
}

struct Run {
    wall_s: f64,
    max_rss_mib: f64,
    read_bytes: u64,
    ok: bool,
}

/// Runs `cmd` and reports wall time, the child's peak RSS (wait4) and bytes it read (/proc/<pid>/io).
fn measure(mut cmd: Command) -> Run {
    let started = Instant::now();
    let Ok(child) = cmd.spawn() else {
        return Run {
            wall_s: 0.0,
            max_rss_mib: 0.0,
            read_bytes: 0,
            ok: false,
        };
    };
    let pid = child.id() as i32;
    let io_path = format!("/proc/{pid}/io");
    let mut read_bytes = 0u64;
    let mut status = 0i32;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        if let Some(v) = std::fs::read_to_string(&io_path).ok().and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("rchar: "))
                .and_then(|v| v.trim().parse().ok())
        }) {
            read_bytes = v;
        }
        // SAFETY: plain wait4 on our own child, non-blocking.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Run {
        wall_s: started.elapsed().as_secs_f64(),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        read_bytes,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// One table row for one tool's run.
fn row(table: &mut String, method: &str, tool: &str, r: &Run, floor_s: f64) {
    let _ = writeln!(
        table,
        "| {method} | {tool} | {:.2} | {:.0} | {:.2} | {:.1} |{}",
        r.wall_s,
        r.max_rss_mib,
        r.read_bytes as f64 / 1e9,
        r.wall_s / floor_s,
        if r.ok { "" } else { " FAILED" }
    );
}

fn read_bandwidth(paths: &[PathBuf]) -> (u64, f64) {
    let mut buf = vec![0u8; 8 << 20];
    let started = Instant::now();
    let mut total = 0u64;
    for p in paths {
        let mut f = std::fs::File::open(p).expect("open");
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    (total, total as f64 / started.elapsed().as_secs_f64())
}

/// Bandwidth of writing `bytes` to a new file in `dir` and `fdatasync`-ing it.
fn write_bandwidth(dir: &Path, bytes: u64) -> f64 {
    use std::io::Write as _;
    let path = dir.join("write-floor.tmp");
    let buf = vec![0x5au8; 8 << 20];
    let started = Instant::now();
    {
        let mut f = std::fs::File::create(&path).expect("create");
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n]).expect("write");
            left -= n as u64;
        }
        f.sync_data().expect("fdatasync");
    }
    let bw = bytes as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    bw
}

fn safetensors_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let size = std::env::var("GRAFT_BENCH_MERGE_SIZE").unwrap_or_else(|_| "small".into());
    let shape = match size.as_str() {
        "full" => Shape {
            hidden: 2048,
            intermediate: 5632,
            layers: 16,
            heads: 32,
            vocab: 32000,
        },
        _ => Shape {
            hidden: 512,
            intermediate: 1408,
            layers: 4,
            heads: 8,
            vocab: 8000,
        },
    };
    let dir = root.join(format!("merge-{size}"));
    println!("machine: {}", graft_nn::experiment::machine_description());
    println!(
        "generating inputs in {} (kept for later runs)",
        dir.display()
    );
    write_model(&dir.join("base"), &shape, None);
    for i in 1..=4 {
        write_model(&dir.join(format!("ft{i}")), &shape, Some(i));
    }
    let inputs: Vec<PathBuf> = ["base", "ft1", "ft2", "ft3", "ft4"]
        .iter()
        .flat_map(|m| safetensors_files(&dir.join(m)))
        .collect();
    let (bytes_in, bw) = read_bandwidth(&inputs);
    let (_, bw) = (bytes_in, bw.max(read_bandwidth(&inputs).1)); // second read: warm page cache
    let read_floor_s = bytes_in as f64 / bw;
    let bytes_out: u64 = safetensors_files(&dir.join("base"))
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let write_bw = write_bandwidth(&dir, bytes_out);
    let floor_s = read_floor_s + bytes_out as f64 / write_bw;
    let graft = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/graft");
    let mergekit = std::env::var_os("GRAFT_PEERS_PYTHON")
        .map(|p| PathBuf::from(p).with_file_name("mergekit-yaml"))
        .filter(|p| p.is_file());

    let mut table = String::new();
    let _ = writeln!(
        table,
        "inputs: base + 4 fine-tunes, {:.2} GB in all (bf16), {:.2} GB out; floor T* = {:.2} s \
         (warm-cache read {:.2} s at {:.2} GB/s + write with fdatasync {:.2} s at {:.2} GB/s)\n",
        bytes_in as f64 / 1e9,
        bytes_out as f64 / 1e9,
        floor_s,
        read_floor_s,
        bw / 1e9,
        floor_s - read_floor_s,
        write_bw / 1e9
    );
    let _ = writeln!(
        table,
        "| method | tool | wall s | peak RSS MiB | read() GB (mmap reads not counted) | wall / T* |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|");
    for (method, params) in [("ties", ", density: 0.2"), ("task_arithmetic", "")] {
        let yaml = dir.join(format!("{method}.yml"));
        let mut text = format!(
            "merge_method: {method}\nbase_model: {}\nmodels:\n",
            dir.join("base").display()
        );
        for i in 1..=4 {
            let _ = writeln!(
                text,
                "  - model: {}\n    parameters: {{weight: 0.25{params}}}",
                dir.join(format!("ft{i}")).display()
            );
        }
        text.push_str("dtype: bfloat16\n");
        std::fs::write(&yaml, text).expect("yaml");
        let out = dir.join(format!("out-graft-{method}"));
        let _ = std::fs::remove_dir_all(&out);
        let mut cmd = Command::new(&graft);
        cmd.arg("merge")
            .arg(&yaml)
            .arg(&out)
            .args(["--quiet", "-j", "2"]);
        let r = measure(cmd);
        row(&mut table, method, "graft", &r, floor_s);
        if let Some(mk) = &mergekit {
            let out = dir.join(format!("out-mergekit-{method}"));
            let _ = std::fs::remove_dir_all(&out);
            let mut cmd = Command::new(mk);
            cmd.arg(&yaml)
                .arg(&out)
                .args([
                    "--lazy-unpickle",
                    "--no-copy-tokenizer",
                    "--random-seed",
                    "0",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let m = measure(cmd);
            row(&mut table, method, "mergekit-yaml", &m, floor_s);
            if m.ok && r.ok {
                let _ = writeln!(
                    table,
                    "| {method} | speed-up | {:.1}x | | | |",
                    m.wall_s / r.wall_s
                );
            }
        }
    }
    if mergekit.is_none() {
        let _ = writeln!(
            table,
            "\nmergekit-yaml: not installed in the peers environment (`cargo xtask peers mergekit`), not measured"
        );
    }
    println!("{table}");
    let _ = std::fs::write(root.join(format!("merge-{size}.md")), &table);
}
