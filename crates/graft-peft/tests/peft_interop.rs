//! Interchange with Hugging Face PEFT 0.21.2: adapters PEFT wrote
//! (`tests/fixtures/peft/`, made by `make.py` there) load in graft-peft and
//! give PEFT's outputs, merged weights and `merge_and_unload` state; what
//! graft-peft writes has exactly PEFT's keys and reads back bit for bit.

use graft_nn::layers::LayerFactory;
use graft_peft::{Error, Layers, LoadOptions, PeftModel};
use graft_tensor::output::OutputRules;
use graft_tensor::safetensors::Checkpoint;
use graft_tensor::tch::{Device, Kind, Tensor, nn, nn::ModuleT};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MODULES: [&str; 7] = [
    "emb",
    "blocks.0.fc",
    "blocks.1.fc",
    "proj",
    "conv",
    "gconv",
    "head",
];
/// The bar: PEFT's own tests allow 1e-4 (and 0.3 absolute for conv LoRA).
const TOL: f64 = 1e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft")
}

struct Net {
    vs: nn::VarStore,
    layers: Layers,
    modules: BTreeMap<String, Box<dyn ModuleT>>,
}

/// The model of `model_def.py`, loaded from `base.safetensors`.
fn net() -> Net {
    let vs = nn::VarStore::new(Device::Cpu);
    let layers = Layers::new();
    let root = vs.root();
    let mut modules: BTreeMap<String, Box<dyn ModuleT>> = BTreeMap::new();
    modules.insert("emb".into(), layers.embedding(&(&root / "emb"), 20, 8));
    for i in 0..2 {
        modules.insert(
            format!("blocks.{i}.fc"),
            layers.linear(&(&root / "blocks" / i / "fc"), 8, 16, true),
        );
    }
    modules.insert("proj".into(), layers.conv1d_gpt2(&(&root / "proj"), 16, 8));
    let conv = |stride, padding, dilation, groups| nn::ConvConfig {
        stride,
        padding,
        dilation,
        groups,
        ..Default::default()
    };
    modules.insert(
        "conv".into(),
        layers.conv2d(&(&root / "conv"), 3, 6, 3, conv(1, 2, 2, 1)),
    );
    modules.insert(
        "gconv".into(),
        layers.conv2d(&(&root / "gconv"), 4, 8, 3, conv(2, 1, 1, 2)),
    );
    modules.insert("head".into(), layers.linear(&(&root / "head"), 16, 4, true));
    let base = Checkpoint::open(fixtures().join("base.safetensors")).unwrap();
    let vars = vs.variables();
    assert_eq!(vars.len(), base.names().len());
    for (name, mut var) in vars {
        let t = base.tensor(&name).unwrap();
        graft_tensor::tch::no_grad(|| var.copy_(&t));
    }
    Net {
        vs,
        layers,
        modules,
    }
}

fn expected() -> Checkpoint {
    Checkpoint::open(fixtures().join("expected.safetensors")).unwrap()
}

/// `max |a − b| / max |b|`.
fn rel(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let d = (a - b).abs().max().double_value(&[]);
    d / b.abs().max().double_value(&[]).max(1e-30)
}

fn check_outputs(net: &Net, want: &Checkpoint, which: &str, modules: &[&str]) -> f64 {
    let mut worst = 0.0f64;
    for m in modules {
        let x = want.tensor(&format!("input.{m}")).unwrap();
        let y = net.modules[*m].forward_t(&x, false);
        let e = rel(&y, &want.tensor(&format!("out.{which}.{m}")).unwrap());
        assert!(e <= TOL, "out.{which}.{m}: relative error {e:e}");
        worst = worst.max(e);
    }
    worst
}

fn weights(net: &Net) -> BTreeMap<String, Tensor> {
    net.vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

#[test]
fn adapters_written_by_peft_give_peft_outputs() {
    let mut net = net();
    let want = expected();
    let mut peft = PeftModel::new(&mut net.vs, &net.layers);
    let loaded = peft
        .load_pretrained(&fixtures().join("adapters"), LoadOptions::default())
        .unwrap();
    assert_eq!(loaded, ["default", "second"]);
    // Disabled: the base model, bit for bit on the plain layers.
    peft.with_adapters_disabled(|| check_outputs(&net, &want, "base", &MODULES))
        .unwrap();
    // One adapter at a time. PEFT cannot run the dilated conv unmerged; its
    // recorded output is the merged module's, which graft's unmerged
    // forward (dilation passed) must equal.
    peft.set_adapter(&["default"]).unwrap();
    let worst = check_outputs(&net, &want, "default", &MODULES);
    eprintln!("default: worst relative error {worst:e}");
    peft.set_adapter(&["second"]).unwrap();
    check_outputs(&net, &want, "second", &["blocks.0.fc", "blocks.1.fc"]);
    // Both: graft adds the adapters' terms (spec §0), which is PEFT's
    // result with DoRA listed first; with DoRA second PEFT rescales the
    // accumulated output instead (fixture README, quirk 6).
    peft.set_adapter(&["default", "second"]).unwrap();
    check_outputs(&net, &want, "both", &["emb", "proj", "gconv", "head"]);
    check_outputs(&net, &want, "both_rev", &["blocks.0.fc", "blocks.1.fc"]);
    peft.set_adapter(&["second", "default"]).unwrap();
    check_outputs(&net, &want, "both_rev", &["blocks.0.fc", "blocks.1.fc"]);
}

#[test]
fn merges_equal_peft_and_unmerge_restores_every_bit() {
    let mut net = net();
    let want = expected();
    let before = weights(&net);
    let mut peft = PeftModel::new(&mut net.vs, &net.layers);
    peft.load_pretrained(&fixtures().join("adapters"), LoadOptions::default())
        .unwrap();
    // PEFT refuses to merge a grouped conv's LoRA, and so does graft: the
    // whole merge is refused and nothing changes.
    let err = peft.merge(Some(&["default"]), false).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { layer, .. } if layer == "gconv"),
        "{err}"
    );
    for (k, v) in weights(&net) {
        assert!(v.equal(&before[&k]), "`{k}` changed by a refused merge");
    }
    for adapter in ["second"] {
        peft.merge(Some(&[adapter]), true).unwrap();
        let now = weights(&net);
        for m in ["blocks.0.fc", "blocks.1.fc"] {
            let key = format!("merged.{adapter}.{m}.weight");
            let e = rel(&now[&format!("{m}.weight")], &want.tensor(&key).unwrap());
            assert!(e <= TOL, "{key}: relative error {e:e}");
        }
        // Merged forward equals unmerged.
        peft.unmerge().unwrap();
        for (k, v) in weights(&net) {
            assert!(v.equal(&before[&k]), "`{k}` not restored bit for bit");
        }
    }
    // The adapter PEFT could merge everywhere (no grouped conv).
    peft.load_adapter(
        &fixtures().join("adapters_nogconv"),
        "ng",
        LoadOptions::default(),
    )
    .unwrap();
    peft.set_adapter(&["ng"]).unwrap();
    let unmerged: Vec<Tensor> = MODULES
        .iter()
        .map(|m| net.modules[*m].forward_t(&want.tensor(&format!("input.{m}")).unwrap(), false))
        .collect();
    peft.merge(None, true).unwrap();
    let now = weights(&net);
    for m in ["emb", "blocks.0.fc", "blocks.1.fc", "proj", "conv"] {
        let key = format!("merged.default.{m}.weight");
        let e = rel(&now[&format!("{m}.weight")], &want.tensor(&key).unwrap());
        assert!(e <= TOL, "{key}: relative error {e:e}");
    }
    for (m, u) in MODULES.iter().zip(&unmerged) {
        let merged = net.modules[*m].forward_t(&want.tensor(&format!("input.{m}")).unwrap(), false);
        let e = rel(&merged, u);
        assert!(e <= TOL, "{m}: merged vs unmerged {e:e}");
    }
    peft.unmerge().unwrap();
    for (k, v) in weights(&net) {
        assert!(v.equal(&before[&k]), "`{k}` not restored bit for bit");
    }
    // merge_and_unload: PEFT's state dict.
    peft.merge_and_unload(true).unwrap();
    for (k, v) in weights(&net) {
        let e = rel(&v, &want.tensor(&format!("unloaded.{k}")).unwrap());
        assert!(e <= TOL, "unloaded.{k}: relative error {e:e}");
    }
    assert!(peft.adapter_names().is_empty());
}

#[test]
fn what_graft_writes_has_peft_keys_and_reads_back_bit_for_bit() {
    let mut net = net();
    let want = expected();
    let mut peft = PeftModel::new(&mut net.vs, &net.layers);
    peft.load_pretrained(&fixtures().join("adapters"), LoadOptions::default())
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("saved");
    peft.save_pretrained(&out, &OutputRules::new()).unwrap();
    for sub in ["", "second"] {
        let ours = Checkpoint::open(out.join(sub).join("adapter_model.safetensors")).unwrap();
        let theirs = Checkpoint::open(
            fixtures()
                .join("adapters")
                .join(sub)
                .join("adapter_model.safetensors"),
        )
        .unwrap();
        assert_eq!(ours.names(), theirs.names(), "keys of `{sub}`");
        for k in ours.names() {
            assert!(
                ours.tensor(k).unwrap().equal(&theirs.tensor(k).unwrap()),
                "`{k}` changed"
            );
        }
        assert_eq!(
            ours.metadata().get("format").map(String::as_str),
            Some("pt")
        );
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(sub).join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["peft_type"], "LORA");
        assert!(
            config["peft_version"]
                .as_str()
                .unwrap()
                .starts_with("graft-peft ")
        );
    }
    // A fresh model reading graft's files gives the same outputs, bit for bit.
    let mut net2 = self::net();
    let mut peft2 = PeftModel::new(&mut net2.vs, &net2.layers);
    peft2.load_pretrained(&out, LoadOptions::default()).unwrap();
    for active in [["default"], ["second"]] {
        peft.set_adapter(&active).unwrap();
        peft2.set_adapter(&active).unwrap();
        for m in MODULES {
            let x = want.tensor(&format!("input.{m}")).unwrap();
            assert!(
                net.modules[m]
                    .forward_t(&x, false)
                    .equal(&net2.modules[m].forward_t(&x, false)),
                "{m}"
            );
        }
    }
    // Writing again over it needs force (graft's output rules).
    let err = peft.save_pretrained(&out, &OutputRules::new()).unwrap_err();
    assert!(err.to_string().contains("saved"), "{err}");
    peft.save_pretrained(&out, &OutputRules::new().force(true))
        .unwrap();
    // For the reverse check in Python (`check_graft_adapter.py`, README).
    if let Some(keep) = std::env::var_os("GRAFT_PEFT_KEEP") {
        peft.save_pretrained(Path::new(&keep), &OutputRules::new().force(true))
            .unwrap();
    }
}

#[test]
fn key_mismatches_are_named_and_lenient_loading_warns_instead() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("broken");
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixtures().join("adapters");
    std::fs::copy(
        src.join("adapter_config.json"),
        dir.join("adapter_config.json"),
    )
    .unwrap();
    let file = Checkpoint::open(src.join("adapter_model.safetensors")).unwrap();
    let tensors: Vec<(String, Tensor)> = file
        .names()
        .iter()
        .map(|k| {
            (
                k.replace("proj.lora_A", "proj.lora_a"),
                file.tensor(k).unwrap(),
            )
        })
        .collect();
    graft_tensor::safetensors::save(
        dir.join("adapter_model.safetensors"),
        tensors,
        &Default::default(),
    )
    .unwrap();
    let mut net = net();
    let mut peft = PeftModel::new(&mut net.vs, &net.layers);
    let err = peft
        .load_adapter(&dir, "default", LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("base_model.model.proj.lora_A.weight") && err.contains("missing"),
        "{err}"
    );
    assert!(
        peft.adapter_names().is_empty(),
        "a failed load adds nothing"
    );
    peft.load_adapter(&dir, "default", LoadOptions { strict: false })
        .unwrap();
    // The broken layer got no adapter; the others did.
    let x = Tensor::randn([3, 16], (Kind::Float, Device::Cpu));
    let y = net.modules["proj"].forward_t(&x, false);
    let base = peft
        .with_adapters_disabled(|| net.modules["proj"].forward_t(&x, false))
        .unwrap();
    assert!(y.equal(&base));
    // A pickle file is refused with the way out.
    let pickle = tmp.path().join("pickle");
    std::fs::create_dir_all(&pickle).unwrap();
    std::fs::copy(
        src.join("adapter_config.json"),
        pickle.join("adapter_config.json"),
    )
    .unwrap();
    std::fs::write(pickle.join("adapter_model.bin"), b"\x80\x02}q\x00.").unwrap();
    let err = peft
        .load_adapter(&pickle, "p", LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("adapter_model.bin") && err.contains("safetensors"),
        "{err}"
    );
}
