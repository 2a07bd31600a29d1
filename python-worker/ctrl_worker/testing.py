"""Tiny models built from configs, for tests: the same save/load path users take, in seconds.

`python -m ctrl_worker.testing tiny-backbone DIR [--seed N]` writes a diffusers pipeline folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def make_tiny_backbone(folder: str | Path, seed: int = 0, sample_size: int = 16, prediction_type: str = "epsilon") -> Path:
    """A random-weight UNet2DModel (~0.1M parameters) with a DDPM scheduler, saved with
    save_pretrained exactly as a real pixel-space checkpoint is."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=8,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type, clip_sample=True)
    folder = Path(folder)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder, safe_serialization=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    tiny = sub.add_parser("tiny-backbone", help="write a tiny random UNet2DModel pipeline folder")
    tiny.add_argument("folder")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--sample-size", type=int, default=16)
    tiny.add_argument("--prediction-type", default="epsilon", choices=["epsilon", "v_prediction", "sample"])
    args = parser.parse_args()
    print(make_tiny_backbone(args.folder, args.seed, args.sample_size, args.prediction_type))


if __name__ == "__main__":
    main()
