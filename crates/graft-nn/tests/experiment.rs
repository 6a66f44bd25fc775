//! result.json keeps the shape other tools read.

use graft_nn::experiment::{Claim, ExperimentResult};
use serde_json::json;

#[test]
fn result_json_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let result = ExperimentResult {
        experiment: "baselines".into(),
        quick: true,
        seed: 3,
        wall_s: 1.25,
        machine: "test".into(),
        claims: vec![
            Claim::at_least("cnn", "CNN accuracy", 0.97, 0.98123456),
            Claim::at_most("loss", "loss", 0.1, 0.2),
            Claim::new("text", "a phrase", "10-20x", "12x", true),
        ],
        plots: vec!["curve.svg".into()],
    };
    result.write(dir.path()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("result.json")).unwrap())
            .unwrap();
    assert_eq!(v["experiment"], "baselines");
    assert_eq!(v["quick"], true);
    assert_eq!(v["seed"], 3);
    assert_eq!(v["wall_s"], 1.25);
    assert_eq!(v["machine"], "test");
    assert_eq!(v["plots"], json!(["curve.svg"]));
    assert_eq!(
        v["claims"][0],
        json!({"id": "cnn", "claim": "CNN accuracy", "paper": ">= 0.97", "measured": 0.9812, "pass": true})
    );
    assert_eq!(v["claims"][1]["pass"], false);
    assert_eq!(v["claims"][2]["paper"], "10-20x");
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7);
}
