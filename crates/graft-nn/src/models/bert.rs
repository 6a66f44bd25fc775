//! A BERT encoder with Hugging Face's module names (`embeddings`,
//! `encoder.layer.N.attention.self.query`, …, `pooler`), so checkpoints and
//! PEFT adapter keys match transformers', built through a [`LayerFactory`]
//! so adapters can wrap its layers. Post-LN, exact GELU, dropout in
//! training only, and the attention mask as transformers 5 applies it
//! (padded keys get the dtype's minimum added to their scores).
//! [`BertForSequenceClassification`] puts it under `bert.` with a
//! `classifier`, as transformers does; [`mean_pool`] gives
//! sentence-transformers' sentence embeddings.

use crate::layers::LayerFactory;
use crate::{Error, Result};
use graft_tensor::tch::nn::{self, ModuleT};
use graft_tensor::tch::{Kind, Tensor};
use serde::{Deserialize, Serialize};

/// The fields of transformers' `config.json` for BERT that the encoder uses
/// (others are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Width.
    pub hidden_size: i64,
    /// Layers.
    pub num_hidden_layers: i64,
    /// Attention heads.
    pub num_attention_heads: i64,
    /// Feed-forward width.
    pub intermediate_size: i64,
    /// `gelu` (exact) or `gelu_new` / `gelu_pytorch_tanh` (tanh approximation), or `relu`.
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Dropout after embeddings and each sub-layer.
    #[serde(default = "tenth")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "tenth")]
    pub attention_probs_dropout_prob: f64,
    /// Positions.
    #[serde(default = "positions")]
    pub max_position_embeddings: i64,
    /// Token types.
    #[serde(default = "two")]
    pub type_vocab_size: i64,
    /// LayerNorm ε.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// The padding token.
    #[serde(default)]
    pub pad_token_id: i64,
}

fn gelu() -> String {
    "gelu".into()
}
fn tenth() -> f64 {
    0.1
}
fn positions() -> i64 {
    512
}
fn two() -> i64 {
    2
}
fn eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Reads a transformers `config.json`; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let c: Self = serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("{origin}: not a BERT config: {e}")))?;
        let positive = [
            c.vocab_size,
            c.hidden_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.intermediate_size,
            c.max_position_embeddings,
            c.type_vocab_size,
        ];
        if positive.iter().any(|&x| x <= 0) || c.hidden_size % c.num_attention_heads != 0 {
            return Err(Error::Invalid(format!(
                "{origin}: sizes must be positive and hidden_size ({}) a multiple of num_attention_heads ({})",
                c.hidden_size, c.num_attention_heads
            )));
        }
        if !["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"].contains(&c.hidden_act.as_str()) {
            return Err(Error::Invalid(format!(
                "{origin}: hidden_act `{}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)",
                c.hidden_act
            )));
        }
        Ok(c)
    }
}

/// One token batch: ids, attention mask (1 = token, 0 = padding) and token types, all `[n, L]` int64.
#[derive(Debug)]
pub struct BertInput {
    /// Token ids.
    pub input_ids: Tensor,
    /// 1 for tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// Segment ids (zeros for single sentences).
    pub token_type_ids: Tensor,
}

#[derive(Debug)]
struct Layer {
    query: Box<dyn ModuleT>,
    key: Box<dyn ModuleT>,
    value: Box<dyn ModuleT>,
    attn_out: Box<dyn ModuleT>,
    attn_norm: nn::LayerNorm,
    intermediate: Box<dyn ModuleT>,
    output: Box<dyn ModuleT>,
    out_norm: nn::LayerNorm,
}

/// The encoder.
#[derive(Debug)]
pub struct Bert {
    config: BertConfig,
    word: Box<dyn ModuleT>,
    position: Box<dyn ModuleT>,
    token_type: Box<dyn ModuleT>,
    emb_norm: nn::LayerNorm,
    layers: Vec<Layer>,
    pooler: Box<dyn ModuleT>,
}

/// The encoder's outputs.
#[derive(Debug)]
pub struct BertOutput {
    /// `[n, L, hidden]`.
    pub last_hidden_state: Tensor,
    /// `tanh(dense(h[CLS]))`, `[n, hidden]`.
    pub pooler_output: Tensor,
}

impl Bert {
    /// The encoder's layers under `p`, built through `layers`.
    pub fn new(p: &nn::Path, config: &BertConfig, layers: &dyn LayerFactory) -> Self {
        let h = config.hidden_size;
        let ln = |p: nn::Path| {
            nn::layer_norm(
                p,
                vec![h],
                nn::LayerNormConfig {
                    eps: config.layer_norm_eps,
                    ..Default::default()
                },
            )
        };
        let e = p / "embeddings";
        let layer = |i: i64| {
            let l = p / "encoder" / "layer" / i;
            let a = &l / "attention";
            Layer {
                query: layers.linear(&(&a / "self" / "query"), h, h, true),
                key: layers.linear(&(&a / "self" / "key"), h, h, true),
                value: layers.linear(&(&a / "self" / "value"), h, h, true),
                attn_out: layers.linear(&(&a / "output" / "dense"), h, h, true),
                attn_norm: ln(&a / "output" / "LayerNorm"),
                intermediate: layers.linear(
                    &(&l / "intermediate" / "dense"),
                    h,
                    config.intermediate_size,
                    true,
                ),
                output: layers.linear(
                    &(&l / "output" / "dense"),
                    config.intermediate_size,
                    h,
                    true,
                ),
                out_norm: ln(&l / "output" / "LayerNorm"),
            }
        };
        Self {
            config: config.clone(),
            word: layers.embedding(&(&e / "word_embeddings"), config.vocab_size, h),
            position: layers.embedding(
                &(&e / "position_embeddings"),
                config.max_position_embeddings,
                h,
            ),
            token_type: layers.embedding(
                &(&e / "token_type_embeddings"),
                config.type_vocab_size,
                h,
            ),
            emb_norm: ln(&e / "LayerNorm"),
            layers: (0..config.num_hidden_layers).map(layer).collect(),
            pooler: layers.linear(&(p / "pooler" / "dense"), h, h, true),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    fn act(&self, x: &Tensor) -> Tensor {
        match self.config.hidden_act.as_str() {
            "gelu" => x.gelu("none"),
            "relu" => x.relu(),
            _ => x.gelu("tanh"),
        }
    }

    /// Runs the encoder; a batch whose shapes do not fit is an error.
    pub fn forward(&self, input: &BertInput, train: bool) -> Result<BertOutput> {
        let ids = &input.input_ids;
        let size = ids.size();
        let [n, len] = size.as_slice() else {
            return Err(Error::Invalid(format!(
                "BERT input ids must be [n, L], got {size:?}"
            )));
        };
        let (n, len) = (*n, *len);
        if input.attention_mask.size() != size || input.token_type_ids.size() != size {
            return Err(Error::Invalid(format!(
                "BERT attention mask {:?} and token types {:?} must have the ids' shape {size:?}",
                input.attention_mask.size(),
                input.token_type_ids.size()
            )));
        }
        if len > self.config.max_position_embeddings {
            return Err(Error::Invalid(format!(
                "BERT input of {len} tokens exceeds max_position_embeddings {}",
                self.config.max_position_embeddings
            )));
        }
        let check_range = |t: &Tensor, hi: i64, what: &str| -> Result<()> {
            if t.numel() > 0 && (t.min().int64_value(&[]) < 0 || t.max().int64_value(&[]) >= hi) {
                return Err(Error::Invalid(format!("BERT {what} must lie in 0..{hi}")));
            }
            Ok(())
        };
        check_range(ids, self.config.vocab_size, "token ids")?;
        check_range(
            &input.token_type_ids,
            self.config.type_vocab_size,
            "token types",
        )?;
        let positions = Tensor::arange(len, (Kind::Int64, ids.device()))
            .unsqueeze(0)
            .expand([n, len], false);
        let h = self.word.forward_t(ids, train)
            + self.position.forward_t(&positions, train)
            + self.token_type.forward_t(&input.token_type_ids, train);
        let mut h = h
            .apply(&self.emb_norm)
            .dropout(self.config.hidden_dropout_prob, train);
        // Additive mask over keys: 0 for tokens, the dtype's minimum for padding.
        let keep = input
            .attention_mask
            .to_kind(Kind::Float)
            .view([n, 1, 1, len]);
        let mask = (1.0 - keep) * f64::from(f32::MIN);
        let heads = self.config.num_attention_heads;
        let d = self.config.hidden_size / heads;
        let split = |t: Tensor| t.view([n, len, heads, d]).transpose(1, 2);
        for l in &self.layers {
            let q = split(l.query.forward_t(&h, train));
            let k = split(l.key.forward_t(&h, train));
            let v = split(l.value.forward_t(&h, train));
            // libtorch's fused attention (as transformers' default `sdpa`),
            // the additive key mask broadcast over heads and queries.
            let p = if train {
                self.config.attention_probs_dropout_prob
            } else {
                0.0
            };
            let probs_v = Tensor::f_scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(&mask),
                p,
                false,
                1.0 / (d as f64).sqrt(),
                false,
            )?;
            let ctx = probs_v
                .transpose(1, 2)
                .contiguous()
                .view([n, len, heads * d]);
            let a = l
                .attn_out
                .forward_t(&ctx, train)
                .dropout(self.config.hidden_dropout_prob, train);
            let a = (a + &h).apply(&l.attn_norm);
            let f = self.act(&l.intermediate.forward_t(&a, train));
            let f = l
                .output
                .forward_t(&f, train)
                .dropout(self.config.hidden_dropout_prob, train);
            h = (f + a).apply(&l.out_norm);
        }
        let pooler_output = self.pooler.forward_t(&h.select(1, 0), train).tanh();
        Ok(BertOutput {
            last_hidden_state: h,
            pooler_output,
        })
    }
}

/// Mean of the token states under the attention mask, L2-normalised:
/// sentence-transformers' sentence embedding (`[n, hidden]`).
pub fn mean_pool(last_hidden_state: &Tensor, attention_mask: &Tensor) -> Tensor {
    let m = attention_mask.to_kind(Kind::Float).unsqueeze(-1);
    let sum = (last_hidden_state * &m).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let count = m
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        .clamp_min(1e-9);
    let mean = sum / count;
    let norm = mean
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(1e-12);
    mean / norm
}

/// BERT under `bert.` with dropout and a `classifier` on the pooled output,
/// as transformers' `BertForSequenceClassification`.
#[derive(Debug)]
pub struct BertForSequenceClassification {
    /// The encoder.
    pub bert: Bert,
    classifier: Box<dyn ModuleT>,
    dropout: f64,
}

impl BertForSequenceClassification {
    /// The model under `p` (`p / "bert"`, `p / "classifier"`) with `labels` outputs.
    pub fn new(p: &nn::Path, config: &BertConfig, labels: i64, layers: &dyn LayerFactory) -> Self {
        Self {
            bert: Bert::new(&(p / "bert"), config, layers),
            classifier: layers.linear(&(p / "classifier"), config.hidden_size, labels, true),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// The model with `labels` outputs on the checkpoint directory `dir`
    /// (`config.json`, `model.safetensors`): the encoder loaded, the
    /// classifier new unless the checkpoint has one.
    pub fn from_pretrained(
        vs: &nn::VarStore,
        dir: &std::path::Path,
        labels: i64,
        layers: &dyn LayerFactory,
    ) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        let config = BertConfig::from_json(&text, &path.display().to_string())?;
        let model = Self::new(&vs.root(), &config, labels, layers);
        let missing = load_bert_weights(vs, dir)?;
        if let Some(m) = missing.iter().find(|m| !m.starts_with("classifier.")) {
            return Err(Error::Invalid(format!(
                "{}: the checkpoint has no `{m}` (is it a BERT model?)",
                dir.display()
            )));
        }
        Ok(model)
    }

    /// Logits `[n, labels]`.
    pub fn forward(&self, input: &BertInput, train: bool) -> Result<Tensor> {
        let out = self.bert.forward(input, train)?;
        Ok(self
            .classifier
            .forward_t(&out.pooler_output.dropout(self.dropout, train), train))
    }
}

/// Loads a transformers BERT checkpoint (a `model.safetensors` file or a
/// directory, sharded or not) into `vs`, resolving the `bert.` prefix
/// either way (all-MiniLM-L6-v2's keys have none; a sequence classifier's
/// have it). Shapes are checked, naming the tensor and file. Returns the
/// variables the checkpoint does not hold (e.g. a new `classifier`);
/// checkpoint tensors no variable takes are ignored (`position_ids`).
pub fn load_bert_weights(vs: &nn::VarStore, path: &std::path::Path) -> Result<Vec<String>> {
    let ckpt = graft_tensor::safetensors::Checkpoint::open(path)?;
    let mut missing = Vec::new();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        let candidates = [
            name.clone(),
            name.strip_prefix("bert.").unwrap_or(&name).to_string(),
            format!("bert.{name}"),
        ];
        let Some(key) = candidates.iter().find(|k| ckpt.contains(k)) else {
            missing.push(name);
            continue;
        };
        let shape: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
        let t = ckpt.tensor_checked(key, var.kind(), &shape)?;
        graft_tensor::tch::no_grad(|| var.copy_(&t));
    }
    Ok(missing)
}
