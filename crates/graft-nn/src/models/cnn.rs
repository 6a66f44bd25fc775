//! A small convolutional network for 8x8 and 28x28 images.

use super::route::Route;
use crate::layers::{LayerFactory, Plain};
use crate::{Error, Result};
use graft_tensor::tch::nn::{self, ModuleT};
use graft_tensor::tch::{Kind, Tensor};
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
    config: CnnConfig,
}

/// Which parts of a [`SmallCnn`] are designated (e.g. for SGTM): the last
/// `channels[i]` output channels of convolution `i` and the last `units`
/// units of `fc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CnnDesignated {
    /// Designated output channels per convolution (the last ones).
    pub channels: Vec<i64>,
    /// Designated units of the fully connected layer (the last ones).
    pub units: i64,
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
        Ok(Self {
            convs,
            fc,
            head,
            config: config.clone(),
        })
    }
}

impl SmallCnn {
    /// The sizes it was built with.
    pub fn config(&self) -> &CnnConfig {
        &self.config
    }

    /// Logits with the `designated` channels and units taking part as
    /// `route` says (activations routed after each ReLU).
    pub fn forward_routed(
        &self,
        xs: &Tensor,
        route: Route,
        designated: &CnnDesignated,
    ) -> Result<Tensor> {
        if designated.channels.len() != self.convs.len() {
            return Err(Error::Invalid(format!(
                "designated channels for {} convolutions, the CNN has {}",
                designated.channels.len(),
                self.convs.len()
            )));
        }
        let keep = |n: i64, last: i64| -> Result<Tensor> {
            if !(0..=n).contains(&last) {
                return Err(Error::Invalid(format!("{last} designated of {n}")));
            }
            Ok(Tensor::cat(
                &[
                    Tensor::ones([n - last], (Kind::Float, xs.device())),
                    Tensor::zeros([last], (Kind::Float, xs.device())),
                ],
                0,
            ))
        };
        let mut h = xs.shallow_clone();
        for (i, (conv, pool)) in self.convs.iter().enumerate() {
            let c = self.config.channels[i];
            let k = keep(c, designated.channels[i])?.view([1, c, 1, 1]);
            h = route.apply(conv.forward_t(&h, false).relu(), &k);
            if *pool {
                h = h.max_pool2d_default(2);
            }
        }
        let k = keep(self.config.hidden, designated.units)?;
        let h = route.apply(self.fc.forward_t(&h.flatten(1, -1), false).relu(), &k);
        Ok(self.head.forward_t(&h, false))
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
