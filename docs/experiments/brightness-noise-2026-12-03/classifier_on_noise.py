"""The reward classifier on the pre-trained samples with added white noise: what does it say, what
does the oracle say? Arguments: run dir, classifier folder name (classifier: the reward's; classifier-plain)."""
import sys, csv, json, torch, numpy as np
from PIL import Image
from ctrl_worker.classifiers.classifier import load_classifier, log_prob
from common import use_threads, brightness_class, grain

use_threads()
run = sys.argv[1]; which = sys.argv[2] if len(sys.argv) > 2 else "classifier"
clf = load_classifier(f"{run}/{which}", torch.device("cpu"))
state = json.load(open(f"{run}/state.json")); th = state["thresholds"]; col = state["labelColumn"]
rows = list(csv.DictReader(open(f"{run}/dataset/labels.csv")))[:400]
x = torch.stack([torch.from_numpy(np.array(Image.open(f"{run}/dataset/{r['file']}").convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1 for r in rows])
y = torch.tensor([int(r[col]) for r in rows])
g0 = grain(x); print("data grain p50/p90/p99/max", [round(float(q), 1) for q in torch.quantile(g0, torch.tensor([.5, .9, .99, 1.]))])
gen = torch.Generator().manual_seed(0)
for s in (0, 0.05, 0.1, 0.2, 0.4, 0.8):
    xn = (x + s * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    oracle = brightness_class(xn, th)
    with torch.no_grad():
        lp = torch.stack([log_prob(clf, xn, torch.full((len(xn),), k)) for k in range(4)], 1)
    pred = lp.argmax(1)
    print(f"s={s:.2f} grain {float(grain(xn).mean()):5.1f} oracle-moved {float((oracle != y).float().mean()):.2f} "
          f"clf==oracle {float((pred == oracle).float().mean()):.2f} max p mean {float(lp.max(1).values.exp().mean()):.2f} "
          f"pred hist {torch.bincount(pred, minlength=4).tolist()} oracle hist {torch.bincount(oracle, minlength=4).tolist()}")
