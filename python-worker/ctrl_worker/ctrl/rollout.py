"""The CTRL training rollout (the official code's `ddim_step_KL` loop), kept differentiable.

The sampler runs the augmented model with the same seeded noise as `Trajectory` (a data-parallel
rank rolls out its shard of a batch: the batch's noise, its rows). At a step whose
`grad_steps` flag is set, the network calls are recorded by autograd (optionally checkpointed);
at the others they run under no_grad (truncated back-propagation). The latent chain itself is
never detached: the DDIM update is differentiable in x_t. Each stochastic step also runs the
pre-trained reference (adapters off, no labels) from the same x_t, in the same UNet call unless
asked otherwise (see branches.py), and adds the KL between the two Gaussian transitions. The
decoded images and the per-sample KL keep their graphs until `Backward` consumes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from ..diffusion.branches import StepModel
from .control import Control, Labels
from ..rpc.errors import invalid
from ..diffusion.sampler import Shard, Trajectory

Progress = Callable[[int, int], None]


@dataclass
class Rollout:
    control: Control
    labels: Labels
    images: torch.Tensor  # [n, C, H, W] in model range (VAE-decoded for latent backbones), with its graph
    kl: torch.Tensor  # [n], summed over steps, with its graph
    kl_per_step: list[float]
    grad_steps_kept: int
    unet_calls: int
    seconds: float
    version: int  # the control's version when rolled out

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    def close(self) -> None:
        # Drop the graphs now: they hold every kept step's activations.
        self.images = self.kl = torch.empty(0)


def check_grad_steps(grad_steps: list[bool], num_timesteps: int) -> list[bool]:
    if len(grad_steps) != num_timesteps:
        raise invalid("grad_steps", f"expected {num_timesteps} flags (one per timestep), got {len(grad_steps)}")
    return list(grad_steps)


def rollout(
    model: StepModel,
    num_samples: int,
    timesteps: list[int],
    eta: float,
    seed: int,
    grad_steps: list[bool],
    batch_size: int = 0,
    progress: Progress | None = None,
    shard: Shard | None = None,
) -> Rollout:
    """Runs the augmented sampler; `model` carries the control, labels, condition and how the UNet
    is called; timesteps, eta, seed, labels and shard are already validated. With a `shard`, the
    samples are those rows of the batch of shard.total samples drawn from `seed`."""
    control, labels = model.control, model.labels
    assert control is not None and labels is not None
    backbone = control.backbone
    started = time.perf_counter()
    trajectory = Trajectory(backbone, num_samples, seed, shard=shard)
    kl_per_step: list[float] = []
    unet_calls = 0
    chunks = 1 if batch_size <= 0 else -(-num_samples // batch_size)
    with backbone.lock, torch.enable_grad():
        for i, t in enumerate(timesteps):
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            with_reference = trajectory.stochastic(t, prev, eta)  # a deterministic step's KL is 0
            with contextlib.nullcontext() if grad_steps[i] else torch.no_grad():
                eps, eps_ref = model.predict(trajectory.x, t, with_reference, batch_size)
            unet_calls += chunks * model.unet_calls(with_reference)
            _, kl = trajectory.advance(t, prev, eta, eps, eps_ref)
            kl_per_step.append(0.0 if kl is None else float(kl.detach().mean()))
            if progress is not None:
                progress(i + 1, len(timesteps))
        images = _decode(model, trajectory.x, batch_size)
    return Rollout(
        control=control,
        labels=labels,
        images=images,
        kl=trajectory.kl,
        kl_per_step=kl_per_step,
        grad_steps_kept=sum(grad_steps),
        unet_calls=unet_calls,
        seconds=time.perf_counter() - started,
        version=control.version,
    )


def _decode(model: StepModel, x0: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Latents -> images for the reward (the VAE decoder is differentiable; checkpointed with the
    UNet calls, since at 512x512 its activations rival a UNet step's)."""
    backbone = model.backbone
    if backbone.text_to_image is None:
        return x0
    if model.checkpointing:
        return checkpoint(backbone.to_images, x0, batch_size, use_reentrant=False)
    return backbone.to_images(x0, batch_size)
