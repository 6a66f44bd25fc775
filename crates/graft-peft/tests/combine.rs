//! Weighted combinations of adapters (spec `peft.md` §1.7) against the
//! weighted sum of their outputs, and mixed batches (per-sample adapters)
//! against running each row alone.

use graft_nn::layers::LayerFactory;
use graft_peft::{Combination, Layers, LoraConfig, PeftModel};
use graft_tensor::tch::{Device, Kind, Tensor, nn, nn::ModuleT};
use graft_tensor::testing::rng_lock;

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).abs().max().double_value(&[]);
    d / b.abs().max().double_value(&[]).max(1e-6)
}

struct Net {
    vs: nn::VarStore,
    layers: Layers,
    fc: Box<dyn ModuleT>,
    conv: Box<dyn ModuleT>,
    emb: Box<dyn ModuleT>,
}

fn net() -> Net {
    graft_tensor::tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let layers = Layers::new();
    let fc = layers.linear(&(vs.root() / "fc"), 6, 5, true);
    let c = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let conv = layers.conv2d(&(vs.root() / "conv"), 2, 3, 3, c);
    let emb = layers.embedding(&(vs.root() / "emb"), 9, 4);
    Net {
        vs,
        layers,
        fc,
        conv,
        emb,
    }
}

fn randomise(peft: &PeftModel, name: &str) {
    for (_, mut t) in peft.tensors(name).unwrap() {
        let v = Tensor::randn(t.size(), (Kind::Float, Device::Cpu));
        graft_tensor::tch::no_grad(|| {
            t.copy_(&v);
        });
    }
}

/// `(fc, conv, emb)` outputs for fixed inputs.
fn outputs(n: &Net) -> [Tensor; 3] {
    graft_tensor::tch::manual_seed(3);
    let x = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
    let c = Tensor::randn([2, 2, 5, 5], (Kind::Float, Device::Cpu));
    let i = Tensor::from_slice(&[0i64, 3, 8, 1]).view([2, 2]);
    [
        n.fc.forward_t(&x, false),
        n.conv.forward_t(&c, false),
        n.emb.forward_t(&i, false),
    ]
}

#[test]
fn cat_is_exactly_the_weighted_sum_and_svd_at_full_rank_too() {
    let _g = rng_lock();
    let mut n = net();
    let mut peft = PeftModel::new(&mut n.vs, &n.layers);
    let targets = ["fc", "conv", "emb"];
    peft.add_adapter("a", LoraConfig::new(2, 4.0, &targets))
        .unwrap();
    let mut b = LoraConfig::new(3, 2.0, &targets);
    b.use_rslora = true;
    peft.add_adapter("b", b).unwrap();
    randomise(&peft, "a");
    randomise(&peft, "b");
    let base = peft.with_adapters_disabled(|| outputs(&n)).unwrap();
    peft.set_adapter(&["a"]).unwrap();
    let oa = outputs(&n);
    peft.set_adapter(&["b"]).unwrap();
    let ob = outputs(&n);
    let (wa, wb) = (0.7, -1.3);
    let want: Vec<Tensor> = (0..3)
        .map(|k| &base[k] + (&oa[k] - &base[k]) * wa + (&ob[k] - &base[k]) * wb)
        .collect();
    peft.add_weighted_adapter(&[("a", wa), ("b", wb)], "cat", Combination::Cat)
        .unwrap();
    peft.set_adapter(&["cat"]).unwrap();
    for (k, (got, want)) in outputs(&n).iter().zip(&want).enumerate() {
        assert!(
            rel(got, want) < 1e-5,
            "cat, layer {k}: {:e}",
            rel(got, want)
        );
    }
    assert!(!peft.config("cat").unwrap().use_rslora);
    // Ranks add up: 2 + 3.
    let t: std::collections::HashMap<String, Tensor> =
        peft.tensors("cat").unwrap().into_iter().collect();
    assert_eq!(t["base_model.model.fc.lora_A.weight"].size(), [5, 6]);
    // SVD: conv's update is 3 x 18, so rank 4 is refused (naming the
    // layer) and nothing is added.
    let err = peft
        .add_weighted_adapter(&[("a", wa), ("b", wb)], "svd", Combination::Svd { rank: 4 })
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv") && err.contains("1..=3"), "{err}");
    assert_eq!(peft.adapter_names(), ["a", "b", "cat"]);
    peft.add_weighted_adapter(&[("a", wa), ("b", wb)], "svd", Combination::Svd { rank: 2 })
        .unwrap();
    peft.set_adapter(&["svd"]).unwrap();
    let svd2 = outputs(&n);
    // Rank 2 cannot hold a rank-5 sum: it must differ, and the error is
    // the tail of the spectrum (checked loosely: it improves on nothing).
    assert!(rel(&svd2[0], &want[0]) > 1e-4);
    // linear: with one adapter and weight 1 it is that adapter.
    peft.add_weighted_adapter(&[("a", 1.0)], "lin", Combination::Linear)
        .unwrap();
    peft.set_adapter(&["lin"]).unwrap();
    for (k, (got, want)) in outputs(&n).iter().zip(&oa).enumerate() {
        assert!(rel(got, want) < 1e-5, "linear, layer {k}");
    }
    let err = peft
        .add_weighted_adapter(&[("a", 1.0), ("b", 1.0)], "lin2", Combination::Linear)
        .unwrap_err();
    assert!(err.to_string().contains("equal ranks"), "{err}");
}

#[test]
fn svd_at_full_rank_is_exact() {
    let _g = rng_lock();
    let mut n = net();
    let mut peft = PeftModel::new(&mut n.vs, &n.layers);
    peft.add_adapter("a", LoraConfig::new(2, 4.0, &["fc"]))
        .unwrap();
    peft.add_adapter("b", LoraConfig::new(2, 1.0, &["fc"]))
        .unwrap();
    randomise(&peft, "a");
    randomise(&peft, "b");
    let base = peft.with_adapters_disabled(|| outputs(&n)).unwrap();
    peft.set_adapter(&["a", "b"]).unwrap();
    let both = outputs(&n);
    // Rank of ΔW_a + ΔW_b ≤ 4: an SVD at rank 4 holds it exactly.
    peft.add_weighted_adapter(&[("a", 1.0), ("b", 1.0)], "s", Combination::Svd { rank: 4 })
        .unwrap();
    peft.set_adapter(&["s"]).unwrap();
    let got = outputs(&n);
    assert!(rel(&(&got[0] - &base[0]), &(&both[0] - &base[0])) < 1e-5);
}

#[test]
fn a_mixed_batch_equals_each_row_alone() {
    let _g = rng_lock();
    let mut n = net();
    let mut peft = PeftModel::new(&mut n.vs, &n.layers);
    peft.add_adapter("a", LoraConfig::new(2, 4.0, &["fc", "emb"]))
        .unwrap();
    peft.add_adapter("b", LoraConfig::new(3, 2.0, &["fc", "emb"]))
        .unwrap();
    randomise(&peft, "a");
    randomise(&peft, "b");
    let x = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
    let names = ["b", "__base__", "a", "b"];
    let mixed = peft
        .with_adapter_names(&names, || n.fc.forward_t(&x, false))
        .unwrap();
    for (i, name) in names.iter().enumerate() {
        let row = x.narrow(0, i as i64, 1);
        let want = if *name == "__base__" {
            peft.with_adapters_disabled(|| n.fc.forward_t(&row, false))
                .unwrap()
        } else {
            peft.set_adapter(&[name]).unwrap();
            n.fc.forward_t(&row, false)
        };
        assert!(
            rel(&mixed.narrow(0, i as i64, 1), &want) < 1e-6,
            "row {i} ({name})"
        );
    }
    // Unknown names and merged adapters are refused; the routing ends with the scope.
    assert!(peft.with_adapter_names(&["zz"], || ()).is_err());
    peft.set_adapter(&["a"]).unwrap();
    let plain = n.fc.forward_t(&x, false);
    peft.merge(None, true).unwrap();
    assert!(peft.with_adapter_names(&names, || ()).is_err());
    peft.unmerge().unwrap();
    assert!(rel(&n.fc.forward_t(&x, false), &plain) < 1e-6);
}
