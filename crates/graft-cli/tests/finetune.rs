//! `graft finetune` and `graft adapter` on the real all-MiniLM-L6-v2
//! (fetched by `cargo xtask fetch-assets`): a tiny end-to-end run, the
//! adapter merged into a checkpoint equal to the adapted model, and bad
//! input as one-line errors naming the file and column.
//! `tests/peers/check_finetune.py` checks the same files in PEFT and
//! transformers (docs/peft.md).

use std::fs;
use std::path::{Path, PathBuf};

mod common;
use common::*;

fn minilm() -> PathBuf {
    graft_tensor::cache::asset("minilm/config.json")
        .expect("run `cargo xtask fetch-assets`")
        .parent()
        .unwrap()
        .to_path_buf()
}

fn write_csv(path: &Path, rows: &[(&str, &str)]) {
    let mut text = String::from("text,label\n");
    for (t, l) in rows {
        text.push_str(&format!("\"{t}\",{l}\n"));
    }
    fs::write(path, text).unwrap();
}

const ROWS: [(&str, &str); 8] = [
    ("a wonderful, moving film", "fresh"),
    ("dull, slow and far too long", "rotten"),
    ("the best thing I saw this year", "fresh"),
    ("a tedious mess, badly acted", "rotten"),
    ("charming and clever, with a great cast", "fresh"),
    ("I wanted my two hours back", "rotten"),
    ("smart, funny, and beautifully shot", "fresh"),
    ("lifeless script, lazy jokes", "rotten"),
];

#[test]
fn finetune_writes_a_peft_adapter_that_merges_into_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.csv");
    write_csv(&train, &ROWS);
    let model = minilm();
    let out = tmp.path().join("adapter");
    let err = ok(&[
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--train",
        train.to_str().unwrap(),
        "--eval",
        train.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--max-len",
        "24",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        err.contains("trainable params") && err.contains("eval accuracy"),
        "{err}"
    );
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "labels.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["task_type"], "SEQ_CLS");
    assert_eq!(config["modules_to_save"][0], "classifier");
    let inspect = ok(&["adapter", "inspect", out.to_str().unwrap()]);
    let listing =
        String::from_utf8_lossy(&graft(&["adapter", "inspect", out.to_str().unwrap()]).stdout)
            .into_owned();
    assert!(
        listing.contains("LORA")
            && listing.contains("bert.encoder.layer.5.attention.self.value: r 8"),
        "{listing}{inspect}"
    );
    // The merge: the encoder's keys gain `bert.`, the head is added, labels recorded.
    let merged = tmp.path().join("merged");
    let err = ok(&[
        "adapter",
        "merge",
        "--base",
        model.to_str().unwrap(),
        "--adapter",
        out.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(
        err.contains("merged 12 adapted layers") && err.contains("added 2"),
        "{err}"
    );
    let ckpt = graft_tensor::safetensors::Checkpoint::open(&merged).unwrap();
    assert!(
        ckpt.contains("bert.encoder.layer.0.attention.self.query.weight")
            && ckpt.contains("classifier.weight")
    );
    let config = fs::read_to_string(merged.join("config.json")).unwrap();
    assert!(
        config.contains("BertForSequenceClassification") && config.contains("\"rotten\""),
        "{config}"
    );
    // Output rules: an existing output needs --force; an input is never one.
    let again = fails(&[
        "adapter",
        "merge",
        "--base",
        model.to_str().unwrap(),
        "--adapter",
        out.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(
        again.contains("--force") || again.contains("force"),
        "{again}"
    );
    let into_input = fails(&[
        "adapter",
        "merge",
        "--base",
        model.to_str().unwrap(),
        "--adapter",
        out.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert!(into_input.contains("input"), "{into_input}");
}

#[test]
fn bad_input_is_one_line_naming_the_file_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let model = minilm();
    let m = model.to_str().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let csv = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let missing_col = csv("a.csv", "sentence,label\nhi,x\nho,y\n");
    let err = fails(&[
        "finetune",
        "--model",
        m,
        "--train",
        &missing_col,
        "--out",
        o,
    ]);
    assert!(
        err.contains("a.csv") && err.contains("`text`") && err.contains("sentence"),
        "{err}"
    );
    let one_class = csv("b.csv", "text,label\nhi,x\nho,x\n");
    let err = fails(&["finetune", "--model", m, "--train", &one_class, "--out", o]);
    assert!(
        err.contains("b.csv") && err.contains("`label`") && err.contains("one class"),
        "{err}"
    );
    let empty = csv("c.csv", "text,label\n");
    let err = fails(&["finetune", "--model", m, "--train", &empty, "--out", o]);
    assert!(
        err.contains("c.csv") && err.contains("no data rows"),
        "{err}"
    );
    let no_tok = tmp.path().join("model");
    fs::create_dir_all(&no_tok).unwrap();
    fs::copy(model.join("config.json"), no_tok.join("config.json")).unwrap();
    let good = csv("d.csv", "text,label\nhi,x\nho,y\n");
    let err = fails(&[
        "finetune",
        "--model",
        no_tok.to_str().unwrap(),
        "--train",
        &good,
        "--out",
        o,
    ]);
    assert!(
        err.contains("tokenizer.json") && err.contains("model"),
        "{err}"
    );
    let unseen = csv("e.csv", "text,label\nhi,z\n");
    let err = fails(&[
        "finetune", "--model", m, "--train", &good, "--eval", &unseen, "--out", o,
    ]);
    assert!(err.contains("e.csv") && err.contains("`z`"), "{err}");
    assert!(!out.exists(), "a failed run writes nothing");
}
