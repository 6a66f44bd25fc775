//! The methods SSD is measured against, behind the same [`crate::Unlearner`]
//! contract: retraining from scratch (the gold standard), fine-tuning on the
//! retain set, gradient ascent (NegGrad, NegGrad+, GradDiff) and random labels.

mod finetune;
mod gradient_ascent;
mod random_labels;
mod retrain;

pub use finetune::Finetune;
pub use gradient_ascent::GradientAscent;
pub use random_labels::RandomLabels;
pub use retrain::{Reinit, Retrain, cnn_recipe, reinit_from_config};
