//! The `peft` reproduction (spec `peft.md` §6): adapters against head-only
//! and full fine-tuning on a digits transfer task, MLP and conv.

pub mod digits;

pub use digits::run;
