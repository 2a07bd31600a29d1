"""The trained brightness control for the first k sampler steps, the pre-trained model for the rest: at which steps does the noise go in?
k = 9 gives the last (deterministic, KL-free) step back to the pre-trained model. Arguments: run dir, samples per class, k list (default 10,9,8,6,5,4,3)."""
import sys, json, torch, numpy as np
from ctrl_worker.diffusion.backbones import load_backbone
from ctrl_worker.diffusion.branches import StepModel
from ctrl_worker.diffusion.sampler import Trajectory
from ctrl_worker.ctrl.checkpoints import read_control
from ctrl_worker.ctrl.control import Labels
torch.set_num_threads(1)
run = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 32
handovers = [int(k) for k in (sys.argv[3] if len(sys.argv) > 3 else "10,9,8,6,5,4,3").split(",")]
state = json.load(open(f"{run}/state.json")); thresholds = state["thresholds"]; column = state["labelColumn"]
backbone = load_backbone("/work/main/models/default", "", torch.float32, torch.device("cpu"), None)
control = read_control(backbone, f"{run}/checkpoints/epoch-0010").create(backbone)
timesteps = [999 - 111 * i for i in range(9)] + [0]
cfg = json.load(open(f"{run}/config.json"))
# the run's own timesteps (trailing spacing, 10 steps)
T = backbone.num_train_timesteps; steps = cfg["sampler"]["steps"]
timesteps = [round(T - 1 - i * T / steps) for i in range(steps)]
eta = cfg["sampler"]["eta"]
def luma(x):
    u = ((x.clamp(-1, 1) + 1) * 127.5).round()
    return (0.299 * u[:, 0] + 0.587 * u[:, 1] + 0.114 * u[:, 2]).mean((1, 2))
def jpeg_free_grain(x):
    u = ((x.clamp(-1, 1) + 1) * 127.5)
    return (u[:, :, :, 1:] - u[:, :, :, :-1]).abs().mean((1, 2, 3))
def klass(v):  # brightness: class k = k-th quartile, 0 darkest
    return sum(int(v >= t) for t in thresholds)
print("timesteps", timesteps, "thresholds", thresholds)
for handover in handovers:
    accs = []; grains = []
    for k in range(4):
        labels = Labels({column: torch.full((n,), k)})
        model = StepModel(backbone, control, labels, None, fused=True)
        tr = Trajectory(backbone, n, 1234 + k)
        with torch.no_grad():
            for i, t in enumerate(timesteps):
                prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
                ref = i >= handover
                eps, eps_ref = model.predict(tr.x, t, ref)
                tr.advance(t, prev, eta, eps_ref if ref else eps, None)
        x = tr.x
        c = torch.tensor([klass(float(v)) for v in luma(x)])
        accs.append(float((c == k).float().mean())); grains.append(float(jpeg_free_grain(x).mean()))
    print(f"control for the first {handover} steps", "accuracy per class", [round(a, 2) for a in accs], "mean", round(sum(accs) / 4, 3), "grain per class", [round(g, 1) for g in grains])
