//! The memory bound: a two-worker Task Arithmetic merge of checkpoints
//! whose embedding and head are `rows × cols` f32 (65,536 × 2,048: 512 MiB
//! each), measured with the same probes as the comparison, and its output
//! checked exactly against an f32 re-computation.

use crate::inputs::{BOUND_TENSORS, bound_shape, bound_value, write_bound_model};
use crate::measure::{Summary, repeat};
use graft_tensor::safetensors::Checkpoint;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The target for the anonymous peak, in MiB.
const TARGET_ANON_MIB: f64 = 400.0;

/// Runs the bound and appends its section to `table`.
pub fn run(root: &Path, graft: &Path, rows: usize, cols: usize, table: &mut String) {
    let dir = root.join(format!("merge-bound-{rows}x{cols}"));
    println!(
        "memory bound: generating inputs in {} (kept)",
        dir.display()
    );
    let models: Vec<_> = (0..3u32)
        .map(|m| write_bound_model(&dir.join(format!("m{m}")), m, rows, cols))
        .collect();
    let yaml = dir.join("task_arithmetic.yml");
    let text = format!(
        "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - {{model: {}, parameters: {{weight: 0.5}}}}\n  - {{model: {}, parameters: {{weight: 0.5}}}}\n",
        models[0].display(),
        models[1].display(),
        models[2].display()
    );
    std::fs::write(&yaml, text).expect("yaml");
    let out = dir.join("out");
    let summary: Summary = repeat(
        3,
        || {
            let _ = std::fs::remove_dir_all(&out);
        },
        || {
            let mut cmd = Command::new(graft);
            cmd.arg("merge")
                .arg(&yaml)
                .arg(&out)
                .args(["--quiet", "-j", "2"]);
            cmd
        },
    );
    let exact = if summary.ok() {
        check_exact(&out, rows, cols)
    } else {
        Err("the merge failed".into())
    };
    let (wall, lo, hi) = summary.wall();
    let (total, anon, file) = summary.memory();
    let tensor_mib = (rows * cols * 4) as f64 / 1_048_576.0;
    let _ = writeln!(
        table,
        "\n### Memory bound\n\nTask Arithmetic, `graft merge -j 2`, base + 2 models whose embedding and head are \
         {rows} × {cols} f32 ({tensor_mib:.0} MiB each); 3 runs, largest peaks over them.\n"
    );
    let _ = writeln!(
        table,
        "| wall s (median, range) | peak anonymous MiB | peak file-backed MiB | kernel peak RSS MiB | output | anonymous ≤ {TARGET_ANON_MIB:.0} MiB |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|");
    let _ = writeln!(
        table,
        "| {wall:.2} ({lo:.2}–{hi:.2}) | {anon:.0} | {file:.0} | {total:.0} | {} | {} |",
        match &exact {
            Ok(n) => format!("exact ({n} values checked)"),
            Err(e) => format!("NOT exact: {e}"),
        },
        if summary.ok() && anon <= TARGET_ANON_MIB {
            "PASS"
        } else {
            "FAIL"
        }
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Checks every value of the merged checkpoint against
/// `base + (0.5·(m1 − base) + 0.5·(m2 − base))` in f32 (the order the
/// engine sums two deltas in does not change a two-term sum).
fn check_exact(out: &Path, rows: usize, cols: usize) -> Result<u64, String> {
    let ckpt = Checkpoint::open(out).map_err(|e| e.to_string())?;
    let mut checked = 0u64;
    for (t, name) in BOUND_TENSORS.iter().enumerate() {
        let bytes = ckpt
            .file_of(name)
            .and_then(|f| f.bytes(name))
            .map_err(|e| e.to_string())?;
        let n: usize = bound_shape(name, rows, cols).iter().product();
        if bytes.len() != n * 4 {
            return Err(format!("{name}: {} bytes, want {}", bytes.len(), n * 4));
        }
        for (i, c) in bytes.chunks_exact(4).enumerate() {
            let got = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let (b, m1, m2) = (
                bound_value(0, t, i),
                bound_value(1, t, i),
                bound_value(2, t, i),
            );
            let want = b + ((m1 - b) * 0.5 + (m2 - b) * 0.5);
            if got.to_bits() != want.to_bits() {
                return Err(format!("{name}[{i}]: got {got}, want {want}"));
            }
            checked += 1;
        }
    }
    Ok(checked)
}
