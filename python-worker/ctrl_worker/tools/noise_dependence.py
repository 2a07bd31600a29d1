"""`python -m ctrl_worker.tools.noise_dependence RUN_DIR`: how much of a pre-trained sample's
class its starting noise x_T decides, and how much the noise of the later sampler steps does.

Draws `--starts` starting noises and runs the pre-trained model from each along `--paths`
independent noise paths (the run's sampler, or `--eta`), judges every image by the run's oracle
with the class bands of the run's offline samples, and prints one JSON line: the entropy of the
class over all images and its mean entropy given x_T (nats), the mean probability of x_T's most
frequent class, and the mean 8x8-thumbnail distance between images from the same x_T and from
different ones. If x_T decided the class, a control could only move each trajectory (transport);
where the later noise decides it, the KL-regularised target can be reached by steering which
outcomes occur, at the cost of the target's own KL.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..diffusion.sampler import Trajectory
from .band_diversity import mean_pairwise_distance
from .step_ablation import open_run, to_uint8
from .target_tilt import thumbnails


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def noise_dependence(run: Path, starts: int, paths: int, eta: float | None = None, seed: int = 0) -> dict:
    setup = open_run(run)
    oracle, classes_by_value, classes, backbone, timesteps = setup.oracle, setup.classes_by_value, setup.classes, setup.backbone, setup.timesteps
    eta = float(setup.config["sampler"]["eta"]) if eta is None else eta

    x_T = torch.randn((starts, *backbone.sample_shape), generator=torch.Generator().manual_seed(seed))
    by_path = []
    for path in range(paths):  # every path starts from the same x_T; its step noise is its own
        trajectory = Trajectory(backbone, starts, seed + 1 + path, initial_noise=x_T.clone())
        for i, t in enumerate(timesteps):
            trajectory.step(t, timesteps[i + 1] if i + 1 < len(timesteps) else -1, eta)
        by_path.append(to_uint8(backbone, trajectory.x))
    samples = np.stack(by_path, axis=1)  # (starts, paths, height, width, channels)
    judged = np.array([classes_by_value.judge(np.array([oracle(image) for image in row])) for row in samples])
    per_start = [np.bincount(row, minlength=classes) for row in judged]
    thumbs = thumbnails(samples.reshape(-1, *samples.shape[2:])).reshape(starts, paths, -1)
    return {
        "run": str(run),
        "oracle": setup.oracle_name,
        "eta": eta,
        "timesteps": timesteps,
        "starts": starts,
        "paths": paths,
        "class_share": (np.bincount(judged.ravel(), minlength=classes) / judged.size).tolist(),
        "class_entropy": entropy(np.bincount(judged.ravel(), minlength=classes)),
        "class_entropy_given_x_T": float(np.mean([entropy(counts) for counts in per_start])),
        "mean_top_class_share_given_x_T": float(np.mean([counts.max() / paths for counts in per_start])),
        "thumbnail_distance_same_x_T": float(np.mean([mean_pairwise_distance(thumbs[s]) for s in range(starts)])),
        "thumbnail_distance_different_x_T": float(np.mean([mean_pairwise_distance(thumbs[:, p]) for p in range(paths)])),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.tools.noise_dependence", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with its offline samples (config.json, dataset/)")
    parser.add_argument("--starts", type=int, default=64, help="starting noises x_T (default 64)")
    parser.add_argument("--paths", type=int, default=8, help="noise paths from each x_T (default 8)")
    parser.add_argument("--eta", type=float, help="the sampler's eta (default: the run's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.starts < 2 or args.paths < 2:
        parser.error("--starts and --paths must each be at least 2")
    if args.eta is not None and not 0 <= args.eta <= 1:
        parser.error(f"--eta must be in [0, 1], got {args.eta}")
    print(json.dumps(noise_dependence(args.run, args.starts, args.paths, args.eta, args.seed)))


if __name__ == "__main__":
    main()
