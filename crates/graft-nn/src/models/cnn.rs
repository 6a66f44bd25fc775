//! A small convolutional network for 8x8 and 28x28 images.

use crate::layers::{LayerFactory, Plain};
use crate::{Error, Result};
use graft_tensor::tch::Tensor;
use graft_tensor::tch::nn::{self, ModuleT};
use serde::{Deserialize, Serialize};

/// Sizes of a [`SmallCnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// Input channels.
    pub in_channels: i64,
    /// Input height and width (square images).
    pub image_size: i64,
    /// Output channels of each 3x3 convolution (padding 1).
    pub channels: Vec<i64>,
    /// After which convolutions (0-based) a 2x2 max-pool follows.
    pub pool_after: Vec<usize>,
    /// Width of the fully connected layer before the head.
    pub hidden: i64,
    /// Number of classes.
    pub classes: i64,
}

impl CnnConfig {
    /// 8x8 input: conv 16, conv 32, pool (4x4), fc 64, head.
    pub fn for_8x8(classes: i64) -> Self {
        Self {
            in_channels: 1,
            image_size: 8,
            channels: vec![16, 32],
            pool_after: vec![1],
            hidden: 64,
            classes,
        }
    }

    /// 28x28 input: conv 16, pool (14x14), conv 32, pool (7x7), fc 128, head.
    pub fn for_28x28(classes: i64) -> Self {
        Self {
            in_channels: 1,
            image_size: 28,
            channels: vec![16, 32],
            pool_after: vec![0, 1],
            hidden: 128,
            classes,
        }
    }
}

/// Convolutions `conv.{i}` (3x3, ReLU, optional 2x2 max-pool), then `fc` (ReLU) and `head`.
#[derive(Debug)]
pub struct SmallCnn {
    convs: Vec<(Box<dyn ModuleT>, bool)>,
    fc: Box<dyn ModuleT>,
    head: Box<dyn ModuleT>,
}

impl SmallCnn {
    /// Builds the layers under `path` with tch's own layers.
    pub fn new(path: &nn::Path, config: &CnnConfig) -> Result<Self> {
        Self::with_layers(path, config, &Plain)
    }

    /// Builds the layers under `path` through `layers` (e.g. graft-peft's
    /// adaptable layers).
    pub fn with_layers(
        path: &nn::Path,
        config: &CnnConfig,
        layers: &dyn LayerFactory,
    ) -> Result<Self> {
        if config.channels.is_empty() || config.image_size <= 0 || config.classes <= 0 {
            return Err(Error::Invalid(format!(
                "CNN config has no layers or bad sizes: {config:?}"
            )));
        }
        let conv_cfg = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let mut size = config.image_size;
        let mut in_c = config.in_channels;
        let mut convs = Vec::new();
        for (i, &c) in config.channels.iter().enumerate() {
            let pool = config.pool_after.contains(&i);
            convs.push((
                layers.conv2d(&(path / "conv" / i), in_c, c, 3, conv_cfg),
                pool,
            ));
            in_c = c;
            if pool {
                if size < 2 {
                    return Err(Error::Invalid(format!(
                        "CNN pools an image below 1x1: {config:?}"
                    )));
                }
                size /= 2;
            }
        }
        let flat = in_c * size * size;
        let fc = layers.linear(&(path / "fc"), flat, config.hidden, true);
        let head = layers.linear(&(path / "head"), config.hidden, config.classes, true);
        Ok(Self { convs, fc, head })
    }
}

impl ModuleT for SmallCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = xs.shallow_clone();
        for (conv, pool) in &self.convs {
            h = conv.forward_t(&h, train).relu();
            if *pool {
                h = h.max_pool2d_default(2);
            }
        }
        let h = self.fc.forward_t(&h.flatten(1, -1), train).relu();
        self.head.forward_t(&h, train)
    }
}
