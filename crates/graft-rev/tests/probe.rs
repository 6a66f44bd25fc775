//! The reproduction's memory probe: a child process measures what a step
//! allocates above its baseline (set-up excluded), and probes for other
//! sites are skipped inside a child. (One test in this binary: the child
//! re-enters the binary with the same arguments.)

use graft_rev::experiments::probe::{probe_with_args, slope};
use graft_tensor::memory::test_args;
use graft_tensor::tch::{Device, Kind, Tensor};

#[test]
fn probe_measures_the_step_above_its_set_up() {
    let mb = 1024.0 * 1024.0;
    // Set-up holds 96 MB (baseline); the step adds 64 MB of touched memory.
    let args = test_args("probe_measures_the_step_above_its_set_up");
    let big = probe_with_args(
        "graft-rev-test-big",
        &args,
        || Ok(Tensor::ones([24 * 1024 * 1024], (Kind::Float, Device::Cpu))),
        |held| {
            let t = Tensor::ones([16 * 1024 * 1024], (Kind::Float, Device::Cpu));
            assert!(t.sum(Kind::Float).double_value(&[]) > 0.0 && held.numel() > 0);
            Ok(())
        },
    )
    .unwrap();
    // In the child for the second site, the first probe is skipped (None).
    let small = probe_with_args("graft-rev-test-small", &args, || Ok(()), |()| Ok(())).unwrap();
    let (big, small) = (big.unwrap(), small.unwrap());
    let (d_big, d_small) = (
        big.delta_bytes() as f64 / mb,
        small.delta_bytes() as f64 / mb,
    );
    assert!((60.0..80.0).contains(&d_big), "{d_big} MB");
    assert!(d_small < 8.0, "{d_small} MB");
    assert!((slope(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 2.0).abs() < 1e-12);
}
