"""256 pre-trained samples with the runs' sampler (10 steps, eta 0.5), with and without the
scheduler's x0 clipping: how much of the images falls outside the range, and their luma and grain."""
import math, torch
import numpy as np
from PIL import Image
from ctrl_worker.diffusion.sampler import Trajectory, ddim_step, ddim_std
from ctrl_worker.tools.step_ablation import sampler_timesteps
from common import use_threads, load_default_backbone, luma, grain

use_threads()
backbone = load_default_backbone()
steps, eta, n = 10, 0.5, 256
timesteps = sampler_timesteps({"sampler": {"steps": steps, "spacing": "trailing"}}, backbone.num_train_timesteps, backbone.steps_offset)
for clip in (1.0, None):
    tr = Trajectory(backbone, n, 7)
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            prev = timesteps[i + 1] if i + 1 < steps else -1
            eps = backbone.predict_eps(tr.x, t)
            a_t = backbone.alpha_cumprod(t); a_p = backbone.alpha_cumprod(prev)
            noise = tr._draw_noise() if ddim_std(a_t, a_p, eta) > 0 else None
            tr.x = ddim_step(tr.x, eps, a_t, a_p, eta, noise, clip).sample
    x = tr.x
    l = luma(x); g = grain(x)
    print("clip", clip, "out-of-range frac", float((x.abs() > 1).float().mean()), "luma p10/25/50/75/90", [round(float(q), 1) for q in torch.quantile(l, torch.tensor([.1, .25, .5, .75, .9]))],
          "grain p10/50/90", [round(float(q), 1) for q in torch.quantile(g, torch.tensor([.1, .5, .9]))])
    u = ((x[:64].clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    h, w = u.shape[1:3]
    grid = u.reshape(8, 8, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(8 * h, 8 * w, 3)
    Image.fromarray(grid).resize((8 * w * 3, 8 * h * 3), Image.NEAREST).save("pretrained-clipped.png" if clip else "pretrained-unclipped.png")
