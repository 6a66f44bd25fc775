//! [`Layers`]: the adaptable layers of one model. A model built through it
//! (it is a [`LayerFactory`]) gets layers that behave as tch's until an
//! adapter is added; [`crate::PeftModel`] finds them here by path.

use crate::layer::{BaseLayer, ConvGeometry, LayerKind};
use crate::wrapped::AdaptedLayer;
use crate::{Error, Result};
use graft_nn::layers::LayerFactory;
use graft_tensor::tch::{Tensor, nn};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A layer shared by the model (which calls it) and the registry.
pub(crate) type Shared = Arc<Mutex<AdaptedLayer>>;

/// The adaptable layers of a model, by path; cheap to clone (shared).
/// Building two layers at one path through it panics, naming the path.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    layers: Arc<Mutex<BTreeMap<String, Shared>>>,
    routing: Routing,
}

/// Per-sample adapter names set for the next forward passes (mixed batches).
pub(crate) type Routing = Arc<Mutex<Option<Arc<Vec<String>>>>>;

impl Layers {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `base` at `path` and returns the layer the model calls.
    pub fn register(&self, path: &str, base: BaseLayer) -> Result<AdaptableLayer> {
        let mut map = self.lock();
        if map.contains_key(path) {
            return Err(Error::Unsupported {
                layer: path.into(),
                what: "a layer is already registered at this path".into(),
            });
        }
        let shared: Shared = Arc::new(Mutex::new(AdaptedLayer::new(path, base)));
        map.insert(path.into(), shared.clone());
        Ok(AdaptableLayer {
            layer: shared,
            routing: self.routing.clone(),
        })
    }

    /// The paths of the registered layers, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The layer at `path`.
    pub(crate) fn get(&self, path: &str) -> Option<Shared> {
        self.lock().get(path).cloned()
    }

    /// Every layer, by path.
    pub(crate) fn all(&self) -> Vec<(String, Shared)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Sets (or clears) the per-sample adapter names.
    pub(crate) fn set_routing(&self, names: Option<Vec<String>>) {
        *self.routing.lock().unwrap_or_else(|p| p.into_inner()) = names.map(Arc::new);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Shared>> {
        self.layers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(p: &nn::Path) -> String {
        p.components().collect::<Vec<_>>().join(".")
    }

    /// Registers the layer built at `p`. A `LayerFactory` cannot return an
    /// error, so a second layer at one path panics (tch itself would rename
    /// its variables `weight__N`, which no checkpoint or adapter names).
    fn build(&self, p: &nn::Path, base: BaseLayer) -> Box<dyn nn::ModuleT> {
        let path = Self::path_of(p);
        match self.register(&path, base) {
            Ok(layer) => Box::new(layer),
            Err(e) => panic!("{e}"),
        }
    }

    /// [`build`](Self::build) for a convolution of `kind` with tch's `config`.
    fn build_conv(
        &self,
        p: &nn::Path,
        kind: LayerKind,
        config: nn::ConvConfig,
        weight: Tensor,
        bias: Option<Tensor>,
    ) -> Box<dyn nn::ModuleT> {
        let conv = ConvGeometry {
            stride: config.stride,
            padding: config.padding,
            dilation: config.dilation,
            groups: config.groups,
        };
        self.build(
            p,
            BaseLayer {
                kind,
                conv,
                weight,
                bias,
            },
        )
    }
}

impl LayerFactory for Layers {
    fn linear(&self, p: &nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> Box<dyn nn::ModuleT> {
        let l = nn::linear(
            p,
            in_dim,
            out_dim,
            nn::LinearConfig {
                bias,
                ..Default::default()
            },
        );
        self.build(
            p,
            BaseLayer {
                kind: LayerKind::Linear,
                conv: ConvGeometry::default(),
                weight: l.ws,
                bias: l.bs,
            },
        )
    }

    fn conv1d_gpt2(&self, p: &nn::Path, in_dim: i64, out_dim: i64) -> Box<dyn nn::ModuleT> {
        let l = graft_nn::layers::Gpt2Conv1D::new(p, in_dim, out_dim);
        self.build(
            p,
            BaseLayer {
                kind: LayerKind::Conv1D,
                conv: ConvGeometry::default(),
                weight: l.weight,
                bias: Some(l.bias),
            },
        )
    }

    fn conv2d(
        &self,
        p: &nn::Path,
        in_dim: i64,
        out_dim: i64,
        kernel: i64,
        config: nn::ConvConfig,
    ) -> Box<dyn nn::ModuleT> {
        let c = nn::conv2d(p, in_dim, out_dim, kernel, config);
        self.build_conv(p, LayerKind::Conv2d, config, c.ws, c.bs)
    }

    fn conv3d(
        &self,
        p: &nn::Path,
        in_dim: i64,
        out_dim: i64,
        kernel: i64,
        config: nn::ConvConfig,
    ) -> Box<dyn nn::ModuleT> {
        let c = nn::conv3d(p, in_dim, out_dim, kernel, config);
        self.build_conv(p, LayerKind::Conv3d, config, c.ws, c.bs)
    }

    fn embedding(&self, p: &nn::Path, num: i64, dim: i64) -> Box<dyn nn::ModuleT> {
        let e = nn::embedding(p, num, dim, Default::default());
        self.build(
            p,
            BaseLayer {
                kind: LayerKind::Embedding,
                conv: ConvGeometry::default(),
                weight: e.ws,
                bias: None,
            },
        )
    }
}

/// A layer the model calls: its base layer plus whatever adapters are
/// active on it.
#[derive(Debug, Clone)]
pub struct AdaptableLayer {
    layer: Shared,
    routing: Routing,
}

impl AdaptableLayer {
    /// The output for `x` (dropout when `train`); a bad input is an `Err`
    /// naming the layer.
    pub fn try_forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let routing = self
            .routing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let layer = self.layer.lock().unwrap_or_else(|p| p.into_inner());
        let out = match routing {
            Some(names) => layer.forward_routed(x, train, &names),
            None => layer.forward(x, train),
        };
        out.map_err(|e| match e {
            Error::BadInput { what, reason } => Error::BadInput {
                what: format!("`{}`: {what}", layer.name),
                reason,
            },
            other => other,
        })
    }
}

impl nn::ModuleT for AdaptableLayer {
    /// Panics on a bad input as tch's layers do; [`AdaptableLayer::try_forward_t`] does not.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.try_forward_t(xs, train) {
            Ok(y) => y,
            Err(e) => panic!("{e}"),
        }
    }
}
