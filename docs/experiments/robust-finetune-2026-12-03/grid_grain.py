"""Fine grain (mean |neighbouring pixel difference|, 0-255) of the 16 samples per class in a run's report grids (tiles of 32x32 drawn 3x with 6-pixel gaps)."""
import sys, numpy as np
from PIL import Image
def tiles(path):
    a=np.asarray(Image.open(path).convert("RGB")).astype(float)
    out=[]
    for r in range(2):
        for c in range(8):
            y=6+r*102; x=6+c*102
            out.append(a[y:y+96:3, x:x+96:3])
    return out
def grain(t):  # mean absolute difference of horizontally neighbouring pixels (0-255 units)
    return np.abs(np.diff(t,axis=1)).mean()
for run in sys.argv[1:]:
    for method in ("pretrained","ctrl"):
        vals=[]
        for k in range(4):
            g=[grain(t) for t in tiles(f"{run}/grids/{method}-{run.split('-')[-2]}-{k}.png")]
            vals.append(np.mean(g))
        print(run.split('/')[-1], method, " ".join(f"{v:5.1f}" for v in vals))
