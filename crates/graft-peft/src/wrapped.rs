//! One base layer with its adapters (spec `peft.md` §0): named adapters,
//! an ordered active list, a LIFO stack of merges, a disabled flag, and the
//! trainable copies of `modules_to_save`.
//!
//! Merges write into the model's own weight tensors. With `exact` merges,
//! the entries whose unmerge would not give back the weight's old bits
//! (about one in ten in float32, spec §7) are kept, with their old values,
//! so that `unmerge` restores the weight bit for bit.

use crate::adapter::{Adapter, Merged};
use crate::layer::BaseLayer;
use crate::{Error, Result};
use graft_tensor::tch::{Kind, Tensor};
use std::collections::BTreeMap;

/// Old values of the entries a plain unmerge would not restore exactly.
#[derive(Debug)]
struct Fixups {
    index: Tensor,
    values: Tensor,
}

/// One merge on the stack and how to undo it.
#[derive(Debug)]
struct MergeRecord {
    adapter: String,
    undo: Undo,
}

/// How a merge is undone.
#[derive(Debug)]
enum Undo {
    /// The adapter's inverse (with its cache), then the fix-ups of exact mode.
    Inverse {
        cache: Option<Tensor>,
        weight_fix: Option<Fixups>,
        bias_fix: Option<Fixups>,
    },
    /// The old weights, whole (a `modules_to_save` copy replaced them).
    Restore {
        weight: Tensor,
        bias: Option<Tensor>,
    },
}

/// A base layer wrapped with adapters.
#[derive(Debug)]
pub struct AdaptedLayer {
    /// Its path in the model (`blocks.0.fc`).
    pub name: String,
    /// The frozen layer.
    pub base: BaseLayer,
    adapters: BTreeMap<String, Box<dyn Adapter>>,
    copies: BTreeMap<String, BaseLayer>,
    active: Vec<String>,
    merged: Vec<MergeRecord>,
    disabled: bool,
}

/// The bits of a float tensor as integers of the same width, to compare
/// values exactly (−0 ≠ +0, NaN payloads kept).
fn bits(t: &Tensor) -> Result<Tensor> {
    let kind = match t.kind() {
        Kind::Double => Kind::Int64,
        Kind::Half | Kind::BFloat16 => Kind::Int16,
        _ => Kind::Int,
    };
    Ok(t.f_contiguous()?.f_view_dtype(kind)?)
}

/// Writes `value` into the model's tensor `dst` without recording a gradient.
fn write(dst: &Tensor, value: &Tensor) -> Result<()> {
    let mut d = dst.shallow_clone();
    graft_tensor::tch::no_grad(|| d.f_copy_(value))?;
    Ok(())
}

impl AdaptedLayer {
    /// `base`, at `name`, with no adapters.
    pub fn new(name: impl Into<String>, base: BaseLayer) -> Self {
        Self {
            name: name.into(),
            base,
            adapters: BTreeMap::new(),
            copies: BTreeMap::new(),
            active: Vec::new(),
            merged: Vec::new(),
            disabled: false,
        }
    }

    /// `e`, naming this layer where it names none.
    pub(crate) fn named(&self, e: Error) -> Error {
        match e {
            Error::Unsupported { layer, what } if layer.is_empty() => Error::Unsupported {
                layer: self.name.clone(),
                what,
            },
            other => other,
        }
    }

    /// Adds adapter `name` (it becomes active when the model's active list names it).
    pub fn add_adapter(&mut self, name: &str, adapter: Box<dyn Adapter>) {
        self.adapters.insert(name.into(), adapter);
    }

    /// Adds a trainable copy of the whole layer for adapter `name` (`modules_to_save`).
    pub fn add_copy(&mut self, name: &str) -> Result<()> {
        let copy =
            |t: &Tensor| -> Result<Tensor> { Ok(t.f_detach()?.copy().set_requires_grad(true)) };
        self.copies.insert(
            name.into(),
            BaseLayer {
                kind: self.base.kind,
                conv: self.base.conv,
                weight: copy(&self.base.weight)?,
                bias: self.base.bias.as_ref().map(copy).transpose()?,
            },
        );
        Ok(())
    }

    /// Removes adapter `name` (and its copy); refuses while it is merged.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        if self.merged.iter().any(|m| m.adapter == name) {
            return Err(Error::AlreadyMerged {
                layer: self.name.clone(),
                adapter: name.into(),
            });
        }
        self.adapters.remove(name);
        self.copies.remove(name);
        self.active.retain(|a| a != name);
        Ok(())
    }

    /// The adapter `name` on this layer, if any.
    pub fn adapter(&self, name: &str) -> Option<&dyn Adapter> {
        self.adapters.get(name).map(|b| b.as_ref())
    }

    /// The adapter `name` on this layer, mutably.
    pub fn adapter_mut(&mut self, name: &str) -> Option<&mut Box<dyn Adapter>> {
        self.adapters.get_mut(name)
    }

    /// The copy of adapter `name` (`modules_to_save`), if any.
    pub fn copy(&self, name: &str) -> Option<&BaseLayer> {
        self.copies.get(name)
    }

    /// Whether adapter `name` lives on this layer (as an adapter or a copy).
    pub fn has(&self, name: &str) -> bool {
        self.adapters.contains_key(name) || self.copies.contains_key(name)
    }

    /// Sets the active adapters (those of `names` that live here, in order).
    pub fn set_active(&mut self, names: &[String]) {
        self.active = names.iter().filter(|n| self.has(n)).cloned().collect();
    }

    /// Disables (or re-enables) the adapters; disabling undoes every merge first.
    pub fn set_disabled(&mut self, disabled: bool) -> Result<()> {
        if disabled {
            self.unmerge_all()?;
        }
        self.disabled = disabled;
        Ok(())
    }

    /// The adapters merged into the weights, oldest first.
    pub fn merged(&self) -> Vec<&str> {
        self.merged.iter().map(|m| m.adapter.as_str()).collect()
    }

    /// The layer's output: the base's when disabled or merged (or nothing is
    /// active), an active copy's for `modules_to_save`, else the base's plus
    /// every active adapter's term.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.disabled {
            return self.base.forward(x);
        }
        if let Some(copy) = self.active.iter().find_map(|a| self.copies.get(a)) {
            return copy.forward(x);
        }
        let mut out = self.base.forward(x)?;
        if !self.merged.is_empty() {
            return Ok(out);
        }
        for name in &self.active {
            if let Some(a) = self.adapters.get(name) {
                let term = a.output(&self.base, x, train).map_err(|e| self.named(e))?;
                out = out.f_add(&term.to_kind(out.kind()))?;
            }
        }
        Ok(out)
    }

    /// The output when each row of the batch names its own adapter
    /// (`__base__`: none), as PEFT's `adapter_names`: the base for every
    /// row, plus each adapter's term on its rows (a copy's output replaces
    /// them). Refused while anything is merged.
    pub fn forward_routed(&self, x: &Tensor, train: bool, names: &[String]) -> Result<Tensor> {
        if self.disabled {
            return self.base.forward(x);
        }
        if !self.merged.is_empty() {
            return Err(Error::Unsupported {
                layer: self.name.clone(),
                what: "per-sample adapter names while adapters are merged (unmerge first)".into(),
            });
        }
        let batch = x.size().first().copied().unwrap_or(0);
        if names.len() as i64 != batch {
            return Err(Error::BadInput {
                what: format!("`{}`: input {:?}", self.name, x.size()),
                reason: format!("{} adapter names for a batch of {batch}", names.len()),
            });
        }
        let mut out = self.base.forward(x)?;
        let mut seen: Vec<&String> = Vec::new();
        for n in names {
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        for n in seen {
            let rows: Vec<i64> = (0..batch).filter(|&i| &names[i as usize] == n).collect();
            let rows = Tensor::from_slice(&rows).to_device(x.device());
            let xs = x.f_index_select(0, &rows)?;
            if let Some(copy) = self.copies.get(n) {
                let y = copy.forward(&xs)?;
                out = out.f_index_copy(0, &rows, &y.to_kind(out.kind()))?;
            } else if let Some(a) = self.adapters.get(n) {
                let term = a
                    .output(&self.base, &xs, train)
                    .map_err(|e| self.named(e))?;
                out = out.f_index_add(0, &rows, &term.to_kind(out.kind()))?;
            }
        }
        Ok(out)
    }

    /// Merges `name` into the weights (a copy replaces them). `safe` refuses
    /// non-finite results and changes nothing then; `exact` keeps what
    /// `unmerge` needs to restore the old bits.
    pub fn merge(&mut self, name: &str, safe: bool, exact: bool) -> Result<()> {
        if self.merged.iter().any(|m| m.adapter == name) {
            return Err(Error::AlreadyMerged {
                layer: self.name.clone(),
                adapter: name.into(),
            });
        }
        let merged = if let Some(copy) = self.copies.get(name) {
            Merged {
                weight: copy.weight.detach(),
                bias: copy.bias.as_ref().map(Tensor::detach),
                cache: None,
            }
        } else if let Some(a) = self.adapters.get(name) {
            a.merge(&self.base).map_err(|e| self.named(e))?
        } else {
            return Ok(());
        };
        if safe {
            let finite = |t: &Tensor| -> Result<bool> {
                Ok(t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 1)
            };
            if !finite(&merged.weight)?
                || merged.bias.as_ref().map(finite).transpose()? == Some(false)
            {
                return Err(Error::NonFinite {
                    layer: self.name.clone(),
                    adapter: name.into(),
                });
            }
        }
        let old_w = exact.then(|| self.base.weight.detach().copy());
        let old_b = match (&merged.bias, &self.base.bias) {
            (Some(_), Some(b)) if exact => Some(b.detach().copy()),
            _ => None,
        };
        if self.copies.contains_key(name) {
            let undo = Undo::Restore {
                weight: self.base.weight.detach().copy(),
                bias: self.base.bias.as_ref().map(|b| b.detach().copy()),
            };
            write(&self.base.weight, &merged.weight)?;
            if let (Some(b), Some(nb)) = (&self.base.bias, &merged.bias) {
                write(b, nb)?;
            }
            self.merged.push(MergeRecord {
                adapter: name.into(),
                undo,
            });
            return Ok(());
        }
        write(&self.base.weight, &merged.weight)?;
        if let (Some(b), Some(nb)) = (&self.base.bias, &merged.bias) {
            write(b, nb)?;
        }
        let (mut weight_fix, mut bias_fix) = (None, None);
        if let Some(old_w) = old_w {
            let (back_w, back_b) = self.adapters[name]
                .unmerge(&self.base, merged.cache.as_ref())
                .map_err(|e| self.named(e))?;
            weight_fix = Some(fixups(&old_w, &back_w)?);
            if let (Some(old_b), Some(back_b)) = (old_b, back_b) {
                bias_fix = Some(fixups(&old_b, &back_b)?);
            }
        }
        self.merged.push(MergeRecord {
            adapter: name.into(),
            undo: Undo::Inverse {
                cache: merged.cache,
                weight_fix,
                bias_fix,
            },
        });
        Ok(())
    }

    /// Undoes the last merge.
    pub fn unmerge(&mut self) -> Result<()> {
        let Some(record) = self.merged.pop() else {
            return Err(Error::NotMerged {
                layer: self.name.clone(),
            });
        };
        let (cache, weight_fix, bias_fix) = match &record.undo {
            Undo::Restore { weight, bias } => {
                write(&self.base.weight, weight)?;
                if let (Some(dst), Some(b)) = (&self.base.bias, bias) {
                    write(dst, b)?;
                }
                return Ok(());
            }
            Undo::Inverse {
                cache,
                weight_fix,
                bias_fix,
            } => (cache, weight_fix, bias_fix),
        };
        let (w, b) = match self.adapters[&record.adapter].unmerge(&self.base, cache.as_ref()) {
            Ok(x) => x,
            Err(e) => {
                let e = self.named(e);
                self.merged.push(record);
                return Err(e);
            }
        };
        write(&self.base.weight, &apply(w, weight_fix.as_ref())?)?;
        if let (Some(dst), Some(b)) = (&self.base.bias, b) {
            write(dst, &apply(b, bias_fix.as_ref())?)?;
        }
        Ok(())
    }

    /// Undoes every merge, last first.
    pub fn unmerge_all(&mut self) -> Result<()> {
        while !self.merged.is_empty() {
            self.unmerge()?;
        }
        Ok(())
    }

    /// Forgets the merge records and every adapter: the layer is plain
    /// again, holding whatever its weights hold now.
    pub fn clear(&mut self) {
        self.merged.clear();
        self.adapters.clear();
        self.copies.clear();
        self.active.clear();
        self.disabled = false;
    }

    /// The names of the adapters (and copies) on this layer.
    pub fn adapter_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.adapters.keys().cloned().collect();
        names.extend(self.copies.keys().cloned());
        names
    }
}

/// The entries where `back` differs from `old` in bits, with `old`'s values.
fn fixups(old: &Tensor, back: &Tensor) -> Result<Fixups> {
    let differs = bits(old)?.f_ne_tensor(&bits(back)?)?.f_flatten(0, -1)?;
    let index = differs.f_nonzero()?.f_flatten(0, -1)?;
    let values = old.f_flatten(0, -1)?.f_index_select(0, &index)?;
    Ok(Fixups { index, values })
}

/// `t` with the fixed-up entries put back.
fn apply(t: Tensor, fix: Option<&Fixups>) -> Result<Tensor> {
    let Some(f) = fix else { return Ok(t) };
    let shape = t.size();
    let mut flat = t.f_flatten(0, -1)?.f_contiguous()?;
    let _ = flat.f_index_copy_(0, &f.index, &f.values)?;
    Ok(flat.f_view(shape.as_slice())?)
}
