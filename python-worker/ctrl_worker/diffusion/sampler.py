"""The DDIM / DDPM reverse step as a small pure function, and trajectories built on it.

DDPM ancestral sampling is DDIM with eta = 1 over consecutive timesteps (Song et al. 2021, eq. 16),
so one step function serves both. The math follows diffusers' DDIMScheduler.step exactly (a test
compares them), but returns the Gaussian transition's mean and standard deviation too: CTRL's KL
between the fine-tuned and the pre-trained transition needs them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .backbones import Backbone, in_batches
from ..rpc.errors import invalid, precondition

# (x_t, timestep, with_reference, batch_size) -> (model's noise prediction, reference's or None), float32.
Predictor = Callable[[torch.Tensor, int, bool, int], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class Transition:
    """x_prev = mean + std * noise."""

    mean: torch.Tensor
    std: float
    sample: torch.Tensor
    predicted_x0: torch.Tensor


def ddim_std(alpha_t: float, alpha_prev: float, eta: float) -> float:
    """sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))."""
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)
    return eta * math.sqrt(max(variance, 0.0))


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    alpha_t: float,
    alpha_prev: float,
    eta: float,
    noise: torch.Tensor | None,
    clip_range: float | None = None,
) -> Transition:
    """One reverse step from x_t given the predicted noise eps; alphas are cumulative products."""
    x0 = (x_t - math.sqrt(1 - alpha_t) * eps) / math.sqrt(alpha_t)
    if clip_range is not None:
        x0 = x0.clamp(-clip_range, clip_range)
    std = ddim_std(alpha_t, alpha_prev, eta)
    direction = math.sqrt(max(1 - alpha_prev - std**2, 0.0)) * eps
    mean = math.sqrt(alpha_prev) * x0 + direction
    if std > 0:
        if noise is None:
            raise ValueError("a step with eta > 0 needs noise")
        sample = mean + std * noise
    else:
        sample = mean
    return Transition(mean=mean, std=std, sample=sample, predicted_x0=x0)


def validate_eta(eta: float, field: str) -> float:
    if not math.isfinite(eta) or eta < 0 or eta > 1:
        raise invalid(field, f"must be in [0, 1], got {eta}")
    return float(eta)


def validate_timesteps(timesteps: list[int], num_train_timesteps: int, field: str) -> list[int]:
    if not timesteps:
        raise invalid(field, "at least one timestep is required")
    for i, t in enumerate(timesteps):
        if not 0 <= t < num_train_timesteps:
            raise invalid(f"{field}[{i}]", f"must be in [0, {num_train_timesteps}), got {t}")
        if i > 0 and t >= timesteps[i - 1]:
            raise invalid(f"{field}[{i}]", f"timesteps must strictly decrease, got {timesteps[i - 1]} then {t}")
    return list(timesteps)


@dataclass(frozen=True)
class Shard:
    """Rows [offset, offset + n) of one batch of `total` samples drawn from one seed (data
    parallel: each rank draws the whole batch's noise and keeps its rows)."""

    offset: int
    total: int


def validate_shard(offset: int, total: int, num_samples: int, max_samples: int) -> Shard | None:
    """A request's shard_offset/shard_total; None without sharding (total 0, or the whole batch)."""
    if total == 0:
        if offset != 0:
            raise invalid("shard_offset", f"needs shard_total (0 means no sharding), got offset {offset}")
        return None
    if total > max_samples:
        raise invalid("shard_total", f"at most {max_samples} samples per batch (the worker's --max-samples), got {total}")
    if total < num_samples:
        raise invalid("shard_total", f"must be at least num_samples ({num_samples}), got {total}")
    if offset + num_samples > total:
        raise invalid(
            "shard_offset",
            f"rows [{offset}, {offset + num_samples}) must lie within the batch of shard_total={total} samples",
        )
    if offset == 0 and total == num_samples:
        return None  # the whole batch: the same draws as no sharding
    return Shard(offset, total)


def transition_kl(model: Transition, reference: Transition) -> torch.Tensor:
    """Per-sample KL between two Gaussian transitions of equal isotropic std: the sum over all
    dimensions of (mean - mean_ref)^2 / (2 std^2); 0 at deterministic steps (std = 0)."""
    if model.std == 0:
        return torch.zeros(model.mean.shape[0], device=model.mean.device)
    return (model.mean - reference.mean).square().flatten(1).sum(1) / (2 * model.std**2)


class Trajectory:
    """A batch of samples on their way from noise to images, stepped one timestep at a time.

    All randomness comes from one CPU generator seeded once, drawn in a fixed order (x_T, then one
    noise tensor per stochastic step), so images do not depend on batch_size or on whether the
    loop runs in the worker (Sample) or in the orchestrator (StepTrajectory). With a `shard`, every
    draw has the whole batch's shape and the trajectory keeps its rows, so the shards of a batch
    hold exactly the noise of the batch drawn at once. `predict` defaults
    to the backbone itself; with `compute_kl`, each step also adds each sample's KL between the
    model's and the reference's transitions (same x_t, same noise) to `kl`.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_samples: int,
        seed: int,
        initial_noise: torch.Tensor | None = None,
        predict: Predictor | None = None,
        compute_kl: bool = False,
        shard: Shard | None = None,
    ):
        if shard is not None and initial_noise is not None:
            raise ValueError("a sharded trajectory draws its own initial noise")
        self.backbone = backbone
        self.predict = predict or _plain(backbone)
        self.compute_kl = compute_kl
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.shape = (num_samples, *backbone.sample_shape)
        self.drawn_shape = self.shape if shard is None else (shard.total, *backbone.sample_shape)
        self.rows = None if shard is None else slice(shard.offset, shard.offset + num_samples)
        if initial_noise is None:
            initial_noise = self._draw()
        self.x = initial_noise.to(device=backbone.device, dtype=torch.float32)
        self.kl = torch.zeros(num_samples, device=backbone.device)
        self.steps_taken = 0
        self.last_timestep: int | None = None
        self.finished = False
        self.seconds = 0.0

    def _draw(self) -> torch.Tensor:
        """The next draw of the generator: the whole batch's, cut to this trajectory's rows."""
        noise = torch.randn(self.drawn_shape, generator=self.generator, dtype=torch.float32)
        return noise if self.rows is None else noise[self.rows].contiguous()

    def _draw_noise(self) -> torch.Tensor:
        return self._draw().to(self.backbone.device)

    @torch.no_grad()
    def step(self, timestep: int, prev_timestep: int, eta: float, batch_size: int = 0) -> Transition:
        T = self.backbone.num_train_timesteps
        if self.finished:
            raise precondition("trajectory", "this trajectory already reached the clean sample (prev_timestep -1)")
        if not 0 <= timestep < T:
            raise invalid("timestep", f"must be in [0, {T}), got {timestep}")
        if self.last_timestep is not None and timestep >= self.last_timestep:
            raise invalid("timestep", f"must be below the previous step's timestep {self.last_timestep}, got {timestep}")
        if not -1 <= prev_timestep < timestep:
            raise invalid("prev_timestep", f"must be in [-1, timestep={timestep}), got {prev_timestep}")
        eta = validate_eta(eta, "eta")
        started = time.perf_counter()
        with self.backbone.lock:  # a control's adapters and labels live in the shared UNet
            # The KL is 0 at deterministic steps: no reference needed there.
            with_reference = self.compute_kl and self.stochastic(timestep, prev_timestep, eta)
            eps, eps_ref = self.predict(self.x, timestep, with_reference, batch_size)
        transition, _ = self.advance(timestep, prev_timestep, eta, eps, eps_ref)
        self.seconds += time.perf_counter() - started
        return transition

    def stochastic(self, timestep: int, prev_timestep: int, eta: float) -> bool:
        """Whether this step draws noise (std > 0); only such steps have a KL."""
        return ddim_std(self.backbone.alpha_cumprod(timestep), self.backbone.alpha_cumprod(prev_timestep), eta) > 0

    def advance(
        self, timestep: int, prev_timestep: int, eta: float, eps: torch.Tensor, eps_ref: torch.Tensor | None = None
    ) -> tuple[Transition, torch.Tensor | None]:
        """Moves x to the next timestep given the predicted noise; no checks, no grad policy of its
        own (a rollout keeps the graph). Returns the transition and, with eps_ref, the step's KL
        (None without: the caller leaves eps_ref out at deterministic steps, whose KL is 0)."""
        alpha_t = self.backbone.alpha_cumprod(timestep)
        alpha_prev = self.backbone.alpha_cumprod(prev_timestep)
        noise = self._draw_noise() if self.stochastic(timestep, prev_timestep, eta) else None
        clip = self.backbone.clip_range
        transition = ddim_step(self.x, eps, alpha_t, alpha_prev, eta, noise, clip)
        kl = None
        if eps_ref is not None:
            kl = transition_kl(transition, ddim_step(self.x, eps_ref, alpha_t, alpha_prev, eta, noise, clip))
            self.kl = self.kl + kl
        self.x = transition.sample
        self.steps_taken += 1
        self.last_timestep = timestep
        self.finished = prev_timestep == -1
        return transition, kl



def _plain(backbone: Backbone) -> Predictor:
    """The backbone alone (an unconditional pixel model)."""

    def predict(x: torch.Tensor, timestep: int, with_reference: bool, batch_size: int):
        if with_reference:
            raise ValueError("a plain backbone has no reference")
        return in_batches(lambda rows: backbone.predict_eps(x[rows], timestep), x.shape[0], batch_size), None

    return predict
