//! Float tensor bytes ↔ f32, into caller-owned buffers (the merge's hot path).
//!
//! bf16 is converted with plain bit operations (widening is exact; narrowing
//! rounds to nearest, ties to even, as torch and `half` do), written so the
//! compiler vectorises the loops; f16 goes through `half`.

use graft_tensor::safetensors::Dtype;

/// The f32 whose top half is the bf16 `bits` (exact).
fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// `x` rounded to bf16, nearest with ties to even; NaN stays a quiet NaN.
fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = ((bits >> 16) & 1) + 0x7fff;
    (bits.wrapping_add(round) >> 16) as u16
}

/// Whether `dtype` is a float type the merge reads and writes.
pub fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

/// Decodes little-endian `bytes` of `dtype` into `out` (one value per
/// element; `bytes.len()` must be `out.len()` × the dtype's width).
/// Returns `false` for a dtype that is not a float type.
pub fn decode_into(dtype: Dtype, bytes: &[u8], out: &mut [f32]) -> bool {
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        Dtype::F64 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32;
            }
        }
        _ => return false,
    }
    true
}

/// Appends `values` encoded in `dtype` (round to nearest even), little-endian,
/// to `out`. Returns `false` for a dtype that is not a float type.
pub fn encode_extend(dtype: Dtype, values: &[f32], out: &mut Vec<u8>) -> bool {
    let width = match dtype {
        Dtype::F32 => 4,
        Dtype::BF16 | Dtype::F16 => 2,
        Dtype::F64 => 8,
        _ => return false,
    };
    let at = out.len();
    out.resize(at + width * values.len(), 0);
    let dst = &mut out[at..];
    match dtype {
        Dtype::F32 => {
            for (c, v) in dst.chunks_exact_mut(4).zip(values) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        Dtype::BF16 => {
            for (c, v) in dst.chunks_exact_mut(2).zip(values) {
                c.copy_from_slice(&f32_to_bf16(*v).to_le_bytes());
            }
        }
        Dtype::F16 => {
            for (c, v) in dst.chunks_exact_mut(2).zip(values) {
                c.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes());
            }
        }
        _ => {
            for (c, v) in dst.chunks_exact_mut(8).zip(values) {
                c.copy_from_slice(&f64::from(*v).to_le_bytes());
            }
        }
    }
    true
}

/// Decodes a float tensor's little-endian bytes to a new f32 vector.
pub fn decode_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let width = dtype.bitsize() / 8;
    let mut out = vec![0.0f32; bytes.len() / width.max(1)];
    decode_into(dtype, bytes, &mut out).then_some(out)
}

/// Encodes f32 values in `dtype` (round to nearest even), little-endian.
pub fn encode_f32(dtype: Dtype, values: &[f32]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    encode_extend(dtype, values, &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit patterns that exercise rounding: ties both ways, carries into the
    /// exponent, the largest finite values, subnormals, zeros, infinities.
    fn samples() -> Vec<f32> {
        let mut v: Vec<f32> = [
            0x3f80_8000u32,
            0x3f81_8000,
            0x3f80_7fff,
            0x3f80_8001,
            0x7f7f_ffff,
            0xff7f_ffff,
            0x7f7f_8000,
            0x0000_0001,
            0x0000_8000,
            0x8000_0000,
            0x0001_8000,
            0x7f80_0000,
            0xff80_0000,
            0x3fff_ffff,
        ]
        .into_iter()
        .map(f32::from_bits)
        .collect();
        let mut x = 0x1234_5678u32;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let f = f32::from_bits(x);
            if !f.is_nan() {
                v.push(f);
            }
        }
        v
    }

    #[test]
    fn bf16_narrowing_matches_half_bit_for_bit() {
        for x in samples() {
            assert_eq!(
                f32_to_bf16(x),
                half::bf16::from_f32(x).to_bits(),
                "{x:e} ({:#x})",
                x.to_bits()
            );
        }
    }

    #[test]
    fn every_dtype_round_trips_through_the_buffers() {
        let values = samples();
        for dtype in [Dtype::F32, Dtype::BF16, Dtype::F16, Dtype::F64] {
            let bytes = encode_f32(dtype, &values).unwrap();
            let back = decode_f32(dtype, &bytes).unwrap();
            let expect: Vec<f32> = match dtype {
                Dtype::BF16 => values
                    .iter()
                    .map(|v| half::bf16::from_f32(*v).to_f32())
                    .collect(),
                Dtype::F16 => values
                    .iter()
                    .map(|v| half::f16::from_f32(*v).to_f32())
                    .collect(),
                _ => values.clone(),
            };
            for (b, e) in back.iter().zip(&expect) {
                assert_eq!(b.to_bits(), e.to_bits(), "{dtype:?}");
            }
        }
        assert!(decode_f32(Dtype::I64, &[0; 8]).is_none());
        assert!(encode_f32(Dtype::U8, &[1.0]).is_none());
    }
}
