//! SSD's selection and dampening of one parameter tensor.

use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use serde::{Deserialize, Serialize};

/// What dampening did to one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerDampening {
    /// The parameter's name.
    pub name: String,
    /// Its number of entries.
    pub entries: i64,
    /// Entries selected (`I_f > α·I_D`) and multiplied by their factor.
    pub selected: i64,
    /// Selected entries whose factor `β` is below 1 (the cap at 1 leaves the rest as they were).
    pub dampened: i64,
    /// Mean factor `β` over the selected entries (1 when none).
    pub mean_factor: f64,
    /// Smallest factor over the selected entries (1 when none).
    pub min_factor: f64,
}

/// Checks SSD's two constants: `α > 0` (`+∞` selects nothing) and `λ ≥ 0` finite.
pub fn check_constants(alpha: f64, lambda: f64) -> Result<()> {
    if alpha.is_nan() || alpha <= 0.0 {
        return Err(Error::option(
            "alpha",
            alpha,
            "the selection weighting must be > 0 (+inf selects nothing)",
        ));
    }
    if !lambda.is_finite() || lambda < 0.0 {
        return Err(Error::option(
            "lambda",
            lambda,
            "the dampening constant must be finite and >= 0",
        ));
    }
    Ok(())
}

/// SSD on one tensor: entries with `forget > α·full` (strict) are
/// multiplied by `β = min(λ·full/forget, 1)`; every other entry is returned
/// bit for bit. `β` is only evaluated where selected (elsewhere `forget`
/// may be 0), so no NaN can reach the result; with `α = +∞` nothing is
/// selected. Returns the new values and the selection mask.
pub fn dampen_tensor(
    theta: &Tensor,
    full: &Tensor,
    forget: &Tensor,
    alpha: f64,
    lambda: f64,
) -> Result<(Tensor, Tensor)> {
    let (new, selected, _) = dampen_with_factor(theta, full, forget, alpha, lambda)?;
    Ok((new, selected))
}

/// [`dampen_tensor`], also returning the factor `min(λ·full/forget, 1)`
/// (meaningful where selected; `None` when nothing can be selected).
fn dampen_with_factor(
    theta: &Tensor,
    full: &Tensor,
    forget: &Tensor,
    alpha: f64,
    lambda: f64,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    check_constants(alpha, lambda)?;
    if alpha.is_infinite() {
        return Ok((
            theta.copy(),
            theta.f_zeros_like()?.f_to_kind(Kind::Bool)?,
            None,
        ));
    }
    let selected = forget.f_gt_tensor(&full.f_mul_scalar(alpha)?)?;
    let factor = full.f_mul_scalar(lambda)?.f_div(forget)?.f_clamp_max(1.0)?;
    let dampened = theta.f_mul(&factor.f_to_kind(theta.kind())?)?;
    Ok((
        dampened.f_where_self(&selected, theta)?,
        selected,
        Some(factor),
    ))
}

/// [`dampen_tensor`] applied to `param` in place (without gradients),
/// returning what it did.
pub fn dampen_parameter(
    name: &str,
    param: &mut Tensor,
    full: &Tensor,
    forget: &Tensor,
    alpha: f64,
    lambda: f64,
) -> Result<LayerDampening> {
    graft_tensor::tch::no_grad(|| {
        let (new, selected, factor) = dampen_with_factor(param, full, forget, alpha, lambda)?;
        let n_sel = selected.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        let (mut mean_factor, mut min_factor, mut n_damp) = (1.0, 1.0, 0);
        if let (true, Some(factor)) = (n_sel > 0, factor) {
            let factor = factor.f_masked_select(&selected)?;
            mean_factor = factor.f_mean(Kind::Double)?.f_double_value(&[])?;
            min_factor = factor.f_min()?.f_double_value(&[])?;
            n_damp = factor.f_lt(1.0)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        }
        param.f_copy_(&new)?;
        Ok(LayerDampening {
            name: name.to_string(),
            entries: param.numel() as i64,
            selected: n_sel,
            dampened: n_damp,
            mean_factor,
            min_factor,
        })
    })
}
