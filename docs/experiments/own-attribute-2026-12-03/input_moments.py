"""Held-out accuracy of stats-convnet against stats-convnet with the image's own colour moments
(per band, image and fine detail: the channels' means and covariances, 18 numbers) beside its
pooled features, through the linear head ("moments") or a 64-unit hidden layer ("moments-mlp").
Run from python-worker/, one variant per call:
  PYTHONPATH=. .venv/bin/python ../docs/experiments/own-attribute-2026-12-03/input_moments.py DATA COLUMN stats|moments|moments-mlp
(DATA: a labelled folder, e.g. experiments/own-attribute.ts's OUT/data with COLUMN colourfulness.)
"""
import json, sys, torch, torch.nn.functional as F
from torch import nn
from ctrl_worker.classifiers import classifier as C
from ctrl_worker.tools.classifier_sweep import held_out_curve
from ctrl_worker.data.datasets import load_dataset

def moments(x):
    # per band (image, detail): 3 means + 6 covariances of the channels over pixels
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    out = []
    for band in (x, x - blur):
        f = band.flatten(2)  # n, 3, p
        mu = f.mean(2)
        d = f - mu[:, :, None]
        cov = torch.einsum("ncp,ndp->ncd", d, d) / f.shape[2]
        iu = torch.triu_indices(3, 3)
        out += [mu, cov[:, iu[0], iu[1]]]
    return torch.cat(out, 1)  # n, 18

class MomentsNet(C.ConvNet):
    def __init__(self, in_channels, num_classes, width, detail=False, spread=False, head="linear"):
        super().__init__(in_channels, num_classes, width, detail=True, spread=True)
        self.mnorm = nn.BatchNorm1d(18)
        n = C.head_inputs(width, True) + 18
        self.fc = nn.Linear(n, num_classes) if head == "linear" else nn.Sequential(nn.Linear(n, 64), nn.ReLU(), nn.Linear(64, num_classes))
    def features(self, x, timesteps=None):
        return torch.cat([super().features(x), self.mnorm(moments(x))], 1)

variant = sys.argv[3]
if variant != "stats":
    orig = C.ConvNet
    C.ConvNet = lambda *a, **k: MomentsNet(*a, head="mlp" if variant == "moments-mlp" else "linear", **k)
torch.set_num_threads(1)
ds = load_dataset(sys.argv[1], "labels.csv", [sys.argv[2]])
col = ds.column(sys.argv[2], "label_column")
for seed in (0,):
    curve = held_out_curve(ds.images, ds.labels[sys.argv[2]], col.num_classes, "stats-convnet", 20, seed)
    print(json.dumps({"data": sys.argv[2], "variant": variant, "seed": seed, "final": curve[-1], "curve": [round(c, 3) for c in curve]}), flush=True)
