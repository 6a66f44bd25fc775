//! Dtype helpers: names, parsing, and the map between libtorch kinds and safetensors dtypes.

use crate::{Error, Result};
use ::safetensors::Dtype;
use tch::Kind;

/// The floating-point kinds graft works in, widest first.
pub const FLOAT_KINDS: [Kind; 4] = [Kind::Double, Kind::Float, Kind::Half, Kind::BFloat16];

/// Parses a dtype name as PyTorch, safetensors, mergekit and PEFT spell them
/// (`float32`, `fp32`, `f32`, `F32`, `bfloat16`, `bf16`, `half`, ...).
pub fn parse_kind(text: &str) -> Result<Kind> {
    let t = text
        .trim()
        .trim_start_matches("torch.")
        .to_ascii_lowercase();
    Ok(match t.as_str() {
        "float64" | "f64" | "fp64" | "double" => Kind::Double,
        "float32" | "f32" | "fp32" | "float" => Kind::Float,
        "float16" | "f16" | "fp16" | "half" => Kind::Half,
        "bfloat16" | "bf16" => Kind::BFloat16,
        "int64" | "i64" | "long" => Kind::Int64,
        "int32" | "i32" | "int" => Kind::Int,
        "int16" | "i16" => Kind::Int16,
        "int8" | "i8" => Kind::Int8,
        "uint8" | "u8" => Kind::Uint8,
        "bool" => Kind::Bool,
        _ => {
            return Err(Error::Invalid(format!(
                "unknown dtype `{text}` (expected float64, float32, float16, bfloat16, int64, int32, int16, int8, uint8 or bool)"
            )));
        }
    })
}

/// The PyTorch name of a kind (`float32`, `bfloat16`, ...).
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Double => "float64",
        Kind::Float => "float32",
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        Kind::Int64 => "int64",
        Kind::Int => "int32",
        Kind::Int16 => "int16",
        Kind::Int8 => "int8",
        Kind::Uint8 => "uint8",
        Kind::Bool => "bool",
        Kind::ComplexHalf => "complex32",
        Kind::ComplexFloat => "complex64",
        Kind::ComplexDouble => "complex128",
        Kind::Float8e5m2 => "float8_e5m2",
        Kind::Float8e4m3fn => "float8_e4m3fn",
        Kind::Float8e5m2fnuz => "float8_e5m2fnuz",
        Kind::Float8e4m3fnuz => "float8_e4m3fnuz",
        Kind::QInt8 => "qint8",
        Kind::QUInt8 => "quint8",
        Kind::QInt32 => "qint32",
    }
}

/// Whether `kind` is a real floating-point kind.
pub fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Double
            | Kind::Float
            | Kind::Half
            | Kind::BFloat16
            | Kind::Float8e5m2
            | Kind::Float8e4m3fn
            | Kind::Float8e5m2fnuz
            | Kind::Float8e4m3fnuz
    )
}

/// The safetensors dtype that stores `kind`; `name` is the tensor, for the error.
pub fn to_safetensors(kind: Kind, name: &str) -> Result<Dtype> {
    Ok(match kind {
        Kind::Double => Dtype::F64,
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        Kind::ComplexFloat => Dtype::C64,
        Kind::Float8e5m2 => Dtype::F8_E5M2,
        Kind::Float8e4m3fn => Dtype::F8_E4M3,
        Kind::Float8e5m2fnuz => Dtype::F8_E5M2FNUZ,
        Kind::Float8e4m3fnuz => Dtype::F8_E4M3FNUZ,
        other => {
            return Err(Error::UnsupportedDtype {
                name: name.to_string(),
                dtype: kind_name(other).to_string(),
                target: "safetensors",
            });
        }
    })
}

/// The libtorch kind for a safetensors dtype; `name` is the tensor, for the error.
pub fn from_safetensors(dtype: Dtype, name: &str) -> Result<Kind> {
    Ok(match dtype {
        Dtype::F64 => Kind::Double,
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        Dtype::C64 => Kind::ComplexFloat,
        Dtype::F8_E5M2 => Kind::Float8e5m2,
        Dtype::F8_E4M3 => Kind::Float8e4m3fn,
        Dtype::F8_E5M2FNUZ => Kind::Float8e5m2fnuz,
        Dtype::F8_E4M3FNUZ => Kind::Float8e4m3fnuz,
        other => {
            return Err(Error::UnsupportedDtype {
                name: name.to_string(),
                dtype: format!("{other:?}"),
                target: "libtorch",
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_float_kind_maps_to_safetensors_and_back() {
        for kind in FLOAT_KINDS {
            let dtype = to_safetensors(kind, "t").unwrap();
            assert_eq!(from_safetensors(dtype, "t").unwrap(), kind);
            assert_eq!(parse_kind(kind_name(kind)).unwrap(), kind);
        }
    }

    #[test]
    fn unknown_dtype_names_are_refused_with_the_name() {
        let err = parse_kind("float12").unwrap_err().to_string();
        assert!(err.contains("float12"), "{err}");
    }
}
