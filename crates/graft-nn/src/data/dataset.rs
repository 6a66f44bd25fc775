//! A labelled data set held as two tensors, with seeded shuffles, splits and batches.

use crate::{Error, Result};
use graft_tensor::seed::derive_seed;
use graft_tensor::tch::{Device, Kind, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Inputs `[n, ...]` (float) and integer labels `[n]` in `0..num_classes`.
///
/// Shuffles and splits use graft's own seeded RNG (not libtorch's global
/// one), so they depend on the seed alone.
#[derive(Debug)]
pub struct Dataset {
    /// Inputs, first dimension the examples.
    pub inputs: Tensor,
    /// Labels, `Int64`, one per example.
    pub labels: Tensor,
    /// Number of classes.
    pub num_classes: i64,
    /// A short name for logs and reports.
    pub name: String,
}

/// Train, validation and test parts of a data set.
#[derive(Debug)]
pub struct Splits {
    /// For fitting.
    pub train: Dataset,
    /// For choosing hyper-parameters and early stopping.
    pub val: Dataset,
    /// For the reported numbers only.
    pub test: Dataset,
}

impl Clone for Dataset {
    fn clone(&self) -> Self {
        Self {
            inputs: self.inputs.shallow_clone(),
            labels: self.labels.shallow_clone(),
            num_classes: self.num_classes,
            name: self.name.clone(),
        }
    }
}

impl Dataset {
    /// Checks shapes and label range and builds the data set.
    pub fn new(
        inputs: Tensor,
        labels: Tensor,
        num_classes: i64,
        name: impl Into<String>,
    ) -> Result<Self> {
        let name = name.into();
        let n = inputs.size().first().copied().unwrap_or(0);
        if labels.size() != [n] {
            return Err(Error::Invalid(format!(
                "data set `{name}`: {n} inputs but labels of shape {:?}",
                labels.size()
            )));
        }
        let labels = labels.f_to_kind(Kind::Int64)?;
        if n > 0 {
            let (lo, hi) = (
                labels.f_min()?.int64_value(&[]),
                labels.f_max()?.int64_value(&[]),
            );
            if lo < 0 || hi >= num_classes {
                return Err(Error::Invalid(format!(
                    "data set `{name}`: labels span {lo}..={hi}, outside 0..{num_classes}"
                )));
            }
        }
        Ok(Self {
            inputs,
            labels,
            num_classes,
            name,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of one input.
    pub fn input_shape(&self) -> Vec<i64> {
        self.inputs.size()[1..].to_vec()
    }

    /// The examples at `indices`, in that order.
    pub fn select(&self, indices: &[i64]) -> Result<Self> {
        let idx = Tensor::from_slice(indices).f_to_device(self.inputs.device())?;
        Ok(Self {
            inputs: self.inputs.f_index_select(0, &idx)?,
            labels: self.labels.f_index_select(0, &idx)?,
            num_classes: self.num_classes,
            name: self.name.clone(),
        })
    }

    /// `self` followed by `other` (same input shape and classes), named `name`.
    pub fn concat(&self, other: &Dataset, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if self.input_shape() != other.input_shape() || self.num_classes != other.num_classes {
            return Err(Error::Invalid(format!(
                "cannot join `{}` (inputs {:?}, {} classes) and `{}` (inputs {:?}, {} classes) into `{name}`",
                self.name,
                self.input_shape(),
                self.num_classes,
                other.name,
                other.input_shape(),
                other.num_classes
            )));
        }
        Ok(Self {
            inputs: Tensor::f_cat(&[&self.inputs, &other.inputs], 0)?,
            labels: Tensor::f_cat(&[&self.labels, &other.labels], 0)?,
            num_classes: self.num_classes,
            name,
        })
    }

    /// The same examples with other labels (same length, in `0..num_classes`).
    pub fn relabelled(&self, labels: Tensor) -> Result<Self> {
        Self::new(
            self.inputs.shallow_clone(),
            labels,
            self.num_classes,
            self.name.clone(),
        )
    }

    /// A seeded permutation of `0..len`.
    pub fn permutation(&self, seed: u64) -> Vec<i64> {
        let mut idx: Vec<i64> = (0..self.len() as i64).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        idx
    }

    /// The examples in a seeded random order.
    pub fn shuffled(&self, seed: u64) -> Result<Self> {
        self.select(&self.permutation(seed))
    }

    /// The examples whose label is in `classes`, labels unchanged.
    pub fn with_classes(&self, classes: &[i64]) -> Result<Self> {
        let labels: Vec<i64> = Vec::<i64>::try_from(&self.labels.to_device(Device::Cpu))?;
        let keep: Vec<i64> = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| classes.contains(l))
            .map(|(i, _)| i as i64)
            .collect();
        self.select(&keep)
    }

    /// Splits into train / val / test with the given fractions (test gets the
    /// rest), stratified: each class is shuffled with the seed and cut in the
    /// same proportions, so every part keeps the class balance.
    pub fn split(&self, train: f64, val: f64, seed: u64) -> Result<Splits> {
        let [tr, va, te] = self.split_indices(train, val, seed)?;
        Ok(Splits {
            train: self.select(&tr)?,
            val: self.select(&va)?,
            test: self.select(&te)?,
        })
    }

    /// The indices [`Dataset::split`] puts into train, validation and test
    /// (save them to make a split reproducible outside graft).
    pub fn split_indices(&self, train: f64, val: f64, seed: u64) -> Result<[Vec<i64>; 3]> {
        if !(0.0..=1.0).contains(&train) || !(0.0..=1.0).contains(&val) || train + val > 1.0 {
            return Err(Error::Invalid(format!(
                "split fractions train={train}, val={val} must be in [0, 1] and sum to at most 1"
            )));
        }
        let labels: Vec<i64> = Vec::<i64>::try_from(&self.labels.to_device(Device::Cpu))?;
        let (mut tr, mut va, mut te) = (Vec::new(), Vec::new(), Vec::new());
        for class in 0..self.num_classes {
            let mut members: Vec<i64> = labels
                .iter()
                .enumerate()
                .filter(|&(_, &l)| l == class)
                .map(|(i, _)| i as i64)
                .collect();
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &format!("split/{class}")));
            members.shuffle(&mut rng);
            let n = members.len();
            let n_tr = (n as f64 * train).round() as usize;
            let n_va = ((n as f64 * val).round() as usize).min(n - n_tr);
            tr.extend_from_slice(&members[..n_tr]);
            va.extend_from_slice(&members[n_tr..n_tr + n_va]);
            te.extend_from_slice(&members[n_tr + n_va..]);
        }
        // Interleave classes: one seeded shuffle of each part.
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "split/order"));
        for part in [&mut tr, &mut va, &mut te] {
            part.shuffle(&mut rng);
        }
        Ok([tr, va, te])
    }

    /// Copies the data set to `device`.
    pub fn to_device(&self, device: Device) -> Result<Self> {
        Ok(Self {
            inputs: self.inputs.f_to_device(device)?,
            labels: self.labels.f_to_device(device)?,
            num_classes: self.num_classes,
            name: self.name.clone(),
        })
    }

    /// Mini-batches of `batch_size` (the last may be smaller), in order or
    /// shuffled with `shuffle_seed`.
    pub fn batches(&self, batch_size: usize, shuffle_seed: Option<u64>) -> Result<Batches> {
        if batch_size == 0 {
            return Err(Error::Invalid("batch size must be positive".into()));
        }
        let order = match shuffle_seed {
            Some(seed) => Some(
                Tensor::from_slice(&self.permutation(seed)).f_to_device(self.inputs.device())?,
            ),
            None => None,
        };
        Ok(Batches {
            inputs: self.inputs.shallow_clone(),
            labels: self.labels.shallow_clone(),
            order,
            batch_size: batch_size as i64,
            next: 0,
            len: self.len() as i64,
        })
    }

    /// Number of batches of `batch_size`.
    pub fn batch_count(&self, batch_size: usize) -> usize {
        self.len().div_ceil(batch_size.max(1))
    }
}

/// Iterator over `(inputs, labels)` mini-batches; see [`Dataset::batches`].
pub struct Batches {
    inputs: Tensor,
    labels: Tensor,
    order: Option<Tensor>,
    batch_size: i64,
    next: i64,
    len: i64,
}

impl Iterator for Batches {
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.len {
            return None;
        }
        let size = self.batch_size.min(self.len - self.next);
        let batch = match &self.order {
            Some(order) => {
                let idx = order.narrow(0, self.next, size);
                (
                    self.inputs.index_select(0, &idx),
                    self.labels.index_select(0, &idx),
                )
            }
            None => (
                self.inputs.narrow(0, self.next, size),
                self.labels.narrow(0, self.next, size),
            ),
        };
        self.next += size;
        Some(batch)
    }
}
