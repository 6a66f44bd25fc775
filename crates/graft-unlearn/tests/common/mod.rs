//! Helpers shared by the SGTM tests.

use graft_tensor::tch::nn::VarStore;
use graft_tensor::tch::{Device, Kind, Tensor, no_grad};
use std::collections::BTreeMap;

/// Adds N(0, 3²) noise to every designated entry (`masks`: 1 = designated) of `vs`.
pub fn perturb_designated(vs: &VarStore, masks: &BTreeMap<String, Tensor>) {
    no_grad(|| {
        for (name, mut p) in vs.variables() {
            if let Some(d) = masks.get(&name) {
                let noise = Tensor::randn(p.size(), (Kind::Float, Device::Cpu)) * 3.0 * d;
                let _ = p.g_add_(&noise);
            }
        }
    });
}
