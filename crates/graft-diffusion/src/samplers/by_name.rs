//! Samplers by name, as commands and configuration files spell them: one
//! list, parsed in one place ([`SamplerName`]'s `FromStr`), built with the
//! options a name takes ([`SamplerOptions`]).

use super::{
    DpmSolverSingle, EdmHeun, EulerMaruyama, EulerOde, Mrs, Posterior, PredictorCorrector, Sampler,
};
use crate::integrator::{Form, ThirdOrder};
use crate::{Error, Result};

/// A sampler graft can build from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerName {
    /// `mrs-ode`: MRS, ODE form, orders 1-3.
    MrsOde,
    /// `mrs-sde`: MRS, SDE form, orders 1-2.
    MrsSde,
    /// `euler-maruyama`.
    EulerMaruyama,
    /// `euler-ode`: Euler on the probability-flow ODE.
    EulerOde,
    /// `posterior`: the exact posterior (ancestral) sampler.
    Posterior,
    /// `dpm-single`: DPM-Solver(++) single-step, orders 2-3.
    DpmSingle,
    /// `edm-heun`: Karras et al.'s Heun sampler, no churn.
    EdmHeun,
    /// `pc`: predictor-corrector.
    Pc,
}

impl SamplerName {
    /// Every name, in the order help texts list them.
    pub const ALL: [SamplerName; 8] = [
        SamplerName::MrsOde,
        SamplerName::MrsSde,
        SamplerName::EulerMaruyama,
        SamplerName::EulerOde,
        SamplerName::Posterior,
        SamplerName::DpmSingle,
        SamplerName::EdmHeun,
        SamplerName::Pc,
    ];

    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            SamplerName::MrsOde => "mrs-ode",
            SamplerName::MrsSde => "mrs-sde",
            SamplerName::EulerMaruyama => "euler-maruyama",
            SamplerName::EulerOde => "euler-ode",
            SamplerName::Posterior => "posterior",
            SamplerName::DpmSingle => "dpm-single",
            SamplerName::EdmHeun => "edm-heun",
            SamplerName::Pc => "pc",
        }
    }

    /// Every name, comma-separated (for help texts and errors).
    pub fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// Builds the sampler with `options` (order, form and third-order rule
    /// where the sampler takes them; ignored otherwise).
    pub fn build(self, options: SamplerOptions) -> Box<dyn Sampler> {
        match self {
            SamplerName::MrsOde => Box::new(Mrs {
                third_order: options.third_order,
                ..Mrs::ode(options.order, options.form)
            }),
            SamplerName::MrsSde => Box::new(Mrs::sde(options.order, options.form)),
            SamplerName::EulerMaruyama => Box::new(EulerMaruyama),
            SamplerName::EulerOde => Box::new(EulerOde),
            SamplerName::Posterior => Box::new(Posterior),
            SamplerName::DpmSingle => Box::new(DpmSolverSingle {
                order: options.order,
                form: options.form,
            }),
            SamplerName::EdmHeun => Box::new(EdmHeun {
                churn: None,
                final_zero: false,
            }),
            SamplerName::Pc => Box::new(PredictorCorrector::default()),
        }
    }
}

impl std::fmt::Display for SamplerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SamplerName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| Error::Config(format!("unknown sampler `{s}` ({})", Self::list())))
    }
}

/// The options a sampler name takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerOptions {
    /// Solver order (MRS ODE 1-3, MRS SDE 1-2, DPM-Solver single-step 2-3).
    pub order: usize,
    /// Noise or data form of the exponential integrators.
    pub form: Form,
    /// The order-3 D2 term.
    pub third_order: ThirdOrder,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        Self {
            order: 2,
            form: Form::Data,
            third_order: ThirdOrder::TaylorExact,
        }
    }
}

impl std::str::FromStr for Form {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "data" => Ok(Form::Data),
            "noise" => Ok(Form::Noise),
            other => Err(Error::Config(format!(
                "unknown form `{other}` (data, noise)"
            ))),
        }
    }
}

impl std::str::FromStr for ThirdOrder {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "taylor" => Ok(ThirdOrder::TaylorExact),
            "reference" => Ok(ThirdOrder::Reference),
            other => Err(Error::Config(format!(
                "unknown third-order rule `{other}` (taylor, reference)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_builds() {
        for name in SamplerName::ALL {
            assert_eq!(name.as_str().parse::<SamplerName>().unwrap(), name);
            let _ = name.build(SamplerOptions::default());
        }
        let err = "zigzag".parse::<SamplerName>().unwrap_err().to_string();
        assert!(err.contains("zigzag") && err.contains("mrs-ode"), "{err}");
        assert_eq!("noise".parse::<Form>().unwrap(), Form::Noise);
        assert!("x".parse::<ThirdOrder>().is_err());
    }
}
