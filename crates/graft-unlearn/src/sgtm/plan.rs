//! Which mode each batch trains in: the domain schedule, label noise and
//! the arms SGTM is compared with.

use super::trainer::BatchMode;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The true domain of a batch (batches are pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Domain {
    /// Forget-domain data.
    Forget,
    /// Retain-domain data.
    Retain,
}

/// How batches are labelled and treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Train on everything (no unlearning).
    NoFilter,
    /// Data filtering: skip detected forget batches (the LR schedule still advances).
    Filter,
    /// SGTM or gradient routing: detected forget batches in forget mode,
    /// retain batches in retain mode with probability `retain_perc`.
    Masked,
}

/// Label noise and the share of retain batches run in retain mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Labelling {
    /// Probability that a forget batch is detected as such.
    pub recall: f64,
    /// Share of truly-forget batches among those labelled forget (< 1
    /// labels some retain batches forget).
    pub precision: f64,
    /// Probability that a retain batch runs in retain mode (else default).
    pub retain_perc: f64,
}

/// A seeded order of `forget` forget batches among `retain` retain batches.
pub fn domain_order(forget: usize, retain: usize, seed: u64) -> Vec<Domain> {
    let mut d: Vec<Domain> = std::iter::repeat_n(Domain::Forget, forget)
        .chain(std::iter::repeat_n(Domain::Retain, retain))
        .collect();
    d.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    d
}

/// The mode of every batch of `domains` for `arm`, drawn with `seed`.
pub fn modes(domains: &[Domain], arm: Arm, labelling: &Labelling, seed: u64) -> Vec<BatchMode> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_f = domains.iter().filter(|d| **d == Domain::Forget).count() as f64;
    let n_r = domains.len() as f64 - n_f;
    let p = labelling.precision.clamp(1e-9, 1.0);
    // P(retain batch labelled forget) so that precision holds in expectation.
    let false_positive = if n_r > 0.0 {
        (labelling.recall * n_f * (1.0 - p) / (p * n_r)).min(1.0)
    } else {
        0.0
    };
    domains
        .iter()
        .map(|d| {
            let flagged = match d {
                Domain::Forget => rng.random_bool(labelling.recall.clamp(0.0, 1.0)),
                Domain::Retain => rng.random_bool(false_positive),
            };
            let retain_mode = rng.random_bool(labelling.retain_perc.clamp(0.0, 1.0));
            match (arm, flagged) {
                (Arm::NoFilter, _) => BatchMode::Default,
                (Arm::Filter, true) => BatchMode::Skip,
                (Arm::Filter, false) => BatchMode::Default,
                (Arm::Masked, true) => BatchMode::Forget,
                (Arm::Masked, false) if *d == Domain::Retain && retain_mode => BatchMode::Retain,
                (Arm::Masked, false) => BatchMode::Default,
            }
        })
        .collect()
}

/// The reference schedule: linear warm-up from 0.1× to 1× over `warmup`
/// steps, then cosine to 0 at `total`.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        peak * (0.1 + 0.9 * step as f64 / warmup.max(1) as f64)
    } else {
        let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
        peak * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
    }
}
