//! SGTM, Selective GradienT Masking (Shilov, Cloud et al., 2025), and
//! gradient routing: train a model so that what it learns from the forget
//! domain lives in designated parameters, then remove them.
//!
//! - [`RoutedModel`]: a model with designated heads, units or channels
//!   (graft-nn's `TinyLm`, and a `SmallCnn` through [`RoutedCnn`];
//!   [`tiny_lm_designated`] and [`cnn_designated`] name their entries);
//! - [`SgtmTrainer`]: the per-batch modes (`forget`, `retain`, `default`),
//!   the mask rules (the reference's, with embeddings, `strict`), both
//!   optimiser semantics ([`Semantics`]) and the final ablation;
//! - [`plan`]: domain schedules, label noise (recall, precision) and the
//!   arms SGTM is compared with (no filter, data filtering).
//!
//! With strict masks, `SkipMasked`, every retain batch in retain mode and
//! perfect labels, the non-designated parameters end bit for bit as those
//! of a model trained on the retain batches alone with the designated
//! parts ablated throughout (spec C1-C5, tested).

mod designated;
mod optimizer;
pub mod plan;
mod trainer;

pub use designated::{
    RoutedCnn, RoutedModel, cnn_designated, cnn_designated_count, tiny_lm_designated,
    tiny_lm_designated_count,
};
pub use optimizer::{AdamW, MaskedAdamW, Semantics};
pub use trainer::{
    BatchMode, MaskRule, SgtmConfig, SgtmTrainer, Variant, ablate_designated, lm_loss,
};
