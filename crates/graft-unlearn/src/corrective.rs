//! The corrective setting (Goel et al., TMLR 2024): an adversary
//! manipulated some training samples, the developer identified only a
//! fraction of them, and the manipulation's effect is to be removed.
//!
//! Manipulations as the reference code: BadNets poisoning (a square patch
//! in the bottom-right corner set to one value, label set to a target
//! class) and interclass confusion (the first samples of class A relabelled
//! B and vice versa); metrics as the reference code, plus the attack
//! success rate it lacks.

use crate::{Error, Result};
use graft_nn::Dataset;
use graft_nn::train::predict;
use graft_tensor::tch::{Device, Kind, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A BadNets trigger: the bottom-right `size × size` pixels of every
/// channel set to `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Side of the square patch, in pixels.
    pub size: i64,
    /// The value written (the reference: the largest normalised pixel value of the training set).
    pub value: f64,
}

impl Trigger {
    /// `data`'s images with the patch written (inputs `[n, c, h, w]`).
    pub fn apply(&self, data: &Dataset) -> Result<Dataset> {
        let shape = data.inputs.size();
        if shape.len() != 4 || shape[2] < self.size || shape[3] < self.size || self.size <= 0 {
            return Err(Error::data(
                &data.name,
                format!(
                    "a {}x{} trigger needs images [n, c, h, w] at least that large, got {shape:?}",
                    self.size, self.size
                ),
            ));
        }
        let inputs = data.inputs.copy();
        let _ = inputs
            .f_narrow(2, shape[2] - self.size, self.size)?
            .f_narrow(3, shape[3] - self.size, self.size)?
            .f_fill_(self.value)?;
        Ok(Dataset::new(
            inputs,
            data.labels.shallow_clone(),
            data.num_classes,
            format!("{} (triggered)", data.name),
        )?)
    }
}

/// A manipulated training set and which samples were manipulated.
#[derive(Debug)]
pub struct Manipulated {
    /// The training set with the manipulation in place (same order as the clean one).
    pub train: Dataset,
    /// Indices of the manipulated samples, ascending.
    pub indices: Vec<i64>,
}

/// Poisons `count` samples drawn uniformly (seeded) from the whole set:
/// trigger written, label set to `target`.
pub fn poison(
    train: &Dataset,
    count: usize,
    trigger: &Trigger,
    target: i64,
    seed: u64,
) -> Result<Manipulated> {
    if count == 0 || count > train.len() {
        return Err(Error::option(
            "poisoned samples",
            count,
            &format!("must be in 1..={}", train.len()),
        ));
    }
    if !(0..train.num_classes).contains(&target) {
        return Err(Error::option(
            "target class",
            target,
            &format!("outside 0..{}", train.num_classes),
        ));
    }
    let mut idx: Vec<i64> = train.permutation(seed)[..count].to_vec();
    idx.sort_unstable();
    let chosen = Tensor::from_slice(&idx).f_to_device(train.inputs.device())?;
    let patched = trigger.apply(&train.select(&idx)?)?;
    let inputs = train.inputs.f_index_copy(0, &chosen, &patched.inputs)?;
    let labels = train.labels.f_index_fill(0, &chosen, target)?;
    Ok(Manipulated {
        train: Dataset::new(
            inputs,
            labels,
            train.num_classes,
            format!("{} (poisoned)", train.name),
        )?,
        indices: idx,
    })
}

/// Interclass confusion: the first `per_class` samples (in data order) of
/// class `a` relabelled `b`, and the first `per_class` of `b` relabelled `a`.
pub fn interclass_swap(train: &Dataset, a: i64, b: i64, per_class: usize) -> Result<Manipulated> {
    if a == b || !(0..train.num_classes).contains(&a) || !(0..train.num_classes).contains(&b) {
        return Err(Error::option(
            "classes",
            format!("({a}, {b})"),
            "need two different classes of the data set",
        ));
    }
    let mut labels: Vec<i64> = Vec::<i64>::try_from(&train.labels.to_device(Device::Cpu))?;
    let of = |c: i64| -> Vec<usize> {
        labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == c)
            .map(|(i, _)| i)
            .collect()
    };
    let (ia, ib) = (of(a), of(b));
    if per_class == 0 || per_class > ia.len().min(ib.len()) {
        return Err(Error::option(
            "swapped per class",
            per_class,
            &format!(
                "must be in 1..={} (class sizes {} and {})",
                ia.len().min(ib.len()),
                ia.len(),
                ib.len()
            ),
        ));
    }
    let mut indices = Vec::with_capacity(2 * per_class);
    for &i in &ia[..per_class] {
        labels[i] = b;
        indices.push(i as i64);
    }
    for &i in &ib[..per_class] {
        labels[i] = a;
        indices.push(i as i64);
    }
    indices.sort_unstable();
    let labels = Tensor::from_slice(&labels).f_to_device(train.labels.device())?;
    Ok(Manipulated {
        train: Dataset::new(
            train.inputs.shallow_clone(),
            labels,
            train.num_classes,
            format!("{} (classes {a}<->{b} confused)", train.name),
        )?,
        indices,
    })
}

/// The identified part of the manipulated samples: `round(fraction·n)`
/// (at least one) of `indices`, drawn with `seed`; ascending.
pub fn identified(indices: &[i64], fraction: f64, seed: u64) -> Result<Vec<i64>> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::option(
            "identified fraction",
            fraction,
            "must be in (0, 1]",
        ));
    }
    let k = ((indices.len() as f64 * fraction).round() as usize).clamp(1, indices.len());
    let mut all = indices.to_vec();
    all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut out = all[..k].to_vec();
    out.sort_unstable();
    Ok(out)
}

/// The deletion set `D_f` (the identified samples) and the rest `D_r`
/// (which keeps the unidentified manipulated samples).
pub fn split_identified(train: &Dataset, identified: &[i64]) -> Result<(Dataset, Dataset)> {
    let mut mark = vec![false; train.len()];
    for &i in identified {
        let slot = usize::try_from(i)
            .ok()
            .and_then(|i| mark.get_mut(i))
            .ok_or_else(|| {
                Error::data(
                    &train.name,
                    format!("identified index {i} outside 0..{}", train.len()),
                )
            })?;
        *slot = true;
    }
    let rest: Vec<i64> = (0..train.len() as i64)
        .filter(|&i| !mark[i as usize])
        .collect();
    Ok((train.select(identified)?, train.select(&rest)?))
}

/// Poisoning metrics on a clean test set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoisonMetrics {
    /// `Acc_corr`: accuracy on every test image with the trigger, against its true label.
    pub corrected: f64,
    /// `Acc_retain`: clean accuracy on the whole test set.
    pub clean: f64,
    /// Attack success rate: triggered test images of true class ≠ target predicted as the target.
    pub attack_success: f64,
}

/// [`PoisonMetrics`] of `model`.
pub fn poison_metrics(
    model: &dyn graft_tensor::tch::nn::ModuleT,
    test: &Dataset,
    trigger: &Trigger,
    target: i64,
) -> Result<PoisonMetrics> {
    let triggered = trigger.apply(test)?;
    let clean_pred = predict(model, test, 512)?;
    let trig_pred = predict(model, &triggered, 512)?;
    let y = test.labels.f_to_device(trig_pred.device())?;
    let n = test.len() as f64;
    let hits = |p: &Tensor| -> Result<f64> {
        Ok(p.f_eq_tensor(&y)?.f_sum(Kind::Int64)?.f_int64_value(&[])? as f64)
    };
    let not_target = y.f_ne(target)?;
    let n_nt = not_target.f_sum(Kind::Int64)?.f_int64_value(&[])? as f64;
    let success = trig_pred
        .f_eq(target)?
        .f_logical_and(&not_target)?
        .f_sum(Kind::Int64)?
        .f_int64_value(&[])? as f64;
    Ok(PoisonMetrics {
        corrected: hits(&trig_pred)? / n,
        clean: hits(&clean_pred)? / n,
        attack_success: if n_nt > 0.0 { success / n_nt } else { 0.0 },
    })
}

/// Interclass-confusion metrics on a clean test set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMetrics {
    /// `Acc_corr`: test accuracy on classes A and B.
    pub corrected: f64,
    /// `Acc_retain`: test accuracy on every other class.
    pub retain: f64,
}

/// [`ConfusionMetrics`] of `model` for the classes `a` and `b`.
pub fn confusion_metrics(
    model: &dyn graft_tensor::tch::nn::ModuleT,
    test: &Dataset,
    a: i64,
    b: i64,
) -> Result<ConfusionMetrics> {
    let others: Vec<i64> = (0..test.num_classes)
        .filter(|&c| c != a && c != b)
        .collect();
    let acc =
        |d: &Dataset| -> Result<f64> { Ok(graft_nn::train::evaluate(model, d, 512)?.accuracy) };
    Ok(ConfusionMetrics {
        corrected: acc(&test.with_classes(&[a, b])?)?,
        retain: acc(&test.with_classes(&others)?)?,
    })
}
