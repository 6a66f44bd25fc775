import os, sys, csv, json, torch
os.environ["HF_HUB_OFFLINE"]="1"; os.environ["TRANSFORMERS_OFFLINE"]="1"
torch.set_num_threads(2)
from transformers import AutoTokenizer, AutoModelForSequenceClassification
from peft import PeftModel
base=os.path.expanduser("~/.cache/graft/assets/minilm")
tok=AutoTokenizer.from_pretrained(base)
rows=list(csv.DictReader(open("/tmp/rt_eval.csv")))
texts=[r["text"] for r in rows]; labels=json.load(open("/tmp/ft-lora/labels.json"))["id2label"]
lab2id={v:int(k) for k,v in labels.items()}; y=torch.tensor([lab2id[r["label"]] for r in rows])
m=AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).eval()
pm=PeftModel.from_pretrained(m, "/tmp/ft-lora").eval()
merged=AutoModelForSequenceClassification.from_pretrained("/tmp/ft-merged").eval()
def logits(model):
    out=[]
    with torch.no_grad():
        for i in range(0,len(texts),64):
            b=tok(texts[i:i+64], truncation=True, max_length=64, padding=True, return_tensors="pt")
            out.append(model(**b).logits)
    return torch.cat(out)
a=logits(pm); b=logits(merged)
print("PEFT(base+adapter) accuracy", (a.argmax(-1)==y).float().mean().item())
print("transformers(graft-merged) accuracy", (b.argmax(-1)==y).float().mean().item())
print("max |logit diff|", (a-b).abs().max().item(), "same predictions", bool((a.argmax(-1)==b.argmax(-1)).all()))
