//! Experiments that live in graft-nn.

pub mod baselines;
