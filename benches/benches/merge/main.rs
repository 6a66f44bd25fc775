//! `cargo xtask bench merge`: TIES (density 0.2) and Task Arithmetic over a
//! base and 4 fine-tunes of a synthetic Llama-shaped checkpoint, with
//! `graft merge` and, when the peers environment has it, `mergekit-yaml` on
//! the same YAML and files in the same run, on its defaults (5B-parameter
//! output shards), with `--out-shard-size 1B`, and with its parallel
//! writer (`--async-write --write-threads 2`). Each configuration runs 3
//! times on a warm page cache (median and range), then once cold (inputs
//! evicted). Memory: the kernel's peak resident set (`wait4`) and sampled
//! peaks of anonymous and file-backed memory, separately. graft's output is
//! compared with mergekit's tensor by tensor (share of bf16 values equal
//! and within 1 ulp, largest difference). Beside them the physical floor of
//! spec §9, `T* = bytes in / read bandwidth + bytes out / write bandwidth`,
//! both measured on the same disk in the same run. Then the memory bound: a
//! two-worker Task Arithmetic merge of checkpoints with a 65,536 × 2,048
//! f32 embedding and head. The tables go to `target/bench/merge-<size>.md`.
//!
//! `GRAFT_BENCH_MERGE_SIZE=small` (default: hidden 512, 4 layers, ≈ 50 MB per
//! model in bf16) or `full` (the spec's hidden 2048, 16 layers, vocab 32000:
//! ≈ 1.9 GB per model, ≈ 10 GB of disk); `GRAFT_BENCH_MERGE_BOUND=skip`
//! leaves out the memory bound (≈ 4 GB of disk), `=small` runs it at
//! 8,192 rows.

mod bound;
mod compare;
mod inputs;
mod measure;

use inputs::{Shape, write_llama};
use measure::{Summary, evict, measure, repeat};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Warm runs per configuration.
const RUNS: usize = 3;

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

/// Builds the command that merges `yaml` into `out`.
type MakeCommand = Box<dyn Fn(&Path, &Path) -> Command>;

/// One way of running a merge.
struct Arm {
    tool: &'static str,
    options: &'static str,
    /// Builds the command for `yaml` → `out`.
    command: MakeCommand,
}

fn arms(graft: &Path, mergekit: Option<&Path>) -> Vec<Arm> {
    let g = graft.to_path_buf();
    let mut arms = vec![Arm {
        tool: "graft",
        options: "-j 2",
        command: Box::new(move |yaml, out| {
            let mut cmd = Command::new(&g);
            cmd.arg("merge")
                .arg(yaml)
                .arg(out)
                .args(["--quiet", "-j", "2"]);
            cmd
        }),
    }];
    let Some(mk) = mergekit else {
        return arms;
    };
    for (options, extra) in [
        ("defaults (5B-parameter shards)", &[][..]),
        ("--out-shard-size 1B", &["--out-shard-size", "1B"][..]),
        (
            "--async-write --write-threads 2",
            &["--async-write", "--write-threads", "2"][..],
        ),
    ] {
        let mk = mk.to_path_buf();
        arms.push(Arm {
            tool: "mergekit-yaml",
            options,
            command: Box::new(move |yaml, out| {
                let mut cmd = Command::new(&mk);
                cmd.arg(yaml)
                    .arg(out)
                    .args([
                        "--lazy-unpickle",
                        "--no-copy-tokenizer",
                        "--random-seed",
                        "0",
                        "--quiet",
                    ])
                    .args(extra)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                cmd
            }),
        });
    }
    arms
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
    let machine = graft_nn::experiment::machine_description();
    println!("machine: {machine}");
    println!(
        "generating inputs in {} (kept for later runs)",
        dir.display()
    );
    write_llama(&dir.join("base"), &shape, None);
    for i in 1..=4 {
        write_llama(&dir.join(format!("ft{i}")), &shape, Some(i));
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
    let arms = arms(&graft, mergekit.as_deref());

    let mut table = String::new();
    let _ = writeln!(
        table,
        "machine: {machine}
"
    );
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
        "| method | tool | options | wall s, median of {RUNS} warm (range) | wall s, cold | peak anonymous MiB | peak file-backed MiB | kernel peak RSS MiB | read() GB | warm median / T* |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    let mut comparisons = String::new();
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
        let mut medians: Vec<(&Arm, f64)> = Vec::new();
        let mut outs: Vec<PathBuf> = Vec::new();
        for (k, arm) in arms.iter().enumerate() {
            let out = dir.join(format!("out-{method}-{k}"));
            println!("{method}: {} {} ...", arm.tool, arm.options);
            read_bandwidth(&inputs); // warm the page cache
            let warm: Summary = repeat(
                RUNS,
                || {
                    let _ = std::fs::remove_dir_all(&out);
                },
                || (arm.command)(&yaml, &out),
            );
            // The warm runs' output is kept for the comparison; the cold run
            // writes beside it.
            let cold_out = dir.join(format!("out-{method}-{k}-cold"));
            let _ = std::fs::remove_dir_all(&cold_out);
            let (how, resident) = evict(&inputs);
            let cold = measure((arm.command)(&yaml, &cold_out));
            let _ = std::fs::remove_dir_all(&cold_out);
            let note = format!(
                "cold runs: {how}; {:.1} % of the input pages were still resident after eviction",
                resident * 100.0
            );
            if !notes.contains(&note) {
                notes.push(note);
            }
            let (median, lo, hi) = warm.wall();
            let (total, anon, file) = warm.memory();
            let read_gb = warm.runs.iter().map(|r| r.read_bytes).max().unwrap_or(0) as f64 / 1e9;
            let _ = writeln!(
                table,
                "| {method} | {} | {} | {median:.2} ({lo:.2}–{hi:.2}) | {:.2} | {anon:.0} | {file:.0} | {total:.0} | {read_gb:.2} | {:.1} |{}",
                arm.tool,
                arm.options,
                cold.wall_s,
                median / floor_s,
                if warm.ok() && cold.ok { "" } else { " FAILED" }
            );
            if warm.ok() {
                medians.push((arm, median));
                outs.push(out);
            }
        }
        if let (Some((g, tg)), Some((m, tm))) = (
            medians.iter().find(|(a, _)| a.tool == "graft"),
            medians
                .iter()
                .filter(|(a, _)| a.tool != "graft")
                .min_by(|a, b| a.1.total_cmp(&b.1)),
        ) {
            let _ = writeln!(
                table,
                "| {method} | speed-up | graft {} vs mergekit's fastest ({}) | {:.1}x | | | | | | |",
                g.options,
                m.options,
                tm / tg
            );
        }
        if outs.len() >= 2 {
            match compare::compare(&outs[0], &outs[1]) {
                Ok(a) => {
                    let _ = writeln!(
                        comparisons,
                        "| {method} | {} | {} | {:.4} % | {:.4} % | {:.3e} | {} |",
                        a.tensors,
                        a.values,
                        100.0 * a.equal as f64 / a.values.max(1) as f64,
                        100.0 * a.within_one_ulp as f64 / a.values.max(1) as f64,
                        a.max_abs_diff,
                        if a.mismatched.is_empty() {
                            "none".to_string()
                        } else {
                            a.mismatched.join(", ")
                        }
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        comparisons,
                        "| {method} | comparison failed: {e} | | | | | |"
                    );
                }
            }
        }
        for out in outs {
            let _ = std::fs::remove_dir_all(out);
        }
    }
    for note in &notes {
        let _ = writeln!(table, "\n{note}");
    }
    if mergekit.is_none() {
        let _ = writeln!(
            table,
            "\nmergekit-yaml: not installed in the peers environment (`cargo xtask peers mergekit`), not measured"
        );
    } else {
        let _ = writeln!(
            table,
            "\n### graft's output vs mergekit's (defaults), tensor by tensor\n\n| method | tensors | bf16 values | equal | within 1 ulp | max abs difference | tensors on one side only |\n|---|---|---|---|---|---|---|\n{comparisons}"
        );
    }
    match std::env::var("GRAFT_BENCH_MERGE_BOUND").as_deref() {
        Ok("skip") => {}
        Ok("small") => bound::run(&root, &graft, 8192, 2048, &mut table),
        _ => bound::run(&root, &graft, 65536, 2048, &mut table),
    }
    println!("{table}");
    let _ = std::fs::write(root.join(format!("merge-{size}.md")), &table);
}
