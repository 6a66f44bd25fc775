//! Data: the [`Dataset`] type and loaders for the real data sets graft ships
//! through `cargo xtask fetch-assets`.

mod bilingual;
mod dataset;
mod loaders;
mod mnist1d;

pub use bilingual::{BOS, BilingualConfig, BilingualCorpus, Language, PAD, STOP, lm_batch};
pub use dataset::{Batches, Dataset, Splits};
pub use loaders::{digits, digits_from, mnist_5k, mnist_5k_from};
pub use mnist1d::{Mnist1dConfig, mnist1d_generate, mnist1d_templates};
