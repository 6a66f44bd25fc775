//! The reversible MBConv 3D U-Net: shapes, gradients equal plain autograd
//! (f64), retained bytes independent of blocks per level, the synthetic
//! volumes' nested labels and the Dice loss and metric.

mod common;

use common::{assert_grads_close, grads, rel_err, zero_grads};
use graft_rev::unet::{UNet3d, UNetConfig, dice_bce_loss, dice_scores, soft_dice_loss};
use graft_rev::{Error, RunOptions, Strategy, synth};
use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Kind, Tensor};

fn tiny(blocks: usize) -> UNetConfig {
    UNetConfig {
        in_channels: 4,
        out_channels: 3,
        widths: vec![4, 8],
        blocks_per_level: blocks,
        expansion: 2,
        groups: 2,
    }
}

#[test]
fn output_has_the_input_grid_and_three_channels() {
    let _rng = common::seeded(1);
    let vs = VarStore::new(Device::Cpu);
    let net = UNet3d::new(&vs.root(), UNetConfig::new(3, 4, 1, 2)).unwrap();
    for s in Strategy::ALL {
        let x = Tensor::randn([2, 4, 8, 8, 8], (Kind::Float, Device::Cpu));
        let (logits, _tape) = net.forward(&x, RunOptions::train(s)).unwrap();
        assert_eq!(logits.size(), vec![2, 3, 8, 8, 8]);
    }
    let bad = Tensor::randn([1, 4, 6, 8, 8], (Kind::Float, Device::Cpu));
    assert!(matches!(
        net.forward(&bad, RunOptions::train(Strategy::Reversible)),
        Err(Error::ShapeMismatch { .. })
    ));
    let odd = UNetConfig {
        widths: vec![5],
        ..tiny(1)
    };
    assert!(UNet3d::new(&vs.root().sub("odd"), odd).is_err());
    let groups = UNetConfig {
        groups: 3,
        ..tiny(1)
    };
    assert!(UNet3d::new(&vs.root().sub("groups"), groups).is_err());
}

#[test]
fn reversible_unet_gradients_equal_autograd_f64() {
    let _rng = common::seeded(2);
    let mut vs = VarStore::new(Device::Cpu);
    let net = UNet3d::new(&vs.root(), tiny(2)).unwrap();
    vs.set_kind(Kind::Double);
    let o = (Kind::Double, Device::Cpu);
    let x = Tensor::randn([1, 4, 4, 4, 4], o);
    let w = Tensor::randn([1, 3, 4, 4, 4], o);
    let mut results = Vec::new();
    for s in Strategy::ALL {
        zero_grads(&vs);
        let xl = x.detach().set_requires_grad(true);
        let (logits, tape) = net.forward(&xl, RunOptions::train(s)).unwrap();
        let loss = (logits * &w).sum(Kind::Double);
        loss.backward();
        net.backward(tape).unwrap();
        results.push((xl.grad().copy(), grads(&vs)));
    }
    let (gx_ref, g_ref) = &results[0];
    for (gx, g) in &results[1..] {
        assert!(rel_err(gx, gx_ref) <= 1e-9, "{}", rel_err(gx, gx_ref));
        assert_grads_close(g, g_ref, 1e-9, "unet");
    }
}

#[test]
fn retained_bytes_do_not_grow_with_blocks_per_level() {
    let _rng = common::seeded(3);
    let x = Tensor::randn([1, 4, 8, 8, 8], (Kind::Float, Device::Cpu));
    let ledger = |blocks: usize, s: Strategy| {
        let vs = VarStore::new(Device::Cpu);
        let net = UNet3d::new(&vs.root(), tiny(blocks)).unwrap();
        let (_, tape) = net.forward(&x, RunOptions::train(s)).unwrap();
        tape.ledger()
    };
    let (r1, r4) = (
        ledger(1, Strategy::Reversible),
        ledger(4, Strategy::Reversible),
    );
    // Only the seeds grow: 8 bytes per block, 3 level stacks.
    assert_eq!(r4.total() - r1.total(), 3 * 3 * 8);
    let (c1, c4) = (
        ledger(1, Strategy::Checkpoint),
        ledger(4, Strategy::Checkpoint),
    );
    assert!(c4.boundary_bytes >= 4 * c1.boundary_bytes);
}

#[test]
fn synthetic_volumes_have_nested_regions_and_z_scored_channels() {
    for seed in 0..4 {
        let v = synth::volume(24, seed).unwrap();
        assert_eq!(v.image.size(), vec![4, 24, 24, 24]);
        let (wt, tc, et) = (v.target.get(0), v.target.get(1), v.target.get(2));
        // ET ⊂ TC ⊂ WT, all present.
        assert_eq!(
            (&et * (&tc * -1.0 + 1.0))
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
        assert_eq!(
            (&tc * (&wt * -1.0 + 1.0))
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
        for r in [&wt, &tc, &et] {
            assert!(r.sum(Kind::Float).double_value(&[]) > 0.0);
        }
        let m = v.image.mean_dim(&[1i64, 2, 3][..], false, Kind::Float);
        let s = v.image.std_dim(&[1i64, 2, 3][..], false, false);
        assert!(m.abs().max().double_value(&[]) < 1e-4);
        assert!((s - 1.0).abs().max().double_value(&[]) < 1e-3);
        // FLAIR is brighter inside the whole tumour than outside it.
        let flair = v.image.get(0);
        let inside = (&flair * &wt).sum(Kind::Float) / wt.sum(Kind::Float);
        let outside =
            (&flair * (&wt * -1.0 + 1.0)).sum(Kind::Float) / (&wt * -1.0 + 1.0).sum(Kind::Float);
        assert!(inside.double_value(&[]) > outside.double_value(&[]) + 1.0);
    }
    let a = synth::volume(16, 7).unwrap();
    let b = synth::volume(16, 7).unwrap();
    assert!(graft_tensor::testing::bitwise_equal(&a.image, &b.image));
}

#[test]
fn dice_matches_its_closed_form() {
    // One channel: prediction covers 3 voxels, target 2, overlap 1 → 2·1/5.
    let target =
        Tensor::from_slice(&[1.0f32, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).view([1, 1, 2, 2, 2]);
    let logits = Tensor::from_slice(&[10.0f32, -10.0, 10.0, 10.0, -10.0, -10.0, -10.0, -10.0])
        .view([1, 1, 2, 2, 2]);
    let d = dice_scores(&logits, &target).unwrap();
    assert!((d[0] - 0.4).abs() < 1e-12);
    // Soft Dice with ε = 1 at saturated logits: 1 − (2·1 + 1)/(3 + 2 + 1).
    let l = soft_dice_loss(&logits, &target).unwrap().double_value(&[]);
    assert!((l - 0.5).abs() < 1e-4, "{l}");
    // Perfect prediction: Dice 1, loss ≈ 0.
    let perfect = (&target * 40.0) - 20.0;
    assert_eq!(dice_scores(&perfect, &target).unwrap(), vec![1.0]);
    assert!(soft_dice_loss(&perfect, &target).unwrap().double_value(&[]) < 1e-6);
    assert!(soft_dice_loss(&perfect, &target.narrow(2, 0, 1)).is_err());
    // Dice + BCE adds mean_v softplus(−l·(2y − 1)), here in f64: of the 8
    // voxels at |l| = 10, 3 are wrong (voxel 1 a missed target, voxels 2
    // and 3 false positives) and 5 right.
    let wrong = 3.0 * (1.0 + 10f64.exp()).ln();
    let right = 5.0 * (1.0 + (-10f64).exp()).ln();
    let l = dice_bce_loss(&logits, &target).unwrap().double_value(&[]);
    let want = 0.5 + (wrong + right) / 8.0;
    assert!((l - want).abs() < 1e-4, "{l} vs {want}");
    assert!(dice_bce_loss(&perfect, &target.narrow(2, 0, 1)).is_err());
}
