"""Are the trained colourfulness control's misses samples that fool its reward classifier?

128 samples of the control (32 per asked class), judged by colourfulness itself; the run's reward
classifier and two more trained with other seeds (the run's recipe, stats-convnet for 20 epochs,
by tools/classifier_sweep.train_on_split, then temperature-scaled on the 20% it held out) give
p(asked class) on the misses and the hits. Run from python-worker/:
  PYTHONPATH=. .venv/bin/python ../docs/experiments/own-attribute-2026-12-03/second_opinion.py OUT/runs/latest OUT/data
with OUT the folder of `experiments/own-attribute.ts --out OUT` (result.json holds the thresholds).
"""
import json, os, sys, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../brightness-noise-2026-12-03"))
from common import load_run, sample_class
from ctrl_worker.classifiers import classifier as C
from ctrl_worker.data.datasets import load_dataset
from ctrl_worker.tools.classifier_sweep import train_on_split
torch.set_num_threads(1)
run_dir, data_dir = sys.argv[1], sys.argv[2]
run = load_run(run_dir)
thr = json.load(open(f"{run_dir}/../../result.json"))["thresholds"]

def colourfulness(x):
    u = ((x.clamp(-1, 1) + 1) * 127.5).round()
    r, g, b = u[:, 0], u[:, 1], u[:, 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    spread = (rg.var((1, 2), unbiased=False) + yb.var((1, 2), unbiased=False)).sqrt()
    return spread + 0.3 * torch.hypot(rg.mean((1, 2)), yb.mean((1, 2)))

n = 32
xs, asked = [], []
for k in range(4):
    xs.append(sample_class(run, k, n, seed=1000 + k)); asked += [k] * n
x = torch.cat(xs); asked = torch.tensor(asked)
oracle = sum((colourfulness(x) >= t).long() for t in thr)
u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

def probs(clf):
    logits, _ = C.score(clf, u8, False)
    return torch.softmax(logits / clf.temperature, 1)

A = C.load_classifier(f"{run_dir}/classifier", torch.device("cpu"))
ds = load_dataset(data_dir, "labels.csv", ["colourfulness"])
imgs, labels = ds.images, ds.labels["colourfulness"]
others = []
for seed in (1, 2):
    clf, held = train_on_split(imgs, labels, 4, "stats-convnet", 20, seed)  # the run's recipe, another seed
    C.calibrate(clf, imgs[held], labels[held])
    lg, _ = C.score(clf, imgs[held], False)
    print(f"classifier seed {seed}: held-out {float((lg.argmax(1) == labels[held]).float().mean()):.3f}, T {clf.temperature:.2f}", flush=True)
    others.append(clf)

pa = probs(A); pb = [probs(c) for c in others]
hit = oracle == asked
print(f"oracle accuracy {hit.float().mean():.3f}; run classifier says asked class: {(pa.argmax(1) == asked).float().mean():.3f}")
for name, p in [("run", pa)] + [(f"seed{i+1}", q) for i, q in enumerate(pb)] + [("mean of 3", (pa + pb[0] + pb[1]) / 3), ("product of 3", (pa.log() + pb[0].log() + pb[1].log()).softmax(1))]:
    says = p.argmax(1) == asked
    pa_asked = p[torch.arange(len(asked)), asked]
    print(f"{name:12s} says-asked {says.float().mean():.3f} | on oracle misses ({int((~hit).sum())}): says-asked {says[~hit].float().mean():.3f}, mean p(asked) {pa_asked[~hit].mean():.3f}, share p>=0.97 {(pa_asked[~hit] >= 0.97).float().mean():.3f} | on oracle hits: mean p(asked) {pa_asked[hit].mean():.3f}, share p>=0.97 {(pa_asked[hit] >= 0.97).float().mean():.3f}")
