//! Training is reproducible from its seed, and the baselines reach their accuracy.

use graft_nn::data::digits;
use graft_nn::experiments::baselines::{load_split, train_model};
use graft_nn::models::{ModelConfig, build, varstore_tensors};
use graft_nn::train::{TrainConfig, evaluate, train_classifier};
use graft_tensor::seed::seed_everything;
use graft_tensor::tch::{Device, nn::VarStore};
use graft_tensor::testing::{bitwise_equal, rng_lock};

fn train_once(seed: u64) -> (Vec<(String, graft_tensor::tch::Tensor)>, Vec<f64>) {
    let splits = digits().unwrap().split(0.7, 0.15, seed).unwrap();
    seed_everything(seed);
    let vs = VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &ModelConfig::mlp_8x8(10)).unwrap();
    let cfg = TrainConfig {
        epochs: 2,
        seed,
        ..TrainConfig::default()
    };
    let report = train_classifier(&model, &vs, &splits.train, Some(&splits.val), &cfg).unwrap();
    let losses = report.epochs.iter().map(|e| e.train_loss).collect();
    (varstore_tensors(&vs), losses)
}

#[test]
fn same_seed_gives_the_same_training_run_bit_for_bit() {
    let _rng = rng_lock();
    let (w1, l1) = train_once(5);
    let (w2, l2) = train_once(5);
    assert_eq!(l1, l2);
    assert_eq!(w1.len(), w2.len());
    for ((n1, t1), (n2, t2)) in w1.iter().zip(&w2) {
        assert_eq!(n1, n2);
        assert!(
            bitwise_equal(t1, t2),
            "{n1} differs between two runs with one seed"
        );
    }
    let (w3, _) = train_once(6);
    assert!(
        w1.iter()
            .zip(&w3)
            .any(|((_, a), (_, b))| !bitwise_equal(a, b)),
        "another seed must change the weights"
    );
}

#[test]
fn digits_cnn_reaches_97_percent() {
    let _rng = rng_lock();
    let splits = load_split("digits", 0).unwrap();
    let trained = train_model(
        &ModelConfig::cnn_8x8(10),
        &splits.train,
        &splits.val,
        &splits.test,
        20,
        0,
    )
    .unwrap();
    assert!(
        trained.test_accuracy >= 0.97,
        "digits CNN test accuracy {}",
        trained.test_accuracy
    );
    // evaluate() agrees with a direct count.
    let m = evaluate(&trained.model, &splits.test, 7).unwrap();
    assert!((m.accuracy - trained.test_accuracy).abs() < 1e-12);
    assert_eq!(m.n, splits.test.len());
}

#[test]
fn bad_training_configs_are_refused() {
    let splits = digits().unwrap().split(0.7, 0.15, 0).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = build(&vs.root(), &ModelConfig::mlp_8x8(10)).unwrap();
    for cfg in [
        TrainConfig {
            epochs: 0,
            ..TrainConfig::default()
        },
        TrainConfig {
            batch_size: 0,
            ..TrainConfig::default()
        },
        TrainConfig {
            lr: f64::NAN,
            ..TrainConfig::default()
        },
    ] {
        assert!(train_classifier(&model, &vs, &splits.train, None, &cfg).is_err());
    }
    let diverging = TrainConfig {
        epochs: 1,
        lr: 1e12,
        ..TrainConfig::default()
    };
    let err = train_classifier(&model, &vs, &splits.train, None, &diverging);
    assert!(
        err.is_err(),
        "a learning rate of 1e12 must be reported as divergence"
    );
}
