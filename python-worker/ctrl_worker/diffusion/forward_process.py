"""The diffusion forward process q(x_t | x_0) at per-row timesteps, for the training objectives of
the baselines: the denoising loss of classifier-free guidance and the noise-aware classifier."""

from __future__ import annotations

import torch

from .backbones import Backbone
from ..rpc.errors import invalid


def row_timesteps(timesteps: list[int], num_rows: int, num_train_timesteps: int, field: str = "timesteps") -> torch.Tensor:
    """One timestep per row, each in [0, num_train_timesteps), as int64."""
    if len(timesteps) != num_rows:
        raise invalid(field, f"expected {num_rows} timesteps (one per row), got {len(timesteps)}")
    for i, t in enumerate(timesteps):
        if not 0 <= t < num_train_timesteps:
            raise invalid(f"{field}[{i}]", f"must be in [0, {num_train_timesteps}), got {t}")
    return torch.tensor(timesteps, dtype=torch.long)


def alphas_at(backbone: Backbone, timesteps: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Cumulative alphas a_t, float32 [n, 1, 1, 1], ready to broadcast over images."""
    return backbone.alphas_cumprod[timesteps.cpu()].float().to(device)[:, None, None, None]


def add_noise(backbone: Backbone, x0: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise, row by row."""
    alpha = alphas_at(backbone, timesteps, x0.device)
    return alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise


def draw_noise(shape: torch.Size | tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Standard normal noise from a CPU generator (the same draws on any device)."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
