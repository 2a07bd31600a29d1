"""Does the x0 clipping pull the middle classes' brightness to the middle? Along a trained control's
trajectories, per step and asked class: the mean and spread over samples of the predicted x0's
mean luma before clipping (unclamped, 0-255 scale) and after, and the final images' mean luma.
Arguments: run dir, samples per class."""
import sys, math, torch
from ctrl_worker.diffusion.branches import StepModel
from ctrl_worker.diffusion.sampler import Trajectory
from ctrl_worker.ctrl.control import Labels
from common import use_threads, load_run

use_threads()
run = load_run(sys.argv[1]); n = int(sys.argv[2])
backbone, control, column, timesteps, eta, th = run.backbone, run.control, run.column, run.timesteps, run.eta, run.thresholds
def raw_luma(x):  # no clamp, no rounding: the mean brightness the values stand for
    u = (x + 1) * 127.5
    return (0.299 * u[:, 0] + 0.587 * u[:, 1] + 0.114 * u[:, 2]).mean((1, 2))
print("class bands", [round(v, 1) for v in th])
for k in range(4):
    for who in ("control", "pre-trained"):
        model = StepModel(backbone, control, Labels({column: torch.full((n,), k)}), None, fused=True)
        tr = Trajectory(backbone, n, 1234 + k)
        cells = []
        with torch.no_grad():
            for i, t in enumerate(timesteps):
                prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
                eps, eps_ref = model.predict(tr.x, t, who == "pre-trained")
                e = eps if who == "control" else eps_ref
                a_t = backbone.alpha_cumprod(t)
                raw = (tr.x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
                lr, lc = raw_luma(raw), raw_luma(raw.clamp(-1, 1))
                cells.append(f"{t}: {float(lr.mean()):.0f}±{float(lr.std()):.0f} -> {float(lc.mean()):.0f}±{float(lc.std()):.0f}")
                tr.advance(t, prev, eta, e, None)
        final = raw_luma(tr.x.clamp(-1, 1))
        print(f"asked {k}, {who}: " + " | ".join(cells) + f" | final {float(final.mean()):.0f}±{float(final.std()):.0f}", flush=True)
