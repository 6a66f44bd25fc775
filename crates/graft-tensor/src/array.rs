//! The ndarray bridge: `Tensor` <-> `ArrayD<f32|f64>`.
//!
//! Both directions **copy**: the array and the tensor never share memory, so
//! changing one never changes the other. A tensor on another device is first
//! copied to the CPU; a non-contiguous tensor or an array in a non-standard
//! layout (transposed, sliced) is copied in row-major order. The element type
//! must match the tensor's kind exactly: convert with `Tensor::to_kind` first
//! when you mean to change precision.

use crate::dtype::kind_name;
use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use tch::{Device, Kind, Tensor};

/// Element types the bridge handles.
pub trait ArrayElement: tch::kind::Element + Copy + Default + 'static {}
impl ArrayElement for f32 {}
impl ArrayElement for f64 {}

/// Copies `tensor` into a new row-major array; the kind must be `T`'s.
pub fn to_array<T: ArrayElement>(tensor: &Tensor) -> Result<ArrayD<T>> {
    let kind = tensor.f_kind()?;
    if kind != T::KIND {
        return Err(Error::DtypeMismatch {
            name: "<tensor>".into(),
            path: "<memory>".into(),
            expected: kind_name(T::KIND).into(),
            actual: kind_name(kind).into(),
        });
    }
    let cpu = tensor.f_to_device(Device::Cpu)?.f_contiguous()?;
    let shape: Vec<usize> = cpu.size().iter().map(|&d| d as usize).collect();
    let numel: usize = shape.iter().product();
    let mut data = vec![T::default(); numel];
    cpu.f_copy_data(&mut data, numel)?;
    ArrayD::from_shape_vec(IxDyn(&shape), data)
        .map_err(|e| Error::Invalid(format!("array of shape {shape:?}: {e}")))
}

/// Copies `array` into a new CPU tensor of `T`'s kind and the same shape.
pub fn from_array<T: ArrayElement>(array: &ArrayD<T>) -> Result<Tensor> {
    let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
    let standard = array.as_standard_layout();
    let data = standard
        .as_slice()
        .ok_or_else(|| Error::Invalid("array is not contiguous after as_standard_layout".into()))?;
    Ok(Tensor::f_from_slice(data)?.f_reshape(&shape)?)
}

/// Whether `kind` is one the bridge handles.
pub fn is_bridged(kind: Kind) -> bool {
    matches!(kind, Kind::Float | Kind::Double)
}
