//! Load an adapter written by Hugging Face PEFT into your own tch model:
//! build the model's layers through a `graft_peft::Layers` registry (it is
//! a `LayerFactory`, so the layers are plain tch layers until an adapter is
//! added), load the base weights, then the adapter directory.
//! Uses the PEFT 0.21.2 files of graft-peft's interop fixtures.
//! `cargo run --release -p graft-peft --example load_peft_adapter`

use graft_nn::layers::LayerFactory;
use graft_peft::{Layers, LoadOptions, PeftModel};
use graft_tensor::tch::{Device, Kind, Tensor, nn, nn::ModuleT};

/// Your model: two blocks of one Linear each, named as in PyTorch (`blocks.0.fc`).
struct Net {
    fcs: Vec<Box<dyn ModuleT>>,
}

impl Net {
    fn new(p: &nn::Path, layers: &dyn LayerFactory) -> Self {
        Self {
            fcs: (0..2)
                .map(|i| layers.linear(&(p / "blocks" / i / "fc"), 8, 16, true))
                .collect(),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft");
    let mut vs = nn::VarStore::new(Device::Cpu);
    let layers = Layers::new();
    let net = Net::new(&vs.root(), &layers);
    // Base weights: a state dict with PyTorch's names (the file holds more modules; take ours).
    let base = graft_tensor::safetensors::Checkpoint::open(fixtures.join("base.safetensors"))?;
    for (name, mut var) in vs.variables() {
        graft_tensor::tch::no_grad(|| var.copy_(&base.tensor(&name).expect("in the file")));
    }
    let mut peft = PeftModel::new(&mut vs, &layers);
    // Lenient: the file also adapts layers this model does not have.
    let loaded = peft.load_pretrained(&fixtures.join("adapters"), LoadOptions { strict: false })?;
    println!("loaded adapters {loaded:?}; {}", peft.parameter_count());
    let x = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
    let plain = peft.with_adapters_disabled(|| net.fcs[0].forward_t(&x, false))?;
    for adapter in ["default", "second"] {
        peft.set_adapter(&[adapter])?;
        let y = net.fcs[0].forward_t(&x, false);
        println!(
            "`{adapter}` moves the output by {:.4} (max abs)",
            (&y - &plain).abs().max().double_value(&[])
        );
    }
    Ok(())
}
