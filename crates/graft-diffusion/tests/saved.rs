//! Saved denoisers: what `save` writes, `load` reads back bit for bit, and
//! bad directories are errors that name the file.

use graft_diffusion::experiments::problems::r1;
use graft_diffusion::learned::{MlpDenoiser, MlpShape, TrainSpec};
use graft_diffusion::model::Model;
use graft_diffusion::param::Parameterization;
use graft_diffusion::saved::{self, ProcessSpec, SavedConfig};
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
