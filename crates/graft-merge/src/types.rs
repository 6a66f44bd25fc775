//! The methods and their parameters: plain data at the bottom of the crate,
//! imported by the maths ([`crate::chunked`], [`crate::method`]) and the
//! configuration alike, importing nothing of theirs.

use serde::{Deserialize, Serialize};

impl Method {
    /// The name mergekit's YAML gives it (`merge_method`).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Linear => "linear",
            Method::TaskArithmetic => "task_arithmetic",
            Method::Ties => "ties",
            Method::DareLinear => "dare_linear",
            Method::DareTies => "dare_ties",
            Method::Pcb(_) => "pcb",
        }
    }
}

/// A merge method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Weighted average of the models: `Σ w_i θ_i / Σ w_i` (normalised by default).
    Linear,
    /// `Δ = λ Σ w_i δ_i` (Ilharco et al.).
    TaskArithmetic,
    /// Trim, elect sign, disjoint mean (Yadav et al.).
    Ties,
    /// DARE random drop and rescale, then a weighted sum.
    DareLinear,
    /// DARE random drop and rescale, then TIES' vote and mean.
    DareTies,
    /// PCB-merging (Du et al.).
    Pcb(PcbParams),
}

/// Whose numbers to reproduce when the papers and mergekit differ (spec §0, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compat {
    /// mergekit: weights before the TIES vote, weighted mean, a zero vote
    /// elects +1, DARE rescale matches the L1 norm.
    Mergekit,
    /// The papers' reference code: unweighted vote with the majority-sign
    /// fallback, mean over agreeing non-zero entries, DARE rescales by 1/(1 − p).
    Paper,
}

/// The TIES vote (mergekit's `consensus_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteRule {
    /// Sign of the (weighted) sum.
    Sum,
    /// Sign of the sum of signs.
    Count,
}

/// How DARE rescales what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rescale {
    /// Divide by the keep probability (the paper; keeps the expectation).
    InverseKeep,
    /// Match the L1 norm of the unmasked delta (mergekit since Feb 2025).
    L1,
    /// Match the Euclidean norm.
    L2,
    /// Match the largest magnitude.
    Linf,
    /// Do not rescale ("drop only").
    None,
}

/// Which entries a magnitude trim keeps; see [`crate::trim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrimRule {
    /// Exactly `floor(k · n)` entries, ties by ascending index.
    Exact,
    /// The reference code's `|x| ≥ threshold`.
    Reference,
}

/// What a TIES trim does when `floor(density · n)` would keep nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyTrim {
    /// Keep the single largest entry (mergekit 0.1.5: `max(1, int(d·n))`).
    KeepLargest,
    /// Refuse with [`crate::Error::EmptyTrim`] (the papers' code).
    Refuse,
}

impl EmptyTrim {
    /// mergekit keeps the largest entry; the papers' code has no such floor.
    pub fn of(compat: Compat) -> Self {
        match compat {
            Compat::Mergekit => EmptyTrim::KeepLargest,
            Compat::Paper => EmptyTrim::Refuse,
        }
    }
}

/// The counter-based random stream of DARE's drops for one model's tensor:
/// element `j` is dropped when `uniform(key(seed, model, tensor), j) < 1 − density`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DareStream {
    /// The merge's seed.
    pub seed: u64,
    /// The model's stable hash ([`crate::rng::stable_hash`] of its id).
    pub model: u64,
    /// The tensor's stable hash.
    pub tensor: u64,
}

/// Parameters shared by all methods; `None` means the method's default for the compat mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeParams {
    /// Global scale `λ` of the merged delta (default 1).
    pub lambda: f32,
    /// Divide by the summed weights (mergekit's `normalize`).
    pub normalize: Option<bool>,
    /// DARE's rescale.
    pub rescale: Option<Rescale>,
    /// TIES' vote (mergekit compat only).
    pub vote: VoteRule,
    /// Magnitude trim rule.
    pub trim_rule: TrimRule,
    /// mergekit or paper semantics.
    pub compat: Compat,
    /// Seed of DARE's masks.
    pub seed: u64,
}

impl Default for MergeParams {
    fn default() -> Self {
        Self {
            lambda: 1.0,
            normalize: None,
            rescale: None,
            vote: VoteRule::Sum,
            trim_rule: TrimRule::Exact,
            compat: Compat::Mergekit,
            seed: 0,
        }
    }
}

/// How PCB's inter-balancing weighs a model's entries against the others
/// (spec §4 step 3; all three are in the reference repository).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterBalance {
    /// `tanh(δ_i ⊙ Σ_j δ_j)` on the raw deltas (the reference default).
    #[default]
    Reference,
    /// `tanh(δ_i ⊙ Σ_j ν_j)` with `ν_j = sgn(δ_j)·u_j`, the normalised clamped magnitudes.
    NormalizedSum,
    /// `Σ_j tanh(ν_i ⊙ ν_j)`, closest to the paper's pairwise formula.
    Pairwise,
}

/// PCB's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PcbParams {
    /// Keep ratio `r` in (0, 1]: about `r · d` entries per model get a weight.
    pub keep_ratio: f64,
    /// Clamp ratio `c` in [0, 0.5): magnitudes are clipped to their `c` and
    /// `1 − c` quantiles (0.01 in the code behind the paper's runs).
    pub clamp_ratio: f64,
    /// The inter-balancing variant.
    #[serde(default)]
    pub inter: InterBalance,
}

impl Default for PcbParams {
    fn default() -> Self {
        Self {
            keep_ratio: 0.1,
            clamp_ratio: 0.01,
            inter: InterBalance::Reference,
        }
    }
}

/// One fine-tuned model's values `θ_i` for the segment being merged (the
/// deltas themselves where a merge has no base).
#[derive(Debug, Clone)]
pub struct ModelValues<'a> {
    /// A stable identifier (its path or name): orders the sum and keys DARE's stream.
    pub id: String,
    /// Its weight `w_i` (default 1; negative values subtract a task).
    pub weight: f32,
    /// Its density: TIES keep fraction / DARE keep probability (default 1).
    pub density: f64,
    /// The fine-tuned values `θ_i` (not the delta), as many as the base.
    pub values: &'a [f32],
}

impl<'a> ModelValues<'a> {
    /// A model with weight 1 and density 1.
    pub fn new(id: &str, values: &'a [f32]) -> Self {
        Self {
            id: id.into(),
            weight: 1.0,
            density: 1.0,
            values,
        }
    }
}

/// The former name of [`ModelValues`], which holds values, not deltas.
#[deprecated(note = "renamed `ModelValues`: it holds a model's values, not its delta")]
pub type Delta<'a> = ModelValues<'a>;
