//! graft-peft: parameter-efficient fine-tuning of `tch` models through
//! adapters, interchangeable with Hugging Face PEFT's files.
//!
//! A model builds its layers through a [`Layers`] registry (a
//! [`graft_nn::layers::LayerFactory`]: Linear, GPT-2 Conv1D, Conv2d,
//! Embedding, named by their `nn::Path`); a [`PeftModel`] then adds named
//! adapters to the layers PEFT's target rules select ([`targets`]),
//! activates, disables, merges, unmerges (exactly, by default) and unloads
//! them, and reads and writes PEFT's adapter directories ([`io`]).
//!
//! Methods, behind the one [`Adapter`] contract: LoRA with rsLoRA scaling
//! and DoRA ([`lora::Lora`]), HUT in both readings ([`hut::Hut`]) and FLoRA
//! ([`flora::Flora`]); weighted combinations of LoRA adapters ([`combine`]).
//!
//! ```no_run
//! use graft_nn::layers::LayerFactory;
//! use graft_peft::{Layers, LoraConfig, PeftModel};
//! use graft_tensor::tch::{Device, Kind, Tensor, nn, nn::ModuleT};
//!
//! # fn main() -> graft_peft::Result<()> {
//! let mut vs = nn::VarStore::new(Device::Cpu);
//! let layers = Layers::new();
//! let fc = layers.linear(&(vs.root() / "fc"), 8, 16, true);
//! let mut peft = PeftModel::new(&mut vs, &layers);
//! peft.add_adapter("default", LoraConfig::new(4, 8.0, &["fc"]))?;
//! let y = fc.forward_t(&Tensor::randn([2, 8], (Kind::Float, Device::Cpu)), false);
//! println!("{}", peft.parameter_count()); // trainable params: 96 || ...
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod adapter;
pub mod combine;
pub mod config;
mod error;
#[cfg(feature = "experiments")]
pub mod experiments;
pub mod files;
pub mod flora;
pub mod hut;
pub mod io;
pub mod layer;
pub mod lora;
mod methods;
mod model;
mod registry;
pub mod targets;
mod wrapped;

pub use adapter::Adapter;
pub use combine::Combination;
pub use config::LoraConfig;
pub use error::{Error, Result};
pub use io::LoadOptions;
pub use model::{KEY_PREFIX, ParameterCount, PeftModel};
pub use registry::{AdaptableLayer, Layers};
pub use wrapped::AdaptedLayer;
