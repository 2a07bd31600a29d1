"""Helpers shared by the tests of controls, rollouts and rewards."""

from __future__ import annotations

import torch

from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb

TIMESTEPS = [900, 600, 300, 100]


def label_messages(**fields: list[int]) -> list[pb.LabelValues]:
    return [pb.LabelValues(field=name, values=values) for name, values in fields.items()]


def perturb(control, scale: float = 0.02, seed: int = 1) -> None:
    """Moves every LoRA and embedding weight off its initial value, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in control.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))


def sample(backbone, denoiser=None, reference=None, num_samples: int = 3, seed: int = 5, eta: float = 1.0, timesteps=TIMESTEPS):
    from ctrl_worker.sampler import Trajectory

    trajectory = Trajectory(backbone, num_samples, seed, denoiser=denoiser, reference=reference)
    for i, t in enumerate(timesteps):
        trajectory.step(t, timesteps[i + 1] if i + 1 < len(timesteps) else -1, eta)
    return trajectory
