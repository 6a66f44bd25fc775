//! The NFE sweeps of the reproduction.

use super::problems::{Problem, r1 as make_r1, r2 as make_r2, r3 as make_r3};
use crate::Result;
use crate::gmm::{Gmm, GmmModel};
use crate::grid::StepGrid;
use crate::integrator::{Form, ThirdOrder};
use crate::metrics::{
    MMD_SCALES, assign_modes, median_distance, mmd2_unbiased, mode_stats, pathwise_rmse,
};
use crate::model::Model;
use crate::noise::SeededNoise;
use crate::param::Parameterization;
use crate::process::{MeanReverting, Process};
use crate::samplers::{DpmSolverSingle, EulerMaruyama, EulerOde, Mrs, Posterior, Sampler};
use crate::to_target::{ToTarget, nfe_to_target};
use graft_nn::experiment::{Claim, ExperimentContext, Outcome};
use graft_nn::plot::{Series, line_chart};
use graft_tensor::seed::derive_seed;
use graft_tensor::tch::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// A pathwise case: label, sampler, grid, model.
type PathCase<'a> = (String, Box<dyn Sampler>, StepGrid, &'a dyn Model);
/// A distribution case: label, sampler, grid, NFEs.
pub(super) type SweepCase = (&'static str, Box<dyn Sampler>, StepGrid, Vec<usize>);

fn lam_grid(p: &Problem) -> StepGrid {
    StepGrid::UniformLambda {
        lambda_min: p.lambda_min,
    }
}

fn run(
    p: &Problem,
    s: &dyn Sampler,
    grid: &StepGrid,
    nfe: usize,
    model: &dyn Model,
    x: &Tensor,
    seed: u64,
) -> Result<(Tensor, usize)> {
    let steps = s.steps_for_nfe(nfe).max(1);
    let g = grid.times(&*p.process, steps, p.t_start, p.t_end)?;
    let (x, st) = s.sample(&*p.process, model, x, &g, &mut SeededNoise::new(seed))?;
    Ok((x, st.nfe))
}

/// The exact-sample floor of the distribution metrics.
struct Floor {
    reference: Tensor,
    bw: f64,
    mmd: (f64, f64),
    tv: (f64, f64),
    std_ratio: f64,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

fn floor(p: &Problem, n: usize, rng: &mut ChaCha8Rng) -> Result<Floor> {
    let reference = p.gmm.sample_marginal(&*p.process, p.t_end, n, rng)?;
    let bw = median_distance(&reference)?;
    let (mut mm, mut tv, mut sr) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let other = p.gmm.sample_marginal(&*p.process, p.t_end, n, rng)?;
        mm.push(mmd2_unbiased(&other, &reference, bw, &MMD_SCALES)?);
        let ms = mode_stats(&other, &p.gmm)?;
        tv.push(ms.tv);
        sr.push(ms.std_ratio);
    }
    Ok(Floor {
        reference,
        bw,
        mmd: mean_std(&mm),
        tv: mean_std(&tv),
        std_ratio: mean_std(&sr).0,
    })
}

#[derive(Debug, Clone, Copy)]
struct Quality {
    mmd: f64,
    tv: f64,
    std_ratio: f64,
    outliers: f64,
}

fn quality(x: &Tensor, f: &Floor, gmm: &Gmm) -> Result<Quality> {
    let finite = x.isfinite().all().int64_value(&[]) == 1;
    if !finite {
        return Ok(Quality {
            mmd: f64::INFINITY,
            tv: 1.0,
            std_ratio: f64::INFINITY,
            outliers: 1.0,
        });
    }
    let ms = mode_stats(x, gmm)?;
    Ok(Quality {
        mmd: mmd2_unbiased(x, &f.reference, f.bw, &MMD_SCALES)?,
        tv: ms.tv,
        std_ratio: ms.std_ratio,
        outliers: ms.outliers,
    })
}

fn log2(n: usize) -> f64 {
    (n as f64).log2()
}

fn write_md(ctx: &ExperimentContext, name: &str, text: &str) -> Result<()> {
    graft_tensor::atomic::write_atomic(ctx.path(name), text.as_bytes())?;
    Ok(())
}

fn fmt_nfe(n: Option<usize>, max: usize) -> String {
    n.map_or(format!("> {max}"), |n| n.to_string())
}

/// Max error of an MRS ODE solver on the single Gaussian N(0.7, 0.3²) (VP,
/// continuous cosine, uniform λ from 1 to 1e−3), first order−1 steps exact.
fn order_error(form: Form, order: usize, third: ThirdOrder, nfe: usize) -> Result<f64> {
    let p: Arc<dyn Process> = Arc::new(MeanReverting::continuous_cosine(0.005, 1.0, None)?);
    let (m, s, t0, te) = (0.7, 0.3, 1.0, 1e-3);
    let g = Gmm::new(vec![1.0], Tensor::from_slice(&[m]).unsqueeze(0), vec![s])?;
    let model = GmmModel::new(g, p.clone(), Parameterization::Noise);
    let x_t = Tensor::from_slice(&[-2.0, -1.0, -0.3, 0.0, 0.4, 1.1, 2.5]).unsqueeze(1);
    let c = |t: f64| (p.alpha(t).powi(2) * s * s + p.sigma(t).powi(2)).sqrt();
    let flow = |t: f64| (&x_t - m * p.alpha(t0)) * (c(t) / c(t0)) + m * p.alpha(t);
    let grid = StepGrid::UniformLambda { lambda_min: None }.times(&*p, nfe, t0, te)?;
    let k = order - 1;
    let mut history = Vec::new();
    for &tj in &grid[..k] {
        let xj = flow(tj);
        let eps = model.eval(&xj, tj)?;
        history.push(match form {
            Form::Noise => eps,
            Form::Data => (&xj - eps * p.sigma(tj)) / p.alpha(tj),
        });
    }
    let sampler = Mrs {
        lower_order_final: false,
        third_order: third,
        ..Mrs::ode(order, form)
    };
    let (x, _) = sampler.sample_with_history(
        &*p,
        &model,
        &flow(grid[k]),
        &grid,
        &history,
        &mut SeededNoise::new(0),
    )?;
    Ok((x - flow(te)).abs().max().double_value(&[]))
}

/// Spec §3: the reference D2 term is half the Taylor-exact one.
pub(super) fn orders(ctx: &ExperimentContext, out: &mut Outcome) -> Result<()> {
    let nfes = [20, 40, 80, 160];
    let mut md = String::from(
        "# Order-3 multistep on the single Gaussian (max error, exact warm-up)\n\n| form | D2 term | 20 | 40 | 80 | 160 | slope 20->160 |\n|---|---|---|---|---|---|---|\n",
    );
    for form in [Form::Data, Form::Noise] {
        for third in [ThirdOrder::TaylorExact, ThirdOrder::Reference] {
            let errs: Vec<f64> = nfes
                .iter()
                .map(|&n| order_error(form, 3, third, n))
                .collect::<Result<_>>()?;
            let slope = (errs[0] / errs[3]).ln() / 8f64.ln();
            let _ = writeln!(
                md,
                "| {form:?} | {third:?} | {:.2e} | {:.2e} | {:.2e} | {:.2e} | {slope:.2} |",
                errs[0], errs[1], errs[2], errs[3]
            );
            let fname = format!("{form:?}").to_lowercase();
            out.claims.push(match third {
                ThirdOrder::TaylorExact => Claim::at_least(
                    &format!("order3-taylor-{fname}"),
                    &format!("MRS ODE-3 {fname} form with the Taylor-exact D2 term (2 phi3 D2) is third order: log-log slope over 20->160 NFE (spec 7.4-10; prototype ~4.0)"),
                    2.8,
                    slope,
                ),
                ThirdOrder::Reference => Claim::new(
                    &format!("order3-reference-{fname}"),
                    &format!("MRS ODE-3 {fname} form with the official code's D2 term is globally second order: slope in [1.8, 2.5] (spec 3, prototype 2.6 -> 2.1)"),
                    "1.8 - 2.5",
                    (slope * 1e3).round() / 1e3,
                    (1.8..=2.5).contains(&slope),
                ),
            });
        }
    }
    write_md(ctx, "orders.md", &md)
}

/// R1: pathwise RMSE of ODE samplers against a fine MRS-3 reference.
pub(super) fn r1(ctx: &ExperimentContext, out: &mut Outcome) -> Result<()> {
    let p = make_r1()?;
    let n = ctx.pick(500, 2000);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(ctx.seed, "diffusion/r1"));
    let x_t = p.gmm.sample_marginal(&*p.process, p.t_start, n, &mut rng)?;
    let eps_model = GmmModel::new(p.gmm.clone(), p.process.clone(), Parameterization::Noise);
    let v_model = GmmModel::new(p.gmm.clone(), p.process.clone(), Parameterization::Velocity);
    let fine = ctx.pick(1000, 4000);
    let reference = run(
        &p,
        &Mrs::ode(3, Form::Data),
        &lam_grid(&p),
        fine,
        &eps_model,
        &x_t,
        0,
    )?
    .0;
    let half = run(
        &p,
        &Mrs::ode(3, Form::Data),
        &lam_grid(&p),
        fine / 2,
        &eps_model,
        &x_t,
        0,
    )?
    .0;
    let self_consistency = pathwise_rmse(&reference, &half)?;
    let ref_modes = assign_modes(&reference, &p.gmm)?;
    let nfes = [5, 10, 20, 40, 80, 160, 320];
    let lam = lam_grid(&p);
    let cases: Vec<PathCase> = vec![
        (
            "Euler ODE".into(),
            Box::new(EulerOde),
            lam.clone(),
            &eps_model,
        ),
        (
            "Euler ODE (uniform t)".into(),
            Box::new(EulerOde),
            StepGrid::UniformT,
            &eps_model,
        ),
        (
            "MRS ODE-1".into(),
            Box::new(Mrs::ode(1, Form::Data)),
            lam.clone(),
            &eps_model,
        ),
        (
            "MRS ODE-2 data".into(),
            Box::new(Mrs::ode(2, Form::Data)),
            lam.clone(),
            &eps_model,
        ),
        (
            "MRS ODE-3 data".into(),
            Box::new(Mrs::ode(3, Form::Data)),
            lam.clone(),
            &eps_model,
        ),
        (
            "MRS ODE-2 noise".into(),
            Box::new(Mrs::ode(2, Form::Noise)),
            lam.clone(),
            &eps_model,
        ),
        (
            "MRS ODE-3 noise".into(),
            Box::new(Mrs::ode(3, Form::Noise)),
            lam.clone(),
            &eps_model,
        ),
        (
            "MRS ODE-2 data (v model)".into(),
            Box::new(Mrs::ode(2, Form::Data)),
            lam.clone(),
            &v_model,
        ),
        (
            "MRS ODE-3 data (uniform t)".into(),
            Box::new(Mrs::ode(3, Form::Data)),
            StepGrid::UniformT,
            &eps_model,
        ),
        (
            "DPM-Solver++-2S".into(),
            Box::new(DpmSolverSingle {
                order: 2,
                form: Form::Data,
            }),
            lam.clone(),
            &eps_model,
        ),
    ];
    let target = 1e-2;
    let mut series = Vec::new();
    let mut md = format!(
        "# R1: pathwise RMSE against a {fine}-step MRS ODE-3 reference (self-consistency {self_consistency:.1e}), {n} paths\n\nIn brackets: the share of paths ending in another mode than the reference's; one such path among {n} alone gives an RMSE of about 1.5/sqrt({n}).\n\n| sampler | {} | first NFE on this grid with RMSE <= {target} |\n|---|{}---|\n",
        nfes.map(|n| n.to_string()).join(" | "),
        "---|".repeat(nfes.len())
    );
    let mut needed = std::collections::BTreeMap::new();
    // (case, requested NFE) → (NFE used, RMSE), reused by the refinement below.
    let mut seen: BTreeMap<(String, usize), (usize, f64)> = BTreeMap::new();
    for (name, s, grid, model) in &cases {
        let mut pts = Vec::new();
        let mut row = Vec::new();
        let mut first = None;
        for &nfe in &nfes {
            let (x, used) = run(&p, s.as_ref(), grid, nfe, *model, &x_t, 0)?;
            let e = pathwise_rmse(&x, &reference)?;
            seen.insert((name.clone(), nfe), (used, e));
            let switched = assign_modes(&x, &p.gmm)?
                .ne_tensor(&ref_modes)
                .to_kind(graft_tensor::tch::Kind::Double)
                .mean(graft_tensor::tch::Kind::Double)
                .double_value(&[]);
            row.push(format!("{e:.2e} ({:.1}%)", 100.0 * switched));
            if e.is_finite() {
                pts.push((log2(used), e.log10()));
            }
            if first.is_none() && e <= target {
                first = Some(used);
            }
        }
        needed.insert(name.clone(), first);
        let _ = writeln!(
            md,
            "| {name} | {} | {} |",
            row.join(" | "),
            fmt_nfe(first, 320)
        );
        series.push(Series {
            label: name.clone(),
            points: pts,
        });
    }
    write_md(ctx, "r1_rmse.md", &md)?;
    line_chart(
        &ctx.path("r1_rmse.svg"),
        "R1: pathwise RMSE vs NFE (uniform lambda unless noted)",
        "log2 NFE",
        "log10 RMSE",
        &series,
    )?;
    out.plots.push("r1_rmse.svg".into());
    // The claim's two samplers to ×1.25 precision (the doubling grid alone
    // brackets each answer within 2×), then interpolated log-log.
    let mut to_target = |label: &str| -> Result<ToTarget> {
        let (_, s, grid, model) = cases
            .iter()
            .find(|c| c.0 == label)
            .ok_or_else(|| crate::Error::Config(format!("R1: no case {label}")))?;
        nfe_to_target(&nfes, 1.25, 2560, target, |nfe| {
            if let Some(&hit) = seen.get(&(label.to_string(), nfe)) {
                return Ok(hit);
            }
            let (x, used) = run(&p, s.as_ref(), grid, nfe, *model, &x_t, 0)?;
            let e = pathwise_rmse(&x, &reference)?;
            seen.insert((label.to_string(), nfe), (used, e));
            Ok((used, e))
        })
    };
    let mrs3 = to_target("MRS ODE-3 data")?;
    let euler = to_target("Euler ODE")?;
    let describe = |t: &ToTarget| match (t.interpolated(), t.bracket()) {
        (Some(x), (lo, Some(hi))) => format!("{x:.0} (reached in ({lo}, {hi}])"),
        (_, (lo, _)) => format!("> {lo}"),
    };
    let (ratio, bracket, pass) = match (mrs3.interpolated(), euler.interpolated()) {
        (Some(m), Some(e)) => {
            let ((m_lo, m_hi), (e_lo, e_hi)) = (mrs3.bracket(), euler.bracket());
            let lo = e_lo as f64 / m_hi.unwrap_or(1) as f64;
            let hi = e_hi.unwrap_or(0) as f64 / m_lo.max(1) as f64;
            (e / m, format!(" (bracket {lo:.1}-{hi:.1})"), e / m >= 8.0)
        }
        (Some(m), None) => {
            let e_lo = euler.bracket().0 as f64;
            (
                e_lo / m,
                " (Euler not reached: a lower bound)".to_string(),
                e_lo / m >= 8.0,
            )
        }
        _ => (f64::NAN, String::new(), false),
    };
    out.claims.push(Claim::new(
        "r1-nfe-to-rmse-1e-2",
        "R1: MRS ODE-3 data reaches pathwise RMSE 1e-2 with >= 8x fewer NFE than Euler ODE (prototype: ~40 vs > 300); NFE to target bracketed on a x1.25 grid and interpolated log-log",
        ">= 8x (MRS ~40 NFE, Euler > 300)",
        format!(
            "MRS {} NFE, Euler {} NFE: ratio {ratio:.1}{bracket}",
            describe(&mrs3),
            describe(&euler)
        ),
        pass,
    ));
    Ok(())
}

/// R2: distribution quality in 64-D against the exact-sample floor.
pub(super) fn r2(ctx: &ExperimentContext, out: &mut Outcome) -> Result<()> {
    let p = make_r2(derive_seed(ctx.seed, "diffusion/r2/means"))?;
    let n = ctx.pick(1000, 2000);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(ctx.seed, "diffusion/r2"));
    let fl = floor(&p, n, &mut rng)?;
    let x_t = p.gmm.sample_marginal(&*p.process, p.t_start, n, &mut rng)?;
    let model = GmmModel::new(p.gmm.clone(), p.process.clone(), Parameterization::Noise);
    let lam = lam_grid(&p);
    let cases: Vec<SweepCase> = vec![
        (
            "Euler-Maruyama (uniform t)",
            Box::new(EulerMaruyama),
            StepGrid::UniformT,
            vec![10, 20, 50, 100, 200],
        ),
        (
            "Euler-Maruyama (uniform lambda)",
            Box::new(EulerMaruyama),
            lam.clone(),
            vec![10, 20, 50, 100, 200],
        ),
        (
            "posterior",
            Box::new(Posterior),
            lam.clone(),
            vec![10, 20, 50, 100],
        ),
        (
            "MRS ODE-3 data",
            Box::new(Mrs::ode(3, Form::Data)),
            lam.clone(),
            vec![5, 10, 20, 40],
        ),
        (
            "MRS ODE-2 noise",
            Box::new(Mrs::ode(2, Form::Noise)),
            lam.clone(),
            vec![5, 10, 20, 50],
        ),
        (
            "MRS SDE-1 data",
            Box::new(Mrs::sde(1, Form::Data)),
            lam.clone(),
            vec![5, 10, 20, 50],
        ),
        (
            "MRS SDE-2 data",
            Box::new(Mrs::sde(2, Form::Data)),
            lam.clone(),
            vec![5, 10, 20, 50],
        ),
        (
            "MRS SDE-1 noise",
            Box::new(Mrs::sde(1, Form::Noise)),
            lam.clone(),
            vec![5, 10, 20, 50],
        ),
        (
            "MRS SDE-2 noise",
            Box::new(Mrs::sde(2, Form::Noise)),
            lam.clone(),
            vec![5, 10, 20, 50],
        ),
        (
            "MRS ODE-3 data (uniform t)",
            Box::new(Mrs::ode(3, Form::Data)),
            StepGrid::UniformT,
            vec![5, 10, 20, 40],
        ),
    ];
    let mut md = format!(
        "# R2 (64-D, 10 modes): quality vs NFE, {n} samples\n\nExact-sample floor (5 seeds): MMD² {:.2e} ± {:.1e}, mode TV {:.4} ± {:.4}, std ratio {:.4}\n\n| sampler | NFE | MMD² | mode TV | std ratio | outliers |\n|---|---|---|---|---|---|\n",
        fl.mmd.0, fl.mmd.1, fl.tv.0, fl.tv.1, fl.std_ratio
    );
    let mut results: std::collections::BTreeMap<(String, usize), Quality> = Default::default();
    let (mut s_mmd, mut s_std) = (Vec::new(), Vec::new());
    for (name, s, grid, nfes) in &cases {
        let (mut pm, mut ps) = (Vec::new(), Vec::new());
        for &nfe in nfes {
            let (x, used) = run(
                &p,
                s.as_ref(),
                grid,
                nfe,
                &model,
                &x_t,
                derive_seed(ctx.seed, name),
            )?;
            let q = quality(&x, &fl, &p.gmm)?;
            tracing::info!(
                sampler = name,
                nfe = used,
                mmd = q.mmd,
                tv = q.tv,
                std_ratio = q.std_ratio,
                "r2"
            );
            let _ = writeln!(
                md,
                "| {name} | {used} | {:.3e} | {:.4} | {:.4} | {:.4} |",
                q.mmd, q.tv, q.std_ratio, q.outliers
            );
            if q.mmd.is_finite() && q.mmd > 0.0 {
                pm.push((log2(used), q.mmd.log10()));
            }
            if q.std_ratio.is_finite() {
                ps.push((log2(used), q.std_ratio.log10()));
            }
            results.insert((name.to_string(), used), q);
        }
        s_mmd.push(Series {
            label: name.to_string(),
            points: pm,
        });
        s_std.push(Series {
            label: name.to_string(),
            points: ps,
        });
    }
    write_md(ctx, "r2_quality.md", &md)?;
    line_chart(
        &ctx.path("r2_mmd.svg"),
        "R2: MMD² vs NFE",
        "log2 NFE",
        "log10 MMD²",
        &s_mmd,
    )?;
    line_chart(
        &ctx.path("r2_std_ratio.svg"),
        "R2: within-mode std ratio vs NFE (target 1 = 0)",
        "log2 NFE",
        "log10 std ratio",
        &s_std,
    )?;
    out.plots
        .extend(["r2_mmd.svg".to_string(), "r2_std_ratio.svg".to_string()]);

    // The baseline is Euler–Maruyama on the uniform-λ grid, as in the spec's
    // prototype (its 4.69 / 1.15 / 1.05 / 1.02 std ratios); uniform t is in the table.
    let em_name = "uniform lambda";
    let em = results[&("Euler-Maruyama (uniform lambda)".to_string(), 200)];
    let mrs = results[&("MRS ODE-3 data".to_string(), 20)];
    out.claims.push(Claim::new(
        "r2-mrs3-20-vs-em-200-mmd",
        &format!("R2: MRS ODE-3 data at 20 NFE has MMD² <= Euler-Maruyama at 200 NFE ({em_name}) + 3 floor-std (spec 9)"),
        format!("<= {:.3e}", em.mmd + 3.0 * fl.mmd.1),
        format!("{:.3e} (EM {:.3e}, floor {:.3e} ± {:.1e})", mrs.mmd, em.mmd, fl.mmd.0, fl.mmd.1),
        mrs.mmd <= em.mmd + 3.0 * fl.mmd.1,
    ));
    out.claims.push(Claim::new(
        "r2-mrs3-20-vs-em-200-tv",
        "R2: MRS ODE-3 data at 20 NFE has mode TV <= Euler-Maruyama at 200 NFE + 3 floor-std",
        format!("<= {:.4}", em.tv + 3.0 * fl.tv.1),
        format!("{:.4} (EM {:.4})", mrs.tv, em.tv),
        mrs.tv <= em.tv + 3.0 * fl.tv.1,
    ));
    out.claims.push(Claim::new(
        "r2-mrs3-20-vs-em-200-std",
        "R2: MRS ODE-3 data at 20 NFE has a within-mode std ratio within 0.02 of Euler-Maruyama at 200 NFE (>= 10x fewer NFE; paper 10-20x)",
        "|diff| <= 0.02",
        format!("{:.4} vs EM {:.4} (|diff| {:.4})", mrs.std_ratio, em.std_ratio, (mrs.std_ratio - em.std_ratio).abs()),
        (mrs.std_ratio - em.std_ratio).abs() <= 0.02,
    ));
    let worst = |name: &str| {
        [5usize, 10]
            .iter()
            .map(|&k| results[&(name.to_string(), k)].std_ratio)
            .fold(
                0.0f64,
                |a, b| if b.is_nan() { f64::INFINITY } else { a.max(b) },
            )
    };
    let noise_worst = worst("MRS SDE-2 noise").max(worst("MRS SDE-1 noise"));
    let data_worst = worst("MRS SDE-2 data").max(worst("MRS SDE-1 data"));
    out.claims.push(Claim::new(
        "r2-sde-noise-diverges",
        "R2: the noise-form MRS SDE (orders 1-2) diverges at <= 10 NFE: std ratio > 100 (spec 7.5 prototype; paper: noise prediction unstable at low NFE)",
        "> 100",
        format!("{noise_worst:.3e}"),
        noise_worst > 100.0,
    ));
    out.claims.push(Claim::new(
        "r2-sde-data-finite",
        "R2: the data-form MRS SDE (orders 1-2) stays finite at <= 10 NFE (std ratio < 10)",
        "< 10",
        format!("{data_worst:.4}"),
        data_worst.is_finite() && data_worst < 10.0,
    ));
    Ok(())
}

/// R3: the reference discrete table, the shipped MRS config against the
/// reference 100-step baselines.
pub(super) fn r3(ctx: &ExperimentContext, out: &mut Outcome) -> Result<()> {
    let p = make_r3(derive_seed(ctx.seed, "diffusion/r3/means"))?;
    let n = ctx.pick(1000, 2000);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(ctx.seed, "diffusion/r3"));
    let fl = floor(&p, n, &mut rng)?;
    // The reference draws x_T = μ + σ∞ z; sample from the exact p_T to isolate solver error.
    let x_t = p.gmm.sample_marginal(&*p.process, p.t_start, n, &mut rng)?;
    let model = GmmModel::new(p.gmm.clone(), p.process.clone(), Parameterization::Noise);
    let lam = lam_grid(&p);
    let cases: Vec<SweepCase> = vec![
        (
            "Euler-Maruyama (linspace)",
            Box::new(EulerMaruyama),
            StepGrid::Linspace,
            vec![10, 20, 50, 100],
        ),
        (
            "posterior (linspace)",
            Box::new(Posterior),
            StepGrid::Linspace,
            vec![10, 20, 50, 100],
        ),
        (
            "MRS ODE-2 data",
            Box::new(Mrs::ode(2, Form::Data)),
            lam.clone(),
            vec![5, 10, 20],
        ),
        (
            "MRS ODE-3 data",
            Box::new(Mrs::ode(3, Form::Data)),
            lam.clone(),
            vec![5, 10, 20],
        ),
        (
            "MRS SDE-2 data",
            Box::new(Mrs::sde(2, Form::Data)),
            lam.clone(),
            vec![5, 10, 20],
        ),
    ];
    let mut md = format!(
        "# R3 (reference table T = 100, sigma_inf = 50/255, 16-D data in [0, 1]): {n} samples\n\nFloor: MMD² {:.2e} ± {:.1e}, mode TV {:.4} ± {:.4}, std ratio {:.4}\n\n| sampler | NFE | MMD² | mode TV | std ratio |\n|---|---|---|---|---|\n",
        fl.mmd.0, fl.mmd.1, fl.tv.0, fl.tv.1, fl.std_ratio
    );
    let mut results: std::collections::BTreeMap<(String, usize), Quality> = Default::default();
    let mut s_mmd = Vec::new();
    for (name, s, grid, nfes) in &cases {
        let mut pm = Vec::new();
        for &nfe in nfes {
            let (x, used) = run(
                &p,
                s.as_ref(),
                grid,
                nfe,
                &model,
                &x_t,
                derive_seed(ctx.seed, name),
            )?;
            let q = quality(&x, &fl, &p.gmm)?;
            let _ = writeln!(
                md,
                "| {name} | {used} | {:.3e} | {:.4} | {:.4} |",
                q.mmd, q.tv, q.std_ratio
            );
            if q.mmd.is_finite() && q.mmd > 0.0 {
                pm.push((log2(used), q.mmd.log10()));
            }
            results.insert((name.to_string(), used), q);
        }
        s_mmd.push(Series {
            label: name.to_string(),
            points: pm,
        });
    }
    write_md(ctx, "r3_quality.md", &md)?;
    line_chart(
        &ctx.path("r3_mmd.svg"),
        "R3 (reference table): MMD² vs NFE",
        "log2 NFE",
        "log10 MMD²",
        &s_mmd,
    )?;
    out.plots.push("r3_mmd.svg".into());
    let post = results[&("posterior (linspace)".to_string(), 100)];
    for nfe in [10usize, 20] {
        let m = results[&("MRS ODE-2 data".to_string(), nfe)];
        out.claims.push(Claim::new(
            &format!("r3-mrs2-{nfe}-vs-posterior-100"),
            &format!("R3 (reference table): MRS ODE-2 data (the shipped config) at {nfe} NFE is no worse than the 100-step posterior sampler: MMD² <= its value + 3 floor-std, |std ratio - 1| <= its own + 0.02 (paper: 10-20x speed-up at maintained quality)"),
            format!("MMD² <= {:.3e}, |std ratio - 1| <= {:.4}", post.mmd + 3.0 * fl.mmd.1, (post.std_ratio - 1.0).abs() + 0.02),
            format!("MMD² {:.3e}, std ratio {:.4} (posterior {:.4})", m.mmd, m.std_ratio, post.std_ratio),
            m.mmd <= post.mmd + 3.0 * fl.mmd.1 && (m.std_ratio - 1.0).abs() <= (post.std_ratio - 1.0).abs() + 0.02,
        ));
    }
    Ok(())
}

/// DMCMC on R2 as a VE problem (σ_max = 80, σ_min = 0.002, ρ = 7): DLG + Heun
/// against plain EDM Heun from σ_max at equal model calls per sample, the
/// chains' start-up and burn-in included ([`super::chains`]).
pub(super) fn dlg(ctx: &ExperimentContext, out: &mut Outcome) -> Result<()> {
    use super::chains::{ChainCost, EMISSIONS, argmax_dlg, emit_k, heun_points_at_least};
    use crate::samplers::{Churn, EdmHeun, ExactLevels};
    let r2p = make_r2(derive_seed(ctx.seed, "diffusion/r2/means"))?;
    let spec = crate::saved::ProcessSpec::Ve {
        sigma_min: 0.002,
        sigma_max: 80.0,
    };
    let p = Problem {
        name: "r2-ve",
        process: spec.build(None)?,
        process_spec: spec,
        gmm: r2p.gmm,
        t_start: 1.0,
        t_end: 0.0,
        lambda_min: None,
    };
    let n = ctx.pick(500, 2000);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(ctx.seed, "diffusion/dlg"));
    let data_floor = {
        let reference = p.gmm.sample_data(n, &mut rng)?;
        let bw = median_distance(&reference)?;
        let (mut mm, mut tv) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let other = p.gmm.sample_data(n, &mut rng)?;
            mm.push(mmd2_unbiased(&other, &reference, bw, &MMD_SCALES)?);
            tv.push(mode_stats(&other, &p.gmm)?.tv);
        }
        Floor {
            reference,
            bw,
            mmd: mean_std(&mm),
            tv: mean_std(&tv),
            std_ratio: 1.0,
        }
    };
    let model = GmmModel::new(p.gmm.clone(), p.process.clone(), Parameterization::Data);
    let karras = StepGrid::Karras { rho: 7.0 };
    let heun = EdmHeun::deterministic();
    let x_t = p.gmm.sample_marginal(&*p.process, 1.0, n, &mut rng)?;
    let mut md = format!(
        "# DMCMC on R2 as a VE problem (sigma 80 -> 0.002), {n} samples per row\n\nExact-sample floor: MMD² {:.2e} ± {:.1e}, mode TV {:.4} ± {:.4}\n\n\
NFE per sample counts every model call behind a sample: for DLG, the chains' start-up (a 20-point stochastic Karras run from sigma_max) and 20 burn-in iterations, paid once per chain, plus K emissions (n_skip 1 iteration + the Heun descent), divided by the K samples each chain emits. {n} samples come from {n}/K chains. Plain Heun is given at least as many NFE per sample as the DLG row it is compared with. The level posterior is exact (a classifier's calls are not model calls).\n\n\
| sampler | NFE per sample | MMD² | mode TV | std ratio | outliers |\n|---|---|---|---|---|---|\n",
        data_floor.mmd.0, data_floor.mmd.1, data_floor.tv.0, data_floor.tv.1
    );
    let mut heun_q: BTreeMap<usize, Quality> = BTreeMap::new();
    let mut heun_at = |points: usize, md: &mut String| -> Result<(usize, Quality)> {
        let nfe = 2 * points - 1;
        if let Some(q) = heun_q.get(&nfe) {
            return Ok((nfe, *q));
        }
        let (x, used) = run(&p, &heun, &karras, nfe, &model, &x_t, 0)?;
        let q = quality(&x, &data_floor, &p.gmm)?;
        let _ = writeln!(
            md,
            "| EDM Heun from sigma_max ({points} points) | {used} | {:.3e} | {:.4} | {:.4} | {:.4} |",
            q.mmd, q.tv, q.std_ratio, q.outliers
        );
        heun_q.insert(used, q);
        Ok((used, q))
    };
    for points in [5usize, 10] {
        heun_at(points, &mut md)?;
    }
    let levels_n = ctx.pick(100, 200);
    let levels: Vec<f64> = (0..levels_n)
        .map(|i| 1.0 - i as f64 / (levels_n - 1) as f64 * 0.999)
        .collect();
    let post = ExactLevels {
        gmm: &p.gmm,
        process: &*p.process,
    };
    let mut noise = SeededNoise::new(derive_seed(ctx.seed, "diffusion/dlg/noise"));
    let churn = EdmHeun {
        churn: Some(Churn::ve()),
        final_zero: true,
    };
    let init_grid = karras.times(&*p.process, 19, 1.0, 0.0)?;
    const BURN_IN: usize = 20;
    // (K, points) → DLG's quality, its cost, and the Heun it is compared with.
    let mut pairs = Vec::new();
    for k in EMISSIONS {
        // Chains as the reference code starts them: a 20-point stochastic
        // Karras run, plus 0.5·N(0, I), then classified, then burnt in.
        let chains_n = (n / k) as i64;
        let x_start = x_t.f_narrow(0, 0, chains_n)?;
        let (x0, init) = churn.sample(&*p.process, &model, &x_start, &init_grid, &mut noise)?;
        let z = crate::noise::normal_like(&mut rng, &x0)?;
        let x_init = x0 + z * 0.5;
        let _ = writeln!(
            md,
            "| chain start-up alone (stochastic Karras init {} + burn-in {BURN_IN}), K = {k} | {:.1} | | | | |",
            init.nfe,
            (init.nfe + BURN_IN) as f64 / k as f64
        );
        for (points, eta) in [(5usize, 0.05), (10, 0.05)] {
            let cfg = argmax_dlg(eta, &levels, points, None);
            let mut chains = cfg.start(x_init.copy());
            // Argmax levels draw nothing from the generator.
            chains.level = cfg.classify(&post, &chains.x, &mut rng)?;
            let burn_in = cfg.burn_in(
                &*p.process,
                &model,
                &post,
                &mut chains,
                BURN_IN,
                &mut noise,
                &mut rng,
            )?;
            let (x, per_emission) = emit_k(
                &cfg,
                &*p.process,
                &model,
                &post,
                &heun,
                &mut chains,
                k,
                &mut noise,
                &mut rng,
            )?;
            let cost = ChainCost {
                start: init.nfe,
                burn_in,
                per_emission,
                k,
            };
            let q = quality(&x, &data_floor, &p.gmm)?;
            let mean_sigma = chains
                .level
                .iter()
                .map(|&j| p.process.sigma(levels[j]))
                .sum::<f64>()
                / chains.level.len() as f64;
            let _ = writeln!(
                md,
                "| DLG (exact levels, argmax, eta {eta}, n_skip 1) + Heun ({points} points), {} chains × K = {k} | {:.1} = {} | {:.3e} | {:.4} | {:.4} | {:.4} |",
                chains_n,
                cost.per_sample(),
                cost.breakdown(),
                q.mmd,
                q.tv,
                q.std_ratio,
                q.outliers
            );
            let _ = writeln!(
                md,
                "|   chains' mean sigma after the last emission: {mean_sigma:.3} | | | | | |"
            );
            let (h_nfe, h) = heun_at(heun_points_at_least(cost.per_sample()), &mut md)?;
            pairs.push((k, points, q, cost, h_nfe, h));
        }
    }
    write_md(ctx, "dlg.md", &md)?;
    for (k, points, d, cost, h_nfe, h) in pairs {
        out.claims.push(Claim::new(
            &format!("dlg-vs-heun-k{k}-{points}pt"),
            &format!(
                "R2 as VE: DLG + Heun ({points} points), chains emitting K = {k} samples each, beats plain EDM Heun from sigma_max at equal or more NFE per sample, start-up and burn-in included (std ratio closer to 1 and MMD² no worse than + 3 floor-std); prototype, start-up not counted: std ratio 1.24 vs 10.4 at 10 vs 9 NFE"
            ),
            "DLG better at equal NFE per sample",
            format!(
                "DLG {:.1} NFE per sample {}: std ratio {:.3}, MMD² {:.2e}; Heun {h_nfe} NFE: std ratio {:.3}, MMD² {:.2e}",
                cost.per_sample(),
                cost.breakdown(),
                d.std_ratio,
                d.mmd,
                h.std_ratio,
                h.mmd
            ),
            (d.std_ratio - 1.0).abs() < (h.std_ratio - 1.0).abs()
                && d.mmd <= h.mmd + 3.0 * data_floor.mmd.1,
        ));
    }
    Ok(())
}
