//! The ndarray bridge copies values and shapes both ways.

use graft_tensor::array::{from_array, to_array};
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::{bitwise_equal, proptest_config};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

proptest! {
    #![proptest_config(proptest_config(32))]

    #[test]
    fn tensor_to_array_to_tensor_is_identity(shape in prop::collection::vec(0i64..5, 0..4), seed in 0i64..100) {
        tch::manual_seed(seed);
        for kind in [Kind::Float, Kind::Double] {
            let t = Tensor::randn(&shape, (kind, Device::Cpu));
            let back = if kind == Kind::Float {
                from_array(&to_array::<f32>(&t).unwrap()).unwrap()
            } else {
                from_array(&to_array::<f64>(&t).unwrap()).unwrap()
            };
            prop_assert!(bitwise_equal(&t, &back));
        }
    }
}

#[test]
fn values_land_in_row_major_order_and_copies_are_independent() {
    let t = Tensor::arange(6, (Kind::Double, Device::Cpu)).reshape([2, 3]);
    let mut a = to_array::<f64>(&t).unwrap();
    assert_eq!(a.shape(), &[2, 3]);
    assert_eq!(a[[1, 0]], 3.0);
    a[[0, 0]] = 42.0;
    assert_eq!(
        t.double_value(&[0, 0]),
        0.0,
        "the array must not alias the tensor"
    );
    // A transposed tensor and a transposed array come across by value.
    let tt = to_array::<f64>(&t.tr()).unwrap();
    assert_eq!(tt[[2, 1]], 5.0);
    let arr = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0f32, 1., 2., 3., 4., 5.]).unwrap();
    let from_t = from_array(&arr.t().to_owned().into_dyn()).unwrap();
    assert_eq!(from_t.size(), [3, 2]);
    assert_eq!(from_t.double_value(&[2, 1]), 5.0);
    let from_view = from_array(&arr.clone().reversed_axes()).unwrap();
    assert!(bitwise_equal(&from_t, &from_view));
}

#[test]
fn kind_mismatch_is_an_error() {
    let t = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    let err = to_array::<f64>(&t).unwrap_err().to_string();
    assert!(err.contains("float64") && err.contains("float32"), "{err}");
}
