//! The BERT encoder on the real all-MiniLM-L6-v2 weights against
//! transformers 5.23 (`tests/fixtures/minilm/`, made by `make.py` there):
//! token ids, hidden states, pooler and sentence embeddings.

use graft_nn::layers::Plain;
use graft_nn::models::{
    Bert, BertConfig, BertForSequenceClassification, BertInput, load_bert_weights, mean_pool,
};
use graft_nn::text::Tokenizer;
use graft_tensor::safetensors::Checkpoint;
use graft_tensor::tch::{Device, Kind, Tensor, nn};
use std::path::{Path, PathBuf};

fn asset(name: &str) -> PathBuf {
    graft_tensor::cache::asset(&format!("minilm/{name}")).expect("run `cargo xtask fetch-assets`")
}

fn fixture() -> Checkpoint {
    Checkpoint::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm/expected.safetensors"),
    )
    .unwrap()
}

fn sentences() -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm/sentences.json"),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = |k: &str| {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    (list("batch"), list("long"))
}

fn minilm() -> (nn::VarStore, Bert) {
    let config = BertConfig::from_json(
        &std::fs::read_to_string(asset("config.json")).unwrap(),
        "config.json",
    )
    .unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let bert = Bert::new(&vs.root(), &config, &Plain);
    let missing = load_bert_weights(&vs, &asset("model.safetensors")).unwrap();
    assert!(missing.is_empty(), "{missing:?}");
    (vs, bert)
}

fn cosines(a: &Tensor, b: &Tensor) -> Vec<f64> {
    let c = (a * b).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
        / (a.norm_scalaropt_dim(2, [1i64].as_slice(), false)
            * b.norm_scalaropt_dim(2, [1i64].as_slice(), false));
    Vec::<f64>::try_from(c.to_kind(Kind::Double)).unwrap()
}

#[test]
fn minilm_tokens_and_embeddings_equal_transformers() {
    let want = fixture();
    let tok = Tokenizer::from_file(&asset("tokenizer.json"), 128).unwrap();
    let (_vs, bert) = minilm();
    let (batch, long) = sentences();
    for (prefix, texts) in [("", &batch), ("long.", &long)] {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let input = tok.encode(&refs).unwrap();
        for (key, got) in [
            ("input_ids", &input.input_ids),
            ("attention_mask", &input.attention_mask),
            ("token_type_ids", &input.token_type_ids),
        ] {
            assert!(
                got.equal(&want.tensor(&format!("{prefix}{key}")).unwrap()),
                "{prefix}{key}"
            );
        }
        let out = graft_tensor::tch::no_grad(|| bert.forward(&input, false)).unwrap();
        let emb = mean_pool(&out.last_hidden_state, &input.attention_mask);
        let cos = cosines(
            &emb,
            &want.tensor(&format!("{prefix}sentence_embedding")).unwrap(),
        );
        assert!(
            cos.iter().all(|c| *c >= 0.9999),
            "{prefix}sentence_embedding cosines {cos:?}"
        );
        // Token states at real tokens, and the pooler.
        let mask = input.attention_mask.to_kind(Kind::Float).unsqueeze(-1);
        let h_want = want.tensor(&format!("{prefix}last_hidden_state")).unwrap();
        let diff = ((&out.last_hidden_state - &h_want) * &mask)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 2e-4, "{prefix}last_hidden_state differs by {diff:e}");
        let p = (&out.pooler_output - want.tensor(&format!("{prefix}pooler_output")).unwrap())
            .abs()
            .max()
            .double_value(&[]);
        assert!(p < 2e-4, "{prefix}pooler_output differs by {p:e}");
        let worst = cos.iter().cloned().fold(1.0, f64::min);
        eprintln!("{prefix}: min cosine {worst:.9}, hidden {diff:e}, pooler {p:e}");
    }
}

#[test]
fn a_classifier_loads_the_encoder_under_bert_and_bad_batches_are_errors() {
    let config = BertConfig::from_json(
        &std::fs::read_to_string(asset("config.json")).unwrap(),
        "config.json",
    )
    .unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = BertForSequenceClassification::new(&vs.root(), &config, 2, &Plain);
    let mut missing = load_bert_weights(&vs, &asset("model.safetensors")).unwrap();
    missing.sort();
    assert_eq!(missing, ["classifier.bias", "classifier.weight"]);
    assert!(
        vs.variables()
            .contains_key("bert.encoder.layer.0.attention.self.query.weight")
    );
    let ids = Tensor::from_slice(&[101i64, 7592, 102]).view([1, 3]);
    let ok = BertInput {
        input_ids: ids.shallow_clone(),
        attention_mask: ids.ones_like(),
        token_type_ids: ids.zeros_like(),
    };
    assert_eq!(model.forward(&ok, false).unwrap().size(), [1, 2]);
    let bad = BertInput {
        input_ids: ids.shallow_clone() + 40_000,
        attention_mask: ids.ones_like(),
        token_type_ids: ids.zeros_like(),
    };
    assert!(
        model
            .forward(&bad, false)
            .unwrap_err()
            .to_string()
            .contains("token ids")
    );
    let short_mask = BertInput {
        input_ids: ids.shallow_clone(),
        attention_mask: Tensor::ones([1, 2], (Kind::Int64, Device::Cpu)),
        token_type_ids: ids.zeros_like(),
    };
    assert!(model.forward(&short_mask, false).is_err());
    assert!(
        BertConfig::from_json("{\"vocab_size\": 3}", "c.json")
            .unwrap_err()
            .to_string()
            .contains("c.json")
    );
}
