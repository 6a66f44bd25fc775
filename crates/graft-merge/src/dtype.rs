//! The float types a merge computes in and writes: mergekit's `dtype` and
//! `out_dtype`, as a type.

use graft_tensor::safetensors::Dtype;
use serde::{Deserialize, Serialize};

/// A float type graft can merge in and write (`dtype`, `out_dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// IEEE single precision (`float32`).
    #[serde(rename = "float32")]
    F32,
    /// IEEE half precision (`float16`).
    #[serde(rename = "float16")]
    F16,
    /// Brain float (`bfloat16`).
    #[serde(rename = "bfloat16")]
    BF16,
    /// IEEE double precision (`float64`).
    #[serde(rename = "float64")]
    F64,
}

impl DType {
    /// The safetensors dtype that stores it.
    pub fn safetensors(self) -> Dtype {
        match self {
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
            DType::F64 => Dtype::F64,
        }
    }

    /// PyTorch's name (`float32`, `bfloat16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F64 => "float64",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = String;

    /// Reads the names mergekit's users write: `float32`/`fp32`/`f32`/`float`,
    /// `float16`/`fp16`/`f16`/`half`, `bfloat16`/`bf16`,
    /// `float64`/`fp64`/`f64`/`double`, with or without `torch.`.
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text
            .trim()
            .trim_start_matches("torch.")
            .to_ascii_lowercase();
        Ok(match t.as_str() {
            "float32" | "fp32" | "f32" | "float" => DType::F32,
            "float16" | "fp16" | "f16" | "half" => DType::F16,
            "bfloat16" | "bf16" => DType::BF16,
            "float64" | "fp64" | "f64" | "double" => DType::F64,
            _ => {
                return Err(format!(
                    "`{text}` is not a dtype graft merges in (float32, float16, bfloat16, float64)"
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn names_parse_back_and_integers_are_refused() {
        for d in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            assert_eq!(d.name().parse::<DType>(), Ok(d));
        }
        assert_eq!("torch.bf16".parse::<DType>(), Ok(DType::BF16));
        assert!("int64".parse::<DType>().unwrap_err().contains("int64"));
    }
}
