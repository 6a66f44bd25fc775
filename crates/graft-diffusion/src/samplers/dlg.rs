//! DMCMC's Denoising Langevin Gibbs (Kim & Ye; spec §4): Markov chains on the
//! product space (x, noise level j) with target `p_{σ_j}(x)·p(j)`. Each
//! iteration is one Langevin step on `p_{σ_j}` (1 NFE) and a level update from a
//! level posterior (argmax, as the reference notebook, or a sample: exact
//! Gibbs). Every `n_skip` iterations each chain emits its visited state of
//! smallest σ, denoised by any integrator started at that state's level and
//! optionally finished by one Tweedie step ([`Dlg::tweedie`]).

use super::{Sampler, Stats};
use crate::gmm::Gmm;
use crate::grid::StepGrid;
use crate::model::{Evaluator, Model};
use crate::noise::NoiseSource;
use crate::process::Process;
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// A noise-level classifier: `ln c(j|x)` for the level times, `[n, J]`.
pub trait LevelPosterior {
    /// The log posterior over `level_times` for each row of `x`.
    fn log_posterior(&self, x: &Tensor, level_times: &[f64]) -> Result<Tensor>;
}

/// The exact level posterior of a GMM under a process (uniform level prior):
/// the classifier substitute of spec §7.1.
pub struct ExactLevels<'a> {
    /// The data mixture.
    pub gmm: &'a Gmm,
    /// The process.
    pub process: &'a dyn Process,
}

impl ExactLevels<'_> {
    /// The log posterior (the trait's method, callable without the trait in scope).
    pub fn log_posterior_of(&self, x: &Tensor, level_times: &[f64]) -> Result<Tensor> {
        self.gmm
            .level_log_posterior(self.process, x, level_times, None)
    }
}

impl LevelPosterior for ExactLevels<'_> {
    fn log_posterior(&self, x: &Tensor, level_times: &[f64]) -> Result<Tensor> {
        self.log_posterior_of(x, level_times)
    }
}

/// How the level is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelChoice {
    /// `j ← argmax_j c(j|x)` (the reference notebook; biased toward the MAP σ).
    Argmax,
    /// `j ~ c(·|x)` (exact Gibbs).
    Sample,
}

/// A DLG configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Dlg {
    /// Langevin step size η.
    pub eta: f64,
    /// Iterations between emissions.
    pub n_skip: usize,
    /// Level times, strictly decreasing (index 0 is the noisiest).
    pub levels: Vec<f64>,
    /// Argmax or sampled levels.
    pub choice: LevelChoice,
    /// The integrator's grid from a chain's level to `t_end`.
    pub grid: StepGrid,
    /// Grid steps of the integrator.
    pub steps: usize,
    /// Where the integrator ends.
    pub t_end: f64,
    /// Tweedie's final step at this process time t_ε (spec §4 "Emission"; one
    /// more NFE per sample); `None`: off. For a VE or EDM process the time of
    /// the noise level ε_t is `process.t_of_lambda(-ε_t.ln())`.
    pub tweedie: Option<f64>,
}

/// The chains: one state and level per row.
pub struct Chains {
    /// States `[n, ...]`.
    pub x: Tensor,
    /// Level indices into `Dlg::levels`.
    pub level: Vec<usize>,
}

impl Dlg {
    /// [`Dlg::check`], the chains' states against the process
    /// ([`crate::grid::check_start`]) and one level per chain.
    fn check_chains(&self, process: &dyn Process, chains: &Chains) -> Result<()> {
        self.check()?;
        crate::grid::check_start(process, &chains.x, &self.levels)?;
        let rows = chains.x.size()[0];
        if chains.level.len() as i64 != rows || chains.level.iter().any(|&l| l >= self.levels.len())
        {
            return Err(Error::ShapeMismatch {
                what: "DLG chain levels (one valid level index per chain)",
                expected: vec![rows],
                actual: vec![chains.level.len() as i64],
            });
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        crate::grid::check_decreasing(&self.levels)?;
        if !(self.eta > 0.0) || self.n_skip == 0 {
            return Err(Error::Invalid {
                name: "eta",
                value: self.eta,
                reason: "DLG needs eta > 0 and n_skip >= 1",
            });
        }
        Ok(())
    }

    /// Chains started at `x` on level 0 (the noisiest).
    pub fn start(&self, x: Tensor) -> Chains {
        let n = x.size()[0] as usize;
        Chains {
            x,
            level: vec![0; n],
        }
    }

    /// Rows grouped by level.
    fn groups(level: &[usize]) -> BTreeMap<usize, Vec<i64>> {
        let mut g: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        for (i, &j) in level.iter().enumerate() {
            g.entry(j).or_default().push(i as i64);
        }
        g
    }

    /// The level of each row of `x` under `post` (argmax or sampled, as
    /// [`Dlg::choice`] says); also what chains are started on. A posterior of
    /// the wrong shape is an error.
    pub fn classify(
        &self,
        post: &dyn LevelPosterior,
        x: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<usize>> {
        let logp = post.log_posterior(x, &self.levels)?;
        let expected = vec![
            x.size().first().copied().unwrap_or(0),
            self.levels.len() as i64,
        ];
        if logp.size() != expected {
            return Err(Error::ShapeMismatch {
                what: "level posterior vs [chains, levels]",
                expected,
                actual: logp.size(),
            });
        }
        self.choose(&logp, rng)
    }

    fn choose(&self, logp: &Tensor, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
        match self.choice {
            LevelChoice::Argmax => Ok(Vec::<i64>::try_from(logp.argmax(1, false))?
                .into_iter()
                .map(|j| j as usize)
                .collect()),
            LevelChoice::Sample => {
                let p = logp.exp().to_kind(Kind::Double);
                let (n, j) = (p.size()[0] as usize, p.size()[1] as usize);
                let flat = Vec::<f64>::try_from(p.reshape([-1]))?;
                Ok((0..n)
                    .map(|i| {
                        let u: f64 = rng.random();
                        let mut acc = 0.0;
                        let row = &flat[i * j..(i + 1) * j];
                        row.iter()
                            .position(|w| {
                                acc += w;
                                u < acc
                            })
                            .unwrap_or(j - 1)
                    })
                    .collect())
            }
        }
    }

    /// `iterations` DLG steps without emitting (burn-in); returns model calls per chain.
    #[allow(clippy::too_many_arguments)]
    pub fn burn_in(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        post: &dyn LevelPosterior,
        chains: &mut Chains,
        iterations: usize,
        noise: &mut dyn NoiseSource,
        rng: &mut ChaCha8Rng,
    ) -> Result<usize> {
        self.check_chains(process, chains)?;
        let ev = Evaluator::new(process, model);
        for _ in 0..iterations {
            self.iterate(&ev, post, chains, noise, rng)?;
        }
        Ok(iterations)
    }

    fn iterate(
        &self,
        ev: &Evaluator,
        post: &dyn LevelPosterior,
        chains: &mut Chains,
        noise: &mut dyn NoiseSource,
        rng: &mut ChaCha8Rng,
    ) -> Result<()> {
        let mut score = chains.x.zeros_like();
        for (j, rows) in Self::groups(&chains.level) {
            let idx = Tensor::from_slice(&rows);
            let xs = chains.x.index_select(0, &idx);
            let y = crate::process::centered(ev.process(), &xs);
            let s = ev.score(&y, self.levels[j])?;
            let _ = score.index_copy_(0, &idx, &s);
        }
        let z = noise.independent_normal(&chains.x)?;
        chains.x = &chains.x + score * (self.eta / 2.0) + z * self.eta.sqrt();
        chains.level = self.classify(post, &chains.x, rng)?;
        Ok(())
    }

    /// Runs `n_skip` iterations and emits one sample per chain: the visited state
    /// of smallest σ, denoised by `integrator` from its level. With
    /// [`Dlg::tweedie`] = `Some(t_ε)` the integrator's output x is then read as
    /// a noisy sample at time `t_ε` and replaced by the posterior mean
    /// `x̂0 = (x − (1−α)μ + σ² s(x, t_ε))/α` (for VE/EDM `x + ε_t² s`); `t_ε`
    /// must lie in the process's time range with σ > 0. Per-sample NFE is
    /// `n_skip` + the integrator's (+1 with Tweedie); classifier calls `n_skip`.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        &self,
        process: &dyn Process,
        model: &dyn Model,
        post: &dyn LevelPosterior,
        integrator: &dyn Sampler,
        chains: &mut Chains,
        noise: &mut dyn NoiseSource,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Tensor, Stats)> {
        let tweedie = self.tweedie;
        self.check_chains(process, chains)?;
        if let Some(t) = tweedie {
            process.check_t(t)?;
            if !(process.sigma(t) > 0.0) {
                return Err(Error::SigmaZero { t });
            }
        }
        let ev = Evaluator::new(process, model);
        let mut best_x = chains.x.copy();
        let mut best = chains.level.clone();
        for _ in 0..self.n_skip {
            self.iterate(&ev, post, chains, noise, rng)?;
            let better: Vec<i64> = (0..best.len())
                .filter(|&i| chains.level[i] > best[i])
                .map(|i| i as i64)
                .collect();
            if !better.is_empty() {
                let idx = Tensor::from_slice(&better);
                let _ = best_x.index_copy_(0, &idx, &chains.x.index_select(0, &idx));
                for &i in &better {
                    best[i as usize] = chains.level[i as usize];
                }
            }
        }
        let mut out = best_x.zeros_like();
        let mut integ_nfe = 0;
        for (j, rows) in Self::groups(&best) {
            let idx = Tensor::from_slice(&rows);
            let grid = self
                .grid
                .times(process, self.steps, self.levels[j], self.t_end)?;
            let (x0, st) =
                integrator.sample(process, model, &best_x.index_select(0, &idx), &grid, noise)?;
            integ_nfe = integ_nfe.max(st.nfe);
            let _ = out.index_copy_(0, &idx, &x0);
        }
        let mut nfe = self.n_skip + integ_nfe;
        if let Some(t) = tweedie {
            // Tweedie's posterior mean at t_ε: the evaluator's exact x̂0
            // conversion of any parameterization, (y + σ² s)/α on centered y.
            let tw = Evaluator::new(process, model);
            let y = crate::process::centered(process, &out);
            out = crate::process::uncentered(process, &tw.data(&y, t)?);
            nfe += tw.nfe();
        }
        Ok((
            out,
            Stats {
                nfe,
                classifier_calls: self.n_skip,
            },
        ))
    }
}
