"""Pre-train the embedded default backbone: a small pixel-space DDPM on `synthetic` images.

    python -m ctrl_worker.tools.pretrain --out models/default [--steps N --seed 0 --threads 2 --save-every 1000]
    python -m ctrl_worker.tools.pretrain --out models/default --grids-only --grids docs/images

Everything is seeded (weights, data, batches, timesteps, noise), so a run on the same machine and
thread count reproduces the same weights. The EMA of the weights is saved, in diffusers format
(a DDPMPipeline folder, safetensors only), with a `training.json` beside it that records how it
was made; `--save-every` writes it along the way too, so a long run that is stopped keeps its
last save, and `--stop-after N` stops part way through the planned schedule (the embedded
default is the first 2500 steps of a 5000-step schedule: `make pretrain`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from ..data import synthetic

if TYPE_CHECKING:  # diffusers is imported where it is used: `--help` stays fast
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

DEFAULT_STEPS = 5000
SAMPLE_SIZE = 32

# "small" is the embedded default: every CTRL rollout, every offline sample and every evaluation
# pays for its UNet calls, so the model is sized for speed on a CPU. Convolutions at 32x32 dominate
# the cost, so the full-resolution level is 16 channels wide (64 at 8x8, with attention only in the
# middle block): about 2.8x the throughput of the earlier 32-64-64 model with attention at 8x8,
# which lets it see twice as many images (160 000) in pre-training. 8 norm groups, since 32 would be
# instance norm.
# The timestep embedding (and so a control's label embedding, which is added to it) scales and
# shifts each block's normalised activations ("scale_shift", guided-diffusion's AdaGN): added
# before a GroupNorm of 2 channels per group, as the default does, a per-channel bias is mostly
# normalised away. `label_gradient` measures it: |d mean luma / d label embedding| is 5.7 luma
# levels per unit of norm for this model without AdaGN (12000 steps), 8.1 for the earlier
# 32-channel model and 14.8 with AdaGN (2500 steps); without it, even a perfect brightness reward
# moved the per-label mean luma by under 15 levels in 32 optimiser steps. "tiny" is for tests.
UNET_CONFIGS: dict[str, dict[str, Any]] = {
    "small": dict(
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=32,
        resnet_time_scale_shift="scale_shift",
    ),
    "tiny": dict(
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ),
}


class PretrainError(Exception):
    """A refused request (bad output folder): reported without a traceback."""


@dataclass(frozen=True)
class PretrainConfig:
    out: Path
    steps: int = DEFAULT_STEPS
    batch_size: int = 64
    seed: int = 0
    threads: int = 2
    train_images: int = 40000
    lr: float = 2e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999  # a time constant of 1000 steps
    size: str = "small"
    overwrite: bool = False
    log_every: int = 50
    save_every: int = 0  # 0: only at the end
    stop_after: int = 0  # stop after this many steps of the `steps`-step schedule (0: run it all)

    @property
    def last_step(self) -> int:
        return self.stop_after or self.steps


# --- model, schedule, data -----------------------------------------------------------------------


def build_unet(size: str = "small") -> UNet2DModel:
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=SAMPLE_SIZE, in_channels=3, out_channels=3, **UNET_CONFIGS[size])


def build_scheduler() -> DDPMScheduler:
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon", clip_sample=True)


def training_set(n: int, seed: int) -> torch.Tensor:
    """The synthetic images as uint8 [n, 3, 32, 32]: a quarter of the memory of floats."""
    return torch.from_numpy(synthetic.generate_images(n, seed)).permute(0, 3, 1, 2).contiguous()


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range the scheduler clips predicted samples to."""
    return images.float() / 127.5 - 1


def learning_rate(step: int, config: PretrainConfig) -> float:
    """Linear warm-up (Adam's early steps are noisy), then a cosine decay to 10% by the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class Ema:
    """An exponential moving average of a model's weights: smoother samples than the last step's."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # Ramped decay: early on the average follows the fast-moving weights instead of the init.
        decay = min(self.decay, (1 + step) / (10 + step))
        for averaged, current in zip(self.model.parameters(), model.parameters()):
            averaged.lerp_(current, 1 - decay)


# --- the output folder ---------------------------------------------------------------------------


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a folder that holds anything unless --overwrite is given and it holds a model."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PretrainError(f"{out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise PretrainError(f"{out} is not empty; pass --overwrite to replace the model in it")
    if not (out / "model_index.json").is_file():
        raise PretrainError(f"{out} is not empty and holds no model (no model_index.json); refusing to replace it")


def save_model(unet: torch.nn.Module, out: Path, overwrite: bool, summary: dict[str, Any]) -> None:
    """Write the pipeline to a sibling temporary folder, then swap it in: never half a model."""
    from diffusers import DDPMPipeline

    check_out(out, overwrite)  # again: the folder may have changed during a long run
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    DDPMPipeline(unet=unet, scheduler=build_scheduler()).save_pretrained(staging, safe_serialization=True)
    (staging / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)
    else:
        staging.rename(out)


# --- training ------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch's CPU thread count for a block, restored after it (tests share the process)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train(config: PretrainConfig) -> dict[str, Any]:
    """Train, save the EMA weights into config.out, and return what training.json records."""
    check_out(config.out, config.overwrite)  # fail before the long part, not after it
    with _torch_threads(config.threads):
        return _train(config)


def noisy_batch(
    data: torch.Tensor, alphas_cumprod: torch.Tensor, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, t, noise): random images noised to random timesteps, all drawn from the seeded generator."""
    index = torch.randint(len(data), (batch_size,), generator=generator)
    x0 = to_model_range(data[index])
    t = torch.randint(len(alphas_cumprod), (batch_size,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    alpha = alphas_cumprod[t].view(-1, 1, 1, 1)
    return alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise, t, noise


def _train(config: PretrainConfig) -> dict[str, Any]:
    started = time.perf_counter()

    data = training_set(config.train_images, config.seed)
    _log(f"{config.train_images} synthetic images in {time.perf_counter() - started:.1f}s")

    torch.manual_seed(config.seed)
    unet = build_unet(config.size).train()
    alphas_cumprod = build_scheduler().alphas_cumprod.float()
    ema = Ema(unet, config.ema_decay)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    parameters = sum(p.numel() for p in unet.parameters())
    _log(f"UNet2DModel '{config.size}': {parameters:,} parameters; {config.steps} steps of batch {config.batch_size}")

    losses: list[float] = []
    loop_started = time.perf_counter()
    for step in range(config.last_step):
        x_t, t, noise = noisy_batch(data, alphas_cumprod, config.batch_size, generator)
        loss = torch.nn.functional.mse_loss(unet(x_t, t).sample, noise)  # the epsilon objective
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        ema.update(unet, step)
        losses.append(loss.item())

        done = step + 1
        if config.save_every and done % config.save_every == 0 and done < config.last_step:
            summary = _summary(config, parameters, float(np.mean(losses[-100:])), time.perf_counter() - started, done)
            save_model(ema.model, config.out, True, summary)
            _log(f"saved {config.out} at step {done}")
        if done % config.log_every == 0 or done == config.last_step:
            elapsed = time.perf_counter() - loop_started
            rate = done / elapsed
            _log(
                f"step {done}/{config.steps}  loss {np.mean(losses[-config.log_every:]):.4f}  "
                f"lr {learning_rate(step, config):.1e}  {rate:.2f} steps/s  "
                f"elapsed {_duration(elapsed)}  left {_duration((config.last_step - done) / rate)}"
            )

    summary = _summary(config, parameters, float(np.mean(losses[-100:])), time.perf_counter() - started, config.last_step)
    # A periodic save made the folder ours already; otherwise the caller's --overwrite decides.
    save_model(ema.model, config.out, config.overwrite or config.save_every > 0, summary)
    _log(f"saved {config.out} ({_folder_size(config.out) / 1e6:.1f} MB) in {_duration(summary['seconds'])}")
    return summary


def _summary(config: PretrainConfig, parameters: int, final_loss: float, seconds: float, done: int) -> dict[str, Any]:
    """What training.json records: enough to rerun the training and to know what it gave."""
    return {
        "seed": config.seed,
        "steps": done,
        "planned_steps": config.steps,
        "batch_size": config.batch_size,
        "final_loss": final_loss,  # the mean of the last 100 batches: one batch is too noisy
        "seconds": round(seconds, 1),
        "threads": config.threads,
        "parameters": parameters,
        "model": {"class": "UNet2DModel", "size": config.size, **UNET_CONFIGS[config.size]},
        "optimizer": {"name": "AdamW", "lr": config.lr, "weight_decay": 0.0, "warmup_steps": config.warmup_steps,
                      "schedule": "cosine to 10%", "grad_clip": 1.0},
        "ema_decay": config.ema_decay,
        "saved_weights": "ema",
        "data": {"generator": "ctrl_worker.data.synthetic.generate_images", "seed": config.seed,
                 "train_images": config.train_images, "size": SAMPLE_SIZE, "range": "[-1, 1]",
                 "families": {family.__name__: weight for family, weight in synthetic.FAMILIES},
                 "skimage_sources": [*synthetic.PHOTOS, *synthetic.TEXTURES]},
        "versions": {"torch": torch.__version__, "diffusers": _diffusers_version(), "numpy": np.__version__},
    }


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


# --- grids for the README ------------------------------------------------------------------------


def image_grid(images: np.ndarray, columns: int = 8, scale: int = 3) -> Image.Image:
    """[n, H, W, 3] uint8 -> one image, row-major, upscaled by nearest neighbour to keep pixels sharp."""
    n, height, width, _ = images.shape
    rows = math.ceil(n / columns)
    canvas = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * height : (r + 1) * height, c * width : (c + 1) * width] = image
    grid = Image.fromarray(canvas)
    return grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST)


# The sampler of ctrl's default experiment config: the README's grids and spreads show what CTRL starts from.
GRID_STEPS, GRID_ETA, GRID_SPACING = 10, 0.5, "trailing"


def load_for_sampling(model_dir: Path) -> tuple[UNet2DModel, DDIMScheduler]:
    """The saved UNet (frozen, eval mode) and a DDIMScheduler from its DDPM scheduler config."""
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(model_dir, subfolder="unet", use_safetensors=True).eval().requires_grad_(False)
    config = DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler").config
    return unet, DDIMScheduler.from_config(config, timestep_spacing=GRID_SPACING)


def ddim_loop(unet: UNet2DModel, scheduler: DDIMScheduler, n: int, steps: int, eta: float, seed: int) -> torch.Tensor:
    """n model-range samples [n, 3, H, W] from seeded noise, 256 per UNet call."""
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(seed)
    size = unet.config.sample_size
    x = torch.randn((n, 3, size, size), generator=generator)
    for t in scheduler.timesteps:
        eps = torch.cat([unet(chunk, t).sample for chunk in x.split(256)])
        x = scheduler.step(eps, t, x, eta=eta, generator=generator).prev_sample
    return x


@torch.no_grad()
def sample_ddim(model_dir: Path, n: int = 64, steps: int = GRID_STEPS, eta: float = GRID_ETA, seed: int = 0) -> np.ndarray:
    """n samples as uint8 [n, 32, 32, 3], with diffusers' own DDIMScheduler (an independent check
    of the saved folder: not the worker's sampler)."""
    unet, scheduler = load_for_sampling(model_dir)
    x = ddim_loop(unet, scheduler, n, steps, eta, seed)
    return ((x.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def mean_luma(images: torch.Tensor) -> torch.Tensor:
    """Mean Rec.601 luma in [0, 255] of model-range images [n, 3, H, W] (differentiable)."""
    pixels = (images.clamp(-1, 1) + 1) * 127.5
    return (0.299 * pixels[:, 0] + 0.587 * pixels[:, 1] + 0.114 * pixels[:, 2]).mean()


def luma_with_label_offset(
    unet: UNet2DModel, scheduler: DDIMScheduler, offset: torch.Tensor, n: int = 16,
    steps: int = GRID_STEPS, eta: float = GRID_ETA, seed: int = 0,
) -> torch.Tensor:
    """Mean luma of n samples (fixed noise) with `offset` added to the timestep embedding, as a
    control adds its label's row; differentiable in `offset`."""
    hook = unet.time_embedding.register_forward_hook(lambda module, inputs, output: output + offset)
    try:
        return mean_luma(ddim_loop(unet, scheduler, n, steps, eta, seed))
    finally:
        hook.remove()


def label_gradient(model_dir: Path, n: int = 16, seed: int = 0) -> torch.Tensor:
    """d mean luma / d e at e = 0 (see luma_with_label_offset). Its norm is how far a control's
    label embedding, CTRL's only per-label parameter, can steer this model per unit of norm: a
    backbone that hardly responds cannot be told apart by label in a CPU-sized budget of steps."""
    unet, scheduler = load_for_sampling(model_dir)
    offset = torch.zeros(unet.time_embedding.linear_2.out_features, requires_grad=True)
    (gradient,) = torch.autograd.grad(luma_with_label_offset(unet, scheduler, offset, n=n, seed=seed), offset)
    return gradient


def oracle_spread(images: np.ndarray) -> dict[str, list[float]]:
    """p10 / p50 / p90 of the shipped oracles over uint8 images [n, H, W, 3]: JPEG bytes at quality
    95 (PIL, as the paper; ctrl's sharp encoder writes 18 bytes less) and mean Rec.601 luma."""
    sizes = np.array([synthetic.jpeg_size(image) for image in images])
    luma = (images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).mean(axis=(1, 2))
    return {name: np.percentile(values, [10, 50, 90]).round(1).tolist() for name, values in (("jpeg_bytes", sizes), ("luma", luma))}


def save_grids(model_dir: Path, out_dir: Path, n: int = 64, seed: int = 0) -> tuple[Path, Path]:
    """default-training-images.png (the first n training images) and default-samples.png
    (n DDIM samples with ctrl's default sampler: 10 steps, trailing, eta 0.5, this seed), 8 per row, 3x nearest."""
    info_file = model_dir / "training.json"
    data_seed = json.loads(info_file.read_text())["data"]["seed"] if info_file.is_file() else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    training_path, samples_path = out_dir / "default-training-images.png", out_dir / "default-samples.png"
    image_grid(synthetic.generate_images(n, data_seed)).save(training_path)
    image_grid(sample_ddim(model_dir, n=n, seed=seed)).save(samples_path)
    return training_path, samples_path


# --- command line --------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.tools.pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the pipeline folder to write (or read, with --grids-only)")
    parser.add_argument("--steps", type=_positive_int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=_positive_int, default=64)
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seeds the weights, the data and the batches")
    parser.add_argument("--threads", type=_positive_int, default=2, help="torch CPU threads")
    parser.add_argument("--train-images", type=_positive_int, default=40000)
    parser.add_argument("--lr", type=_positive_float, default=2e-3)
    parser.add_argument("--warmup-steps", type=_non_negative_int, default=200)
    parser.add_argument("--ema-decay", type=_fraction, default=0.999)
    parser.add_argument("--stop-after", type=_non_negative_int, default=0, help="stop after N steps of the --steps schedule (0: all)")
    parser.add_argument("--save-every", type=_non_negative_int, default=0, help="also save every N steps (0: at the end only)")
    parser.add_argument("--size", choices=sorted(UNET_CONFIGS), default="small", help="'tiny' is for tests")
    parser.add_argument("--log-every", type=_positive_int, default=50)
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    parser.add_argument("--grids", type=Path, help="then write the README grids into this folder")
    parser.add_argument("--grids-only", action="store_true", help="skip training: grids from the model in --out")
    parser.add_argument("--spread-samples", type=_positive_int, default=1000, help="samples whose oracle spread is printed with --grids")
    args = parser.parse_args(argv)
    if args.stop_after > args.steps:
        parser.error(f"--stop-after {args.stop_after}: must be at most --steps ({args.steps})")
    if args.grids_only and args.grids is None:
        parser.error("--grids-only needs --grids DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.grids_only:
            config = PretrainConfig(
                out=args.out, steps=args.steps, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
                train_images=args.train_images, lr=args.lr, warmup_steps=args.warmup_steps, size=args.size,
                overwrite=args.overwrite, log_every=args.log_every, ema_decay=args.ema_decay, save_every=args.save_every, stop_after=args.stop_after,
            )
            summary = train(config)
            print(json.dumps({k: summary[k] for k in ("steps", "final_loss", "seconds", "parameters")}))
        elif not (args.out / "model_index.json").is_file():
            raise PretrainError(f"{args.out} holds no model (no model_index.json)")
        if args.grids is not None:
            with _torch_threads(args.threads):
                for path in save_grids(args.out, args.grids):
                    print(path)
                spread = oracle_spread(sample_ddim(args.out, n=args.spread_samples, seed=1))
                print(json.dumps({"samples": args.spread_samples, "sampler": f"DDIM {GRID_STEPS} steps ({GRID_SPACING}), eta {GRID_ETA}", **spread}))
                print(json.dumps({"label_sensitivity_luma_per_unit_norm": round(float(label_gradient(args.out).norm()), 2)}))
    except PretrainError as error:
        print(f"pretrain: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
