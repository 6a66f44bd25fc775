//! Comparing two merged checkpoints tensor by tensor: the share of values
//! within one unit in the last place of their dtype, and the largest
//! absolute difference.

use graft_tensor::safetensors::{Checkpoint, Dtype};
use std::path::Path;

/// How close two checkpoints are.
#[derive(Debug, Clone, Default)]
pub struct Agreement {
    pub tensors: usize,
    pub values: u64,
    /// Values whose bit patterns are equal.
    pub equal: u64,
    /// Values at most one ulp apart (equal ones included).
    pub within_one_ulp: u64,
    pub max_abs_diff: f64,
    /// Tensors only one side has, or with different dtypes or shapes.
    pub mismatched: Vec<String>,
}

/// A float's bits mapped to integers that order like the values, so that
/// the distance between two is their distance in ulps.
fn ordered(bits: u32, width: u32) -> i64 {
    let sign = 1u32 << (width - 1);
    if bits & sign != 0 {
        -((bits & (sign - 1)) as i64)
    } else {
        bits as i64
    }
}

fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<(i64, f64)>> {
    Some(match dtype {
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| {
                let b = u16::from_le_bytes([c[0], c[1]]) as u32;
                (ordered(b, 16), f32::from_bits(b << 16) as f64)
            })
            .collect(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| {
                let b = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                (ordered(b, 32), f32::from_bits(b) as f64)
            })
            .collect(),
        _ => return None,
    })
}

/// Compares every tensor of `a` with the same-named tensor of `b`.
pub fn compare(a: &Path, b: &Path) -> Result<Agreement, String> {
    let a = Checkpoint::open(a).map_err(|e| e.to_string())?;
    let b = Checkpoint::open(b).map_err(|e| e.to_string())?;
    let mut out = Agreement::default();
    for name in a.names() {
        let (Ok(sa), Ok(sb)) = (a.spec(name), b.spec(name)) else {
            out.mismatched.push(name.to_string());
            continue;
        };
        if sa.dtype != sb.dtype || sa.shape != sb.shape {
            out.mismatched.push(name.to_string());
            continue;
        }
        let bytes = |c: &Checkpoint| {
            c.file_of(name)
                .and_then(|f| f.bytes(name))
                .map(<[u8]>::to_vec)
                .map_err(|e| e.to_string())
        };
        let (Some(va), Some(vb)) = (decode(sa.dtype, &bytes(&a)?), decode(sb.dtype, &bytes(&b)?))
        else {
            continue;
        };
        out.tensors += 1;
        for ((ka, xa), (kb, xb)) in va.iter().zip(&vb) {
            out.values += 1;
            let ulps = (ka - kb).unsigned_abs();
            out.equal += u64::from(ulps == 0);
            out.within_one_ulp += u64::from(ulps <= 1);
            out.max_abs_diff = out.max_abs_diff.max((xa - xb).abs());
        }
    }
    for name in b.names() {
        if a.spec(name).is_err() {
            out.mismatched.push(name.to_string());
        }
    }
    Ok(out)
}
