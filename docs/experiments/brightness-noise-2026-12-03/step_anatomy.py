"""Per-step anatomy of a trained control's trajectories, per asked class: the step's KL (as fine-tuning
computes it, x0 clipped), the KL the same step would have without the clipping, the share of the
predicted x0's elements outside [-1, 1] for the control and for the pre-trained model on the same
x_t, the grain (mean |neighbouring pixel difference|, 0-255) of both clipped x0 predictions, and
the RMS difference of the two predicted noises. Arguments: run dir, samples per class."""
import sys, math, torch
from ctrl_worker.diffusion.branches import StepModel
from ctrl_worker.diffusion.sampler import Trajectory, ddim_step, transition_kl
from ctrl_worker.ctrl.control import Labels
from common import use_threads, load_run, luma, brightness_class, grain

use_threads()
run = load_run(sys.argv[1]); n = int(sys.argv[2])
backbone, control, column, timesteps, eta, th = run.backbone, run.control, run.column, run.timesteps, run.eta, run.thresholds
thresholds, clip = th, backbone.clip_range
print("thresholds", thresholds, "clip", clip)
for k in range(4):
    model = StepModel(backbone, control, Labels({column: torch.full((n,), k)}), None, fused=True)
    tr = Trajectory(backbone, n, 1234 + k)
    rows = []
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            eps, eps_ref = model.predict(tr.x, t, True)
            a_t = backbone.alpha_cumprod(t); a_p = backbone.alpha_cumprod(prev)
            raw = (tr.x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            raw_ref = (tr.x - math.sqrt(1 - a_t) * eps_ref) / math.sqrt(a_t)
            zero = torch.zeros_like(tr.x)  # the KL does not depend on the step's noise
            out, ref = ddim_step(tr.x, eps, a_t, a_p, eta, zero, clip), ddim_step(tr.x, eps_ref, a_t, a_p, eta, zero, clip)
            kl = float(transition_kl(out, ref).mean())
            kl_unclipped = float(transition_kl(ddim_step(tr.x, eps, a_t, a_p, eta, zero, None), ddim_step(tr.x, eps_ref, a_t, a_p, eta, zero, None)).mean())
            rows.append((t, kl, kl_unclipped, float((raw.abs() > 1).float().mean()), float((raw_ref.abs() > 1).float().mean()),
                         float(grain(out.predicted_x0).mean()), float(grain(ref.predicted_x0).mean()), float((eps - eps_ref).pow(2).mean().sqrt())))
            tr.advance(t, prev, eta, eps, None)
    c = brightness_class(tr.x, thresholds)
    print(f"asked class {k}: oracle accuracy {float((c == k).float().mean()):.3f}, final grain {float(grain(tr.x).mean()):.1f}, mean luma {float(luma(tr.x).mean()):.1f}, "
          f"KL {sum(r[1] for r in rows):.0f} (unclipped {sum(r[2] for r in rows):.0f})")
    print("     t      KL  unclipped  outside[-1,1] control/pre-trained  x0 grain control/pre-trained  rms(eps - eps_pre)")
    for r in rows:
        print(f"  {r[0]:4d} {r[1]:7.1f} {r[2]:9.1f} {r[3]:17.3f} / {r[4]:.3f} {r[5]:20.1f} / {r[6]:.1f} {r[7]:12.4f}")
