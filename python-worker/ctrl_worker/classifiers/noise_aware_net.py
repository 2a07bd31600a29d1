"""The noise-aware classifier p(y | x_t, t) of classifier guidance, built as guided-diffusion's
(Dhariwal & Nichol 2021) is: residual blocks with GroupNorm (per-sample statistics, the same at
every noise level, where BatchNorm would pool them over all levels) and a timestep embedding
(sinusoidal features through an MLP) that scales and shifts each block's normalised activations.

Like the clean "detail-convnet", its stem also sees each image's fine detail (image minus its 3x3
blur), with a fixed gain instead of a batch statistic (whose value would depend on the noise
level): JPEG size is fine detail, which at small t survives the noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_TIME_FEATURES = 64
# Fine detail is one or two orders of magnitude weaker than the colours it sits on.
DETAIL_GAIN = 10.0


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


def timestep_features(timesteps: torch.Tensor, dim: int = _TIME_FEATURES) -> torch.Tensor:
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ScaleShiftBlock(nn.Module):
    """GroupNorm, SiLU, conv; GroupNorm scaled and shifted by the timestep embedding, SiLU, conv; plus a skip."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, embedding_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.embedding = nn.Linear(embedding_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Identity() if stride == 1 and in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1, stride=stride)
        )

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.embedding(F.silu(embedding))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class NoiseAwareResNet(nn.Module):
    """Stem [x, gain * detail(x)] -> blocks of width w, 2w, 4w (strides 1, 2, 2), each taking the
    timestep embedding -> GroupNorm, SiLU, global average pool -> linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int):
        super().__init__()
        embedding_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(_TIME_FEATURES, embedding_dim), nn.SiLU(), nn.Linear(embedding_dim, embedding_dim))
        self.stem = nn.Conv2d(2 * in_channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            [
                ScaleShiftBlock(width, width, 1, embedding_dim),
                ScaleShiftBlock(width, 2 * width, 2, embedding_dim),
                ScaleShiftBlock(2 * width, 4 * width, 2, embedding_dim),
            ]
        )
        self.out_norm = nn.GroupNorm(_groups(4 * width), 4 * width)
        self.fc = nn.Linear(4 * width, num_classes)

    def features(self, x: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features [n, 4w]; without timesteps, t = 0 (a clean image)."""
        if timesteps is None:
            timesteps = torch.zeros(x.shape[0], device=x.device)
        embedding = self.time_mlp(timestep_features(timesteps))
        blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        h = self.stem(torch.cat([x, DETAIL_GAIN * (x - blur)], dim=1))
        for block in self.blocks:
            h = block(h, embedding)
        return F.silu(self.out_norm(h)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.features(x, timesteps))
