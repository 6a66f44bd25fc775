//! P4: the bytes the reversible strategy retains between forward and
//! backward are the output plus 8 bytes of seed per layer, whatever the
//! depth; checkpointing retains every layer's input.

mod common;

use common::{mlp_stack, opts};
use graft_rev::Strategy;
use graft_rev::mlp::MlpCouplingConfig;
use graft_tensor::tch::{Device, Kind, Tensor};
use proptest::prelude::*;

proptest! {
    #![proptest_config(graft_tensor::testing::proptest_config(24))]

    #[test]
    fn reversible_ledger_is_output_plus_seeds_independent_of_depth(
        batch in 1i64..=4, half in 1i64..=8, depth in 1usize..=8, f64_kind in any::<bool>(),
    ) {
        let kind = if f64_kind { Kind::Double } else { Kind::Float };
        let elt = if f64_kind { 8 } else { 4 };
        let cfg = MlpCouplingConfig { half, hidden: 4, ..Default::default() };
        let (_vs, stack) = mlp_stack(depth, &cfg, kind);
        let x = Tensor::randn([batch, 2 * half], (kind, Device::Cpu));
        let out_bytes = (batch * 2 * half * elt) as u64;
        let rev = stack.forward(&x, opts(Strategy::Reversible, 0)).unwrap().ledger();
        prop_assert_eq!(rev.output_bytes, out_bytes);
        prop_assert_eq!(rev.total(), out_bytes + 8 * depth as u64);
        prop_assert_eq!(rev.anchor_bytes + rev.boundary_bytes, 0);
        prop_assert!(!rev.autograd_graph);
        let ck = stack.forward(&x, opts(Strategy::Checkpoint, 0)).unwrap().ledger();
        prop_assert_eq!(ck.boundary_bytes, depth as u64 * out_bytes);
        let plain = stack.forward(&x, opts(Strategy::Plain, 0)).unwrap().ledger();
        prop_assert!(plain.autograd_graph);
    }
}
