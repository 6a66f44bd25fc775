//! One input of the `unlearn_files` target: the bytes as a file given to
//! `graft unlearn ssd`, read both as a model (`files::load_model`: the
//! `graft.model` metadata is checked against the file before anything is
//! built) and as samples (`files::load_samples` for a model taking 4
//! features and 3 classes). For an accepted model, a forward pass on a zero
//! input of its shape; for accepted samples, their shape and labels, and a
//! set minus itself is empty.
//!
//! Shared by the fuzz target and `crates/graft-unlearn/tests/fuzz_replay.rs`.

use graft_tensor::tch::nn::ModuleT;
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_unlearn::files::{input_shape, load_model, load_samples, subtract};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether the input was accepted as a model or as samples.
pub fn unlearn_files(data: &[u8]) -> bool {
    let dir = std::env::temp_dir().join(format!("graft-fuzz-unlearn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join(format!(
        "input-{}.safetensors",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, data).expect("the input written");
    let model = load_model(&path);
    if let Ok(m) = &model {
        let (shape, classes) = input_shape(&m.config);
        let mut dims = vec![1i64];
        dims.extend(shape);
        let logits = m.model.forward_t(
            &Tensor::zeros(dims.as_slice(), (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(logits.size(), [1, classes], "logits of a loaded model");
    }
    let samples = load_samples(&path, &[4], 3);
    if let Ok(d) = &samples {
        assert_eq!(d.inputs.size()[1..].iter().product::<i64>(), 4);
        if !d.is_empty() {
            let (lo, hi) = (
                d.labels.min().int64_value(&[]),
                d.labels.max().int64_value(&[]),
            );
            assert!(lo >= 0 && hi < 3, "labels {lo}..={hi} accepted");
        }
        assert!(subtract(d, d).expect("a set minus itself").is_empty());
    }
    let _ = std::fs::remove_file(&path);
    model.is_ok() || samples.is_ok()
}
