//! A new adapter from a weighted combination of LoRA adapters (PEFT's
//! `add_weighted_adapter`, spec `peft.md` §1.7), with scale 1 (`α' = r'`).
//!
//! - [`Combination::Cat`]: `A' = rows(w_i s_i A_i)`, `B' = cols(B_i)`,
//!   `r' = Σ r_i`: exactly `Σ w_i ΔW_i`.
//! - [`Combination::Linear`]: equal ranks, `A' = Σ sign(w_i s_i)√|w_i s_i| A_i`,
//!   `B' = Σ √|w_i s_i| B_i`: approximate (cross terms `B_i A_j` appear).
//! - [`Combination::Svd`]: the best rank-`r'` approximation of `Σ w_i ΔW_i`
//!   (`B' = U_r S_r`, `A' = V_rᵀ`), computed in float64.
//!
//! PEFT (≤ 0.21.2) keeps `use_rslora` on the result, scaling it by `√r'`
//! instead of 1; graft-peft writes `use_rslora: false`, so the combination
//! means what its equation says.

use crate::config::{LoraConfig, Targets};
use crate::lora::Lora;
use crate::model::PeftModel;
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};

/// How [`PeftModel::add_weighted_adapter`] combines adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combination {
    /// Concatenate: exact, rank `Σ r_i`.
    Cat,
    /// Weighted sum of the factors: equal ranks, approximate.
    Linear,
    /// Truncated SVD of the weighted sum, at rank `rank`.
    Svd {
        /// The result's rank.
        rank: i64,
    },
}

/// One layer's sources: `(w_i · s_i, A_i as [r, fan], B_i as [out, r])`.
struct Parts {
    a_shape: Vec<i64>,
    b_shape: Vec<i64>,
    items: Vec<(f64, Tensor, Tensor)>,
}

impl PeftModel {
    /// Adds adapter `name` combining `adapters` (`(name, weight)`, weights
    /// may be negative) as `how` says, on every layer any of them wraps.
    pub fn add_weighted_adapter(
        &mut self,
        adapters: &[(&str, f64)],
        name: &str,
        how: Combination,
    ) -> Result<()> {
        if adapters.is_empty() {
            return Err(Error::config(
                "<combination>",
                "adapters",
                "nothing to combine",
            ));
        }
        for (a, w) in adapters {
            let Some(c) = self.config(a) else {
                return Err(Error::UnknownAdapter {
                    name: (*a).into(),
                    known: self.adapter_names().iter().map(|s| s.to_string()).collect(),
                });
            };
            if c.use_dora {
                return Err(Error::config(
                    "<combination>",
                    a,
                    "DoRA adapters cannot be combined: their magnitudes rescale whole rows",
                ));
            }
            if c.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
                return Err(Error::config(
                    "<combination>",
                    a,
                    "adapters with modules_to_save cannot be combined (their copies have no weighted sum)",
                ));
            }
            if !w.is_finite() {
                return Err(Error::config(
                    "<combination>",
                    a,
                    format!("weight {w} is not finite"),
                ));
            }
        }
        // Gather each layer's parts and build its combined factors.
        let mut built: Vec<(String, Tensor, Tensor)> = Vec::new();
        for (path, layer) in self.layers().all() {
            let g = layer.lock().unwrap_or_else(|p| p.into_inner());
            let mut parts = Parts {
                a_shape: Vec::new(),
                b_shape: Vec::new(),
                items: Vec::new(),
            };
            for (a, w) in adapters {
                let Some(l) = g.adapter(a).and_then(|x| x.as_lora()) else {
                    continue;
                };
                if g.base.conv.groups > 1 {
                    return Err(Error::Unsupported {
                        layer: path.clone(),
                        what: "LoRA adapters on grouped convolutions cannot be combined".into(),
                    });
                }
                parts.a_shape = l.a.size();
                parts.b_shape = l.b.size();
                let a2 = l.a.detach().to_kind(Kind::Double).f_flatten(1, -1)?;
                let b2 = l.b.detach().to_kind(Kind::Double).f_flatten(1, -1)?;
                parts.items.push((w * l.scaling(), a2, b2));
            }
            if parts.items.is_empty() {
                continue;
            }
            let (a, b) = combine(&path, &parts, how)?;
            let r = a.size()[0];
            let mut a_shape = parts.a_shape.clone();
            a_shape[0] = r;
            let mut b_shape = parts.b_shape.clone();
            b_shape[1] = r;
            let a = a.to_kind(Kind::Float).f_view(a_shape.as_slice())?;
            let b = b.to_kind(Kind::Float).f_view(b_shape.as_slice())?;
            built.push((path.clone(), a, b));
        }
        if built.is_empty() {
            return Err(Error::config(
                "<combination>",
                "adapters",
                "none of them wraps any layer",
            ));
        }
        let first_r = built[0].1.size()[0];
        let escaped = |p: &str| regex::escape(p);
        let config = LoraConfig {
            r: first_r,
            lora_alpha: first_r as f64,
            target_modules: Some(Targets::List(
                built.iter().map(|(p, _, _)| p.clone()).collect(),
            )),
            rank_pattern: built
                .iter()
                .map(|(p, a, _)| (escaped(p), a.size()[0]))
                .collect(),
            alpha_pattern: built
                .iter()
                .map(|(p, a, _)| (escaped(p), a.size()[0] as f64))
                .collect(),
            ..LoraConfig::default()
        };
        let mut by_path: std::collections::HashMap<String, (Tensor, Tensor)> =
            built.into_iter().map(|(p, a, b)| (p, (a, b))).collect();
        let template = config.clone();
        self.insert(name, config, true, |layer, _| {
            let Some((a, b)) = by_path.remove(&layer.name) else {
                return Ok(None);
            };
            let r = a.size()[0];
            let lora = Lora::from_tensors(
                &layer.base,
                &layer.name,
                a,
                b,
                None,
                None,
                r as f64,
                &template,
            )?;
            Ok(Some(Box::new(lora) as Box<dyn crate::adapter::Adapter>))
        })
    }
}

fn combine(path: &str, parts: &Parts, how: Combination) -> Result<(Tensor, Tensor)> {
    Ok(match how {
        Combination::Cat => {
            let a: Vec<Tensor> = parts.items.iter().map(|(ws, a, _)| a * *ws).collect();
            let b: Vec<Tensor> = parts
                .items
                .iter()
                .map(|(_, _, b)| b.shallow_clone())
                .collect();
            (Tensor::f_cat(&a, 0)?, Tensor::f_cat(&b, 1)?)
        }
        Combination::Linear => {
            let r = parts.items[0].1.size()[0];
            if parts.items.iter().any(|(_, a, _)| a.size()[0] != r) {
                return Err(Error::Unsupported {
                    layer: path.into(),
                    what: "the `linear` combination needs equal ranks (use `cat` or `svd`)".into(),
                });
            }
            let mut a = parts.items[0].1.zeros_like();
            let mut b = parts.items[0].2.zeros_like();
            for (ws, ai, bi) in &parts.items {
                let root = ws.abs().sqrt();
                a += ai * (root * ws.signum());
                b += bi * root;
            }
            (a, b)
        }
        Combination::Svd { rank } => {
            let mut m = parts.items[0].2.f_matmul(&parts.items[0].1)?.zeros_like();
            for (ws, ai, bi) in &parts.items {
                m += bi.f_matmul(ai)? * *ws;
            }
            let full = m.size()[0].min(m.size()[1]);
            if rank < 1 || rank > full {
                return Err(Error::Unsupported {
                    layer: path.into(),
                    what: format!("SVD rank {rank} must be in 1..={full} here"),
                });
            }
            let (u, s, v) = m.f_svd(true, true)?;
            let u = u.f_narrow(1, 0, rank)?;
            let s = s.f_narrow(0, 0, rank)?;
            let vh = v.f_narrow(1, 0, rank)?.f_tr()?.f_contiguous()?;
            (vh, u * s.f_unsqueeze(0)?)
        }
    })
}
