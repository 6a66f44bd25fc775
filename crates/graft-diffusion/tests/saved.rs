//! Saved denoisers: what `save` writes, `load` reads back bit for bit, and
//! bad directories are errors that name the file.

use graft_diffusion::learned::{MlpDenoiser, MlpShape, TrainSpec};
use graft_diffusion::model::Model;
use graft_diffusion::param::Parameterization;
use graft_diffusion::problems::r1;
use graft_diffusion::saved::{self, ConditionSpec, ProcessSpec, SavedConfig};
use graft_tensor::tch::{Device, Kind, Tensor};

fn tiny(param: Parameterization) -> (MlpDenoiser, SavedConfig) {
    let p = r1().unwrap();
    let shape = MlpShape {
        dim: 2,
        cond_dim: 0,
        hidden: 16,
        layers: 2,
    };
    let mut net = MlpDenoiser::new(p.process.clone(), shape, param, 3);
    let data = p
        .gmm
        .sample_data(256, &mut graft_diffusion::noise::seeded_rng(1))
        .unwrap();
    let spec = TrainSpec {
        steps: 20,
        batch: 64,
        lr: 1e-3,
        t_lo: p.t_end,
        t_hi: p.t_start,
    };
    net.train(&data, None, false, spec, 2).unwrap();
    let config = SavedConfig::new(shape, param, p.process_spec.clone(), p.t_start, p.t_end);
    (net, config)
}

#[test]
fn load_after_save_gives_the_same_network_config_and_process() {
    let _rng = graft_tensor::testing::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    for param in [Parameterization::Noise, Parameterization::Velocity] {
        let (net, config) = tiny(param);
        let path = dir.path().join(format!("{param:?}"));
        saved::save(&net, &config, &path).unwrap();
        let (back, back_config) = saved::load(&path).unwrap();
        assert_eq!(back_config, config);
        assert_eq!(back.parameterization(), param);
        let x = Tensor::randn([7, 2], (Kind::Double, Device::Cpu));
        for t in [1.0, 0.3, 1e-3] {
            let (a, b) = (net.eval(&x, t).unwrap(), back.eval(&x, t).unwrap());
            assert!(graft_tensor::testing::bitwise_equal(&a, &b), "t = {t}");
        }
        let (mu, back_mu) = (net.process().mu().unwrap(), back.process().mu().unwrap());
        assert!(graft_tensor::testing::bitwise_equal(mu, back_mu));
        for t in [0.9, 0.1] {
            assert_eq!(net.process().lambda(t), back.process().lambda(t));
        }
    }
}

#[test]
fn process_specs_build_the_processes_they_name() {
    let ve = ProcessSpec::Ve {
        sigma_min: 0.002,
        sigma_max: 80.0,
    }
    .build(None)
    .unwrap();
    assert!((ve.sigma(1.0) - 80.0).abs() < 1e-9 && (ve.sigma(0.0) - 0.002).abs() < 1e-12);
    let vp = ProcessSpec::Vp.build(None).unwrap();
    assert_eq!(vp.sigma_inf(), 1.0);
    let json = serde_json::to_string(&ProcessSpec::Edm { sigma_max: 80.0 }).unwrap();
    assert_eq!(json, r#"{"kind":"edm","sigma_max":80.0}"#);
    let bad = ProcessSpec::MeanRevertingCosine {
        eps: 2.0,
        sigma_inf: 1.0,
    };
    assert!(bad.build(None).is_err(), "α_1 = 2 is not a schedule");
}

#[test]
fn bad_directories_are_errors_naming_the_file() {
    let _rng = graft_tensor::testing::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let err = saved::load(&dir.path().join("nothing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");

    let (net, config) = tiny(Parameterization::Noise);
    let path = dir.path().join("m");
    saved::save(&net, &config, &path).unwrap();
    let text = std::fs::read_to_string(path.join("config.json")).unwrap();
    std::fs::write(
        path.join("config.json"),
        text.replace("graft-mlp-denoiser", "other"),
    )
    .unwrap();
    let err = saved::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("other"),
        "{err}"
    );

    std::fs::write(path.join("config.json"), &text).unwrap();
    std::fs::write(path.join("model.safetensors"), b"not safetensors").unwrap();
    let err = saved::load(&path).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    let wrong = SavedConfig {
        shape: MlpShape {
            hidden: 32,
            ..config.shape
        },
        ..config.clone()
    };
    let err = saved::save(&net, &wrong, &dir.path().join("w"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("shape"), "{err}");
    assert!(!dir.path().join("w").exists());
}

/// A tiny conditional network on R1's process, trained a few steps with the
/// conditions as the per-sample μ (`is_process_mean`) or as a plain input.
fn tiny_conditional(cond_dim: i64, is_process_mean: bool) -> (MlpDenoiser, SavedConfig) {
    let p = r1().unwrap();
    let shape = MlpShape {
        dim: 2,
        cond_dim,
        hidden: 16,
        layers: 2,
    };
    let mut net = MlpDenoiser::new(p.process.clone(), shape, Parameterization::Noise, 5);
    let mut rng = graft_diffusion::noise::seeded_rng(4);
    let data = p.gmm.sample_data(128, &mut rng).unwrap();
    let cond = graft_diffusion::noise::normal_like(
        &mut rng,
        &Tensor::zeros([128, cond_dim], (Kind::Double, Device::Cpu)),
    )
    .unwrap();
    let spec = TrainSpec {
        steps: 20,
        batch: 32,
        lr: 1e-3,
        t_lo: p.t_end,
        t_hi: p.t_start,
    };
    net.train(&data, Some(&cond), is_process_mean, spec, 6)
        .unwrap();
    let config = SavedConfig::new(
        shape,
        Parameterization::Noise,
        p.process_spec.clone(),
        p.t_start,
        p.t_end,
    )
    .with_condition(ConditionSpec {
        dim: cond_dim,
        is_process_mean,
    });
    (net, config)
}

#[test]
fn a_conditional_network_round_trips_with_its_condition() {
    let _rng = graft_tensor::testing::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (mut net, config) = tiny_conditional(2, true);
    let path = dir.path().join("cond");
    saved::save(&net, &config, &path).unwrap();
    let json = std::fs::read_to_string(path.join("config.json")).unwrap();
    assert!(
        json.contains("\"condition\"") && json.contains("\"is_process_mean\": true"),
        "{json}"
    );
    // The process mean is per-sample data: not stored with the network.
    let ckpt = graft_tensor::safetensors::Checkpoint::open(path.join("model.safetensors")).unwrap();
    assert!(!ckpt.contains(saved::MU_TENSOR));

    let (mut back, back_config) = saved::load(&path).unwrap();
    assert_eq!(back_config, config);
    assert!(back.process().mu().is_none(), "μ is bound per sample");
    let c = Tensor::from_slice(&[0.3, -1.0, 2.0, 0.5, -0.7, 0.1]).reshape([3, 2]);
    let rows = saved::bind_condition(&mut back, &back_config, &c, 3).unwrap();
    assert!(graft_tensor::testing::bitwise_equal(&rows, &c));
    assert!(graft_tensor::testing::bitwise_equal(
        back.process().mu().unwrap(),
        &c
    ));
    net.set_condition(Some(c.to_kind(Kind::Float)));
    let x = Tensor::randn([3, 2], (Kind::Float, Device::Cpu));
    for t in [1.0, 0.3, 1e-3] {
        let (a, b) = (net.eval(&x, t).unwrap(), back.eval(&x, t).unwrap());
        assert!(graft_tensor::testing::bitwise_equal(&a, &b), "t = {t}");
    }
    for t in [0.9, 0.1] {
        assert_eq!(back.process().lambda(t), net.process().lambda(t));
    }

    // A [dim] condition is repeated for every sample.
    let one = Tensor::from_slice(&[1.5, -0.25]);
    let rows = saved::bind_condition(&mut back, &back_config, &one, 4).unwrap();
    assert_eq!(rows.size(), [4, 2]);
    for i in 0..4 {
        assert!(graft_tensor::testing::bitwise_equal(&rows.get(i), &one));
    }
    assert_eq!(
        back.eval(&x.narrow(0, 0, 1).repeat([4, 1]), 0.5)
            .unwrap()
            .size(),
        [4, 2]
    );

    // A condition that is not the process mean keeps the saved μ.
    let (net3, config3) = tiny_conditional(3, false);
    let path3 = dir.path().join("cond3");
    saved::save(&net3, &config3, &path3).unwrap();
    let (mut back3, back_config3) = saved::load(&path3).unwrap();
    let c3 = Tensor::ones([5, 3], (Kind::Double, Device::Cpu));
    let _ = saved::bind_condition(&mut back3, &back_config3, &c3, 5).unwrap();
    assert!(graft_tensor::testing::bitwise_equal(
        back3.process().mu().unwrap(),
        net3.process().mu().unwrap()
    ));
}

#[test]
fn files_without_a_condition_field_still_load_as_unconditional() {
    let text = r#"{"format": "graft-mlp-denoiser", "version": 1,
        "shape": {"dim": 2, "cond_dim": 0, "hidden": 128, "layers": 3},
        "parameterization": "noise",
        "process": {"kind": "mean_reverting_cosine", "eps": 0.005, "sigma_inf": 1.0},
        "t_start": 1.0, "t_end": 0.001, "lambda_min": null}"#;
    let config: SavedConfig = serde_json::from_str(text).unwrap();
    assert_eq!(config.condition, None);
    assert!(!config.condition_is_process_mean());
    // And an unconditional configuration is written without the field.
    assert!(
        !serde_json::to_string(&config)
            .unwrap()
            .contains("condition")
    );
}

#[test]
fn conditional_configurations_and_conditions_are_checked() {
    let _rng = graft_tensor::testing::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (net, config) = tiny_conditional(2, true);
    let err = |c: &SavedConfig, name: &str| {
        let e = saved::save(&net, c, &dir.path().join(name))
            .unwrap_err()
            .to_string();
        assert!(!dir.path().join(name).exists(), "{name} written");
        e
    };
    // A conditional network must say how its condition is used.
    let e = err(
        &SavedConfig {
            condition: None,
            ..config.clone()
        },
        "none",
    );
    assert!(
        e.contains("conditional") && e.contains("with_condition"),
        "{e}"
    );
    // The condition's dimension is the shape's.
    let e = err(
        &config.clone().with_condition(ConditionSpec {
            dim: 3,
            is_process_mean: true,
        }),
        "dim",
    );
    assert!(e.contains("dimension 3") && e.contains("cond_dim 2"), "{e}");
    // A process mean needs a mean-reverting process.
    let e = err(
        &SavedConfig {
            process: ProcessSpec::Edm { sigma_max: 80.0 },
            ..config.clone()
        },
        "edm",
    );
    assert!(e.contains("mean-reverting"), "{e}");

    // An edited config.json is refused on load, naming the file.
    let path = dir.path().join("ok");
    saved::save(&net, &config, &path).unwrap();
    let text = std::fs::read_to_string(path.join("config.json")).unwrap();
    std::fs::write(
        path.join("config.json"),
        text.replace(
            "\"dim\": 2,\n    \"is_process_mean\"",
            "\"dim\": 5,\n    \"is_process_mean\"",
        ),
    )
    .unwrap();
    let e = saved::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("config.json") && e.contains("dimension 5"),
        "{e}"
    );
    std::fs::write(path.join("config.json"), &text).unwrap();

    // Conditions of the wrong shape, row count or kind of network.
    let (mut back, back_config) = saved::load(&path).unwrap();
    let bad = Tensor::zeros([4, 3], (Kind::Double, Device::Cpu));
    let e = saved::bind_condition(&mut back, &back_config, &bad, 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[4, 3]") && e.contains("[n, 2]"), "{e}");
    let rows5 = Tensor::zeros([5, 2], (Kind::Double, Device::Cpu));
    let e = saved::bind_condition(&mut back, &back_config, &rows5, 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 rows") && e.contains("4 samples"), "{e}");
    let nan = Tensor::from_slice(&[f64::NAN, 0.0]);
    assert!(saved::bind_condition(&mut back, &back_config, &nan, 2).is_err());
    let (mut plain, plain_config) = tiny(Parameterization::Noise);
    let e = saved::bind_condition(&mut plain, &plain_config, &rows5, 5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unconditional"), "{e}");
    // A conditional network evaluated without a condition, or with one of
    // the wrong size, is an error rather than a crash.
    let (mut fresh, _) = saved::load(&path).unwrap();
    let x = Tensor::zeros([3, 2], (Kind::Float, Device::Cpu));
    assert!(fresh.eval(&x, 0.5).is_err());
    fresh.set_condition(Some(Tensor::zeros([2, 2], (Kind::Float, Device::Cpu))));
    let e = fresh.eval(&x, 0.5).unwrap_err().to_string();
    assert!(e.contains("condition"), "{e}");
}
