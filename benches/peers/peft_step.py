"""One LoRA (or full) fine-tuning step of all-MiniLM-L6-v2 in Hugging Face
PEFT 0.21.2, as `cargo xtask bench peft` runs graft's: batch 32, sequence 64,
r = 8 on query/value, AdamW, fixed random token ids. Prints one JSON line:
median step milliseconds over the measured steps and the process's peak RSS.
Run by benches/benches/peft.rs with the peers environment's Python."""
import argparse, json, os, resource, statistics, time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
import torch
from transformers import AutoModelForSequenceClassification
from peft import LoraConfig, get_peft_model

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--arm", choices=["lora", "full"], required=True)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=2)
if a.arm == "lora":
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], task_type="SEQ_CLS")
    model = get_peft_model(model, cfg)
lr = 2e-3 if a.arm == "lora" else 5e-5
opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=lr)
model.train()
ids = torch.randint(1000, 30000, (32, 64))
mask = torch.ones_like(ids)
types = torch.zeros_like(ids)
y = torch.randint(0, 2, (32,))
times = []
for i in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=y)
    out.loss.backward()
    opt.step()
    opt.zero_grad()
    if i >= a.warmup:
        times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"median_ms": 1000 * statistics.median(times), "peak_rss_mib": peak}))
