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

fn seeded_draws_repeat_on(device: Device) {
    let _rng = rng_lock();
    seed_everything(3);
    let a = Tensor::rand([8], (Kind::Float, device));
    seed_everything(3);
    let b = Tensor::rand([8], (Kind::Float, device));
    assert!(bitwise_equal(&a, &b), "draws on {device:?} must repeat");
}

graft_tensor::test_device!(
    seeded_draws_repeat_on,
    seeded_draws_repeat_on_cpu,
    seeded_draws_repeat_on_cuda
);
