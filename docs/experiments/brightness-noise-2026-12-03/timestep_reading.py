"""Do the label embeddings change the noise level the UNet reads? On the pre-trained trajectory's
x_t at the run's sampler timesteps, the embeddings-only control (LoRA zeroed) for each asked class
is compared with the pre-trained model told other timesteps t': RMS(eps_emb(x_t, t) - eps_pre(x_t, t')).
If the best t' is not t and fits much better than t' = t, the embedding acts as a timestep shift;
also printed: |eps_emb| / |eps_pre| at t (below 1: less noise removed). Arguments: run dir, samples."""
import sys, torch
from ctrl_worker.diffusion.branches import StepModel
from ctrl_worker.diffusion.sampler import Trajectory
from ctrl_worker.ctrl.control import Labels, ADAPTER
from common import use_threads, load_run

use_threads()
run = load_run(sys.argv[1]); n = int(sys.argv[2])
backbone, control, column, timesteps, eta, th = run.backbone, run.control, run.column, run.timesteps, run.eta, run.thresholds
with torch.no_grad():
    for layer in control._tuner_layers:
        layer.lora_B[ADAPTER].weight.zero_()
candidates = list(range(99, 1000, 25))
tr = Trajectory(backbone, n, 99)
with torch.no_grad():
    for i, t in enumerate(timesteps[:-1]):
        x = tr.x
        pre = {tp: backbone.predict_eps(x, tp) for tp in candidates + [t]}
        line = [f"t {t:3d}"]
        for k in range(4):
            eps, _ = StepModel(backbone, control, Labels({column: torch.full((n,), k)}), None, fused=True).predict(x, t, False)
            err = {tp: float((eps - e).pow(2).mean().sqrt()) for tp, e in pre.items()}
            best = min(candidates, key=err.get)
            line.append(f"class {k}: rms vs t {err[t]:.4f}, best t' {best} ({err[best]:.4f}), |eps|/|eps_pre| {float(eps.norm() / pre[t].norm()):.3f}")
        print(" | ".join(line), flush=True)
        eps_pre = pre[t]
        tr.advance(t, timesteps[i + 1], eta, eps_pre, None)
