//! Tokenising text for the BERT encoder with Hugging Face's `tokenizers`
//! (feature `text`; pure Rust, loads `tokenizer.json` offline).
//!
//! A `tokenizer.json` may carry its own truncation and padding (MiniLM's
//! pads every input to 128): [`Tokenizer::from_file`] replaces both with
//! truncation at `max_len` and padding to the longest input of the batch.

use crate::models::BertInput;
use crate::{Error, Result};
use graft_tensor::tch::Tensor;
use std::path::Path;
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

/// A WordPiece (or any `tokenizer.json`) tokenizer producing BERT batches.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    max_len: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`, truncating at `max_len` tokens (specials
    /// included) and padding batches to their longest input with `[PAD]`.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| {
            Error::Invalid(format!("{}: not a tokenizer.json: {e}", path.display()))
        })?;
        if max_len < 2 {
            return Err(Error::Invalid(format!(
                "max_len {max_len} leaves no room for [CLS] and [SEP]"
            )));
        }
        let pad_id = inner.token_to_id("[PAD]").unwrap_or(0);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: "[PAD]".into(),
        }));
        Ok(Self { inner, max_len })
    }

    /// The truncation length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids, attention mask and token types of `texts` as one batch.
    pub fn encode(&self, texts: &[&str]) -> Result<BertInput> {
        if texts.is_empty() {
            return Err(Error::Invalid("no text to tokenize".into()));
        }
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(Error::Other)?;
        let n = enc.len() as i64;
        let len = enc.first().map_or(0, |e| e.get_ids().len()) as i64;
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Tensor {
            let v: Vec<i64> = enc
                .iter()
                .flat_map(|e| f(e).iter().map(|&x| i64::from(x)))
                .collect();
            Tensor::from_slice(&v).view([n, len])
        };
        Ok(BertInput {
            input_ids: flat(&|e| e.get_ids()),
            attention_mask: flat(&|e| e.get_attention_mask()),
            token_type_ids: flat(&|e| e.get_type_ids()),
        })
    }
}
