//! Safetensors I/O throughput: graft's writer and lazy reader against the
//! plain `std::fs` write/read of the same bytes (reading into a fresh `Vec`
//! pays for page faults that libtorch's reused allocations do not) and, when
//! the peers environment is there, the Python `safetensors` package loading
//! the same file, all in one run.
//!
//! `cargo xtask bench tensor_io`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use graft_tensor::safetensors::{Checkpoint, save};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

const TENSORS: i64 = 16;
const ELEMS: i64 = 1 << 20; // 4 MiB of f32 each, 64 MiB in all

fn tensors() -> Vec<(String, Tensor)> {
    graft_tensor::seed::seed_everything(0);
    (0..TENSORS)
        .map(|i| {
            (
                format!("layers.{i}.weight"),
                Tensor::randn([ELEMS], (Kind::Float, Device::Cpu)),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    graft_benches::print_machine();
    let dir = std::env::temp_dir().join(format!("graft-bench-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("model.safetensors");
    let floor_path = dir.join("floor.bin");
    let ts = tensors();
    let bytes = (TENSORS * ELEMS * 4) as u64;
    let meta = HashMap::new();

    let mut group = c.benchmark_group("write_64MiB");
    group.throughput(Throughput::Bytes(bytes)).sample_size(10);
    group.bench_function("graft_save", |b| {
        b.iter(|| save(&path, ts.iter().map(|(n, t)| (n.as_str(), t)), &meta).expect("save"))
    });
    let raw = std::fs::read(&path).expect("read back");
    group.bench_function("std_fs_write_same_bytes", |b| {
        b.iter(|| std::fs::write(&floor_path, &raw).expect("write"))
    });
    group.finish();

    let mut group = c.benchmark_group("read_64MiB");
    group.throughput(Throughput::Bytes(bytes)).sample_size(10);
    group.bench_function("graft_checkpoint_all_tensors", |b| {
        b.iter(|| {
            let ckpt = Checkpoint::open(&path).expect("open");
            for n in ckpt.names() {
                let _ = black_box(ckpt.tensor(n).expect("tensor"));
            }
        })
    });
    group.bench_function("std_fs_read_same_bytes", |b| {
        b.iter(|| black_box(std::fs::read(&path).expect("read")))
    });
    group.finish();

    python_peer(&path, bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Times the Python package on the same file, in this run, and prints the ratio.
fn python_peer(path: &Path, bytes: u64) {
    let Some(python) = std::env::var_os("GRAFT_PEERS_PYTHON") else {
        println!("python peer: skipped (GRAFT_PEERS_PYTHON unset; `cargo xtask bench` sets it)");
        return;
    };
    let script = "import sys,time\nfrom safetensors.numpy import load_file\nts=[]\nfor _ in range(10):\n t=time.perf_counter(); d=load_file(sys.argv[1]); ts.append(time.perf_counter()-t)\nts.sort(); print(ts[len(ts)//2])";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(path)
        .output();
    let Ok(out) = out else { return };
    let Ok(py_s) = String::from_utf8_lossy(&out.stdout).trim().parse::<f64>() else {
        println!(
            "python peer: failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    };
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let ckpt = Checkpoint::open(path).expect("open");
        for n in ckpt.names() {
            let _ = black_box(ckpt.tensor(n).expect("tensor"));
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let graft_s = times[times.len() / 2];
    let gib = bytes as f64 / (1u64 << 30) as f64;
    println!(
        "read 64 MiB, median of 10: graft {:.1} ms ({:.2} GiB/s), python safetensors.numpy {:.1} ms ({:.2} GiB/s), graft/python time ratio {:.2}",
        graft_s * 1e3,
        gib / graft_s,
        py_s * 1e3,
        gib / py_s,
        graft_s / py_s
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
