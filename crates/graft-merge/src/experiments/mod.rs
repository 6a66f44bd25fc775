//! Experiments that live in graft-merge.

pub mod placed_digits;
