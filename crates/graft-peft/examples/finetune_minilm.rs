//! Fine-tune all-MiniLM-L6-v2 (fetched by `cargo xtask fetch-assets`) as a
//! sentiment classifier through LoRA, and save the adapter in PEFT's format.
//! `cargo run --release -p graft-peft --example finetune_minilm`

use graft_nn::models::BertForSequenceClassification;
use graft_nn::text::Tokenizer;
use graft_nn::train_text::{TextData, TextTrainConfig, train_text_classifier};
use graft_peft::{Layers, LoraConfig, PeftModel};
use graft_tensor::tch::{Device, nn};

fn main() -> anyhow::Result<()> {
    let dir = graft_tensor::cache::asset("minilm/model.safetensors")?.with_file_name("");
    let tok = Tokenizer::from_file(&dir.join("tokenizer.json"), 64)?;
    let (mut vs, layers) = (nn::VarStore::new(Device::Cpu), Layers::new());
    let model = BertForSequenceClassification::from_pretrained(&vs, &dir, 2, &layers)?;
    let mut peft = PeftModel::new(&mut vs, &layers);
    let lora = LoraConfig::new(8, 16.0, &["query", "value"]).with_modules_to_save(&["classifier"]);
    peft.add_adapter("default", lora.with_task_type("SEQ_CLS"))?;
    println!("{}", peft.parameter_count());
    let texts = [
        "a moving film",
        "dull and too long",
        "smart and funny",
        "a tedious mess",
    ];
    let labels = vec![1, 0, 1, 0];
    let data = TextData {
        texts: texts.map(String::from).to_vec(),
        labels,
    };
    let cfg = TextTrainConfig {
        epochs: 10,
        batch_size: 4,
        ..Default::default()
    };
    let mut report = |epoch, loss| {
        println!("epoch {epoch}: loss {loss:.4}");
        Ok(())
    };
    let store = peft.var_store();
    train_text_classifier(&model, store, &tok, &data, &cfg, &mut |_| {}, &mut report)?;
    let out = std::env::temp_dir().join("graft-minilm-lora");
    peft.save_pretrained(&out, &graft_tensor::output::OutputRules::new().force(true))?;
    println!("adapter in {} (PEFT loads it too)", out.display());
    Ok(())
}
