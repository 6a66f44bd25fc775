//! One seed makes libtorch and the Rust RNG repeat themselves.

use graft_tensor::seed::seed_everything;
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::{bitwise_equal, rng_lock};
use rand::Rng;

#[test]
fn same_seed_same_draws_other_seed_other_draws() {
    let _rng = rng_lock();
    let mut r1 = seed_everything(11);
    let t1 = Tensor::randn([16], (Kind::Float, Device::Cpu));
    let x1: u64 = r1.random();
    let mut r2 = seed_everything(11);
    let t2 = Tensor::randn([16], (Kind::Float, Device::Cpu));
    let x2: u64 = r2.random();
    assert!(bitwise_equal(&t1, &t2));
    assert_eq!(x1, x2);
    let mut r3 = seed_everything(12);
    let t3 = Tensor::randn([16], (Kind::Float, Device::Cpu));
    assert!(!bitwise_equal(&t1, &t3));
    assert_ne!(x1, r3.random::<u64>());
}
