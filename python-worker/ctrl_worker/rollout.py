"""The CTRL training rollout (the official code's `ddim_step_KL` loop), kept differentiable.

The sampler runs the augmented model with the same seeded noise as `Trajectory`. At a step whose
`grad_steps` flag is set, the network calls are recorded by autograd (optionally checkpointed);
at the others they run under no_grad (truncated back-propagation). The latent chain itself is
never detached: the DDIM update is differentiable in x_t. Each step also runs the pre-trained
reference (adapters off, no labels) from the same x_t and adds the KL between the two Gaussian
transitions. x0 and the per-sample KL keep their graphs until `Backward` consumes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from .control import Control, Labels
from .errors import invalid
from .sampler import Trajectory

Progress = Callable[[int, int], None]


@dataclass
class Rollout:
    control: Control
    labels: Labels
    x0: torch.Tensor  # [n, C, H, W] in model space, with its graph
    kl: torch.Tensor  # [n], summed over steps, with its graph
    kl_per_step: list[float]
    grad_steps_kept: int
    seconds: float
    version: int  # the control's version when rolled out

    @property
    def num_samples(self) -> int:
        return int(self.x0.shape[0])

    def close(self) -> None:
        # Drop the graphs now: they hold every kept step's activations.
        self.x0 = self.kl = torch.empty(0)


def check_grad_steps(grad_steps: list[bool], num_timesteps: int) -> list[bool]:
    if len(grad_steps) != num_timesteps:
        raise invalid("grad_steps", f"expected {num_timesteps} flags (one per timestep), got {len(grad_steps)}")
    return list(grad_steps)


def rollout(
    control: Control,
    labels: Labels,
    num_samples: int,
    timesteps: list[int],
    eta: float,
    seed: int,
    grad_steps: list[bool],
    checkpointing: bool,
    progress: Progress | None = None,
) -> Rollout:
    """Runs the augmented sampler; timesteps, eta, seed and labels are already validated."""
    backbone = control.backbone
    started = time.perf_counter()
    trajectory = Trajectory(backbone, num_samples, seed)
    kl_per_step: list[float] = []
    with backbone.lock, torch.enable_grad():
        for i, t in enumerate(timesteps):
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            eps = _network(control, trajectory.x, t, labels, grad_steps[i], checkpointing)
            eps_ref = None  # a deterministic step's KL is 0: no reference call needed
            if trajectory.stochastic(t, prev, eta):
                eps_ref = _network(control, trajectory.x, t, None, grad_steps[i], checkpointing)
            _, kl = trajectory.advance(t, prev, eta, eps, eps_ref)
            kl_per_step.append(0.0 if kl is None else float(kl.detach().mean()))
            if progress is not None:
                progress(i + 1, len(timesteps))
    return Rollout(
        control=control,
        labels=labels,
        x0=trajectory.x,
        kl=trajectory.kl,
        kl_per_step=kl_per_step,
        grad_steps_kept=sum(grad_steps),
        seconds=time.perf_counter() - started,
        version=control.version,
    )


def _network(
    control: Control, x: torch.Tensor, timestep: int, labels: Labels | None, keep: bool, checkpointing: bool
) -> torch.Tensor:
    """One UNet call: the augmented model (labels) or the frozen reference (None). A kept step is
    recorded by autograd (for the reference only x carries a gradient: its weights are frozen)."""
    if not keep:
        with torch.no_grad():
            return control.eps(x, timestep, labels)
    if checkpointing:
        # control.eps enters the adapter/label context itself, so the recomputation in the backward
        # pass runs the same model as this forward pass.
        return checkpoint(control.eps, x, timestep, labels, use_reentrant=False)
    return control.eps(x, timestep, labels)
