"""Models built from configs, for tests and benchmarks: the same save/load path users take.

`python -m ctrl_worker.tools.testing tiny-backbone DIR [--seed N]` writes a tiny pixel-space pipeline;
`tiny-text-to-image DIR` a tiny Stable-Diffusion-layout pipeline (UNet2DConditionModel,
AutoencoderKL, CLIP text encoder and tokenizer); `sd15-random DIR` the full Stable Diffusion 1.5
architecture with random weights (for timings, which need no trained weights).
"""

from __future__ import annotations

import argparse
import json
import tempfile
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


# Architecture of each text-to-image size: UNet, VAE and text encoder settings.
_TEXT_TO_IMAGE = {
    "tiny": {
        "unet": dict(
            sample_size=8,
            layers_per_block=1,
            block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=16,
            attention_head_dim=4,
            norm_num_groups=8,
        ),
        "vae": dict(
            block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            layers_per_block=1,
            norm_num_groups=8,
            sample_size=16,
        ),
        "text": dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16),
    },
    # runwayml/stable-diffusion-v1-5's configs.
    "sd15": {
        "unet": dict(
            sample_size=64,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
            norm_num_groups=32,
        ),
        "vae": dict(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            norm_num_groups=32,
            sample_size=512,
        ),
        "text": dict(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77
        ),
    },
}


def _byte_level_tokenizer(max_length: int):
    """A CLIPTokenizer whose vocabulary is the 256 byte symbols (with and without the end-of-word
    mark) and no merges: real tokenisation code, a vocabulary small enough to build offline."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab.write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
        merges.write_text("#version: 0.2\n")
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=max_length)


def make_text_to_image(folder: str | Path, size: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """A random-weight Stable-Diffusion-layout pipeline saved with save_pretrained (safetensors)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    spec = _TEXT_TO_IMAGE[size]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(in_channels=4, out_channels=4, **spec["unet"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, scaling_factor=0.18215, **spec["vae"])
    text = spec["text"]
    tokenizer = _byte_level_tokenizer(text["max_position_embeddings"])
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408 if size == "sd15" else len(tokenizer),
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **text,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder = Path(folder)
    if dtype != torch.float32:
        pipeline.to(dtype=dtype)
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.tools.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    tiny = sub.add_parser("tiny-backbone", help="write a tiny random UNet2DModel pipeline folder")
    tiny.add_argument("folder")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--sample-size", type=int, default=16)
    tiny.add_argument("--prediction-type", default="epsilon", choices=["epsilon", "v_prediction", "sample"])
    for name, help_text in (
        ("tiny-text-to-image", "write a tiny random Stable-Diffusion-layout pipeline folder"),
        ("sd15-random", "write the Stable Diffusion 1.5 architecture with random weights (about 1 B parameters)"),
    ):
        text = sub.add_parser(name, help=help_text)
        text.add_argument("folder")
        text.add_argument("--seed", type=int, default=0)
        text.add_argument("--float16", action="store_true", help="save the weights in float16 (half the disk)")
    args = parser.parse_args()
    if args.command == "tiny-backbone":
        print(make_tiny_backbone(args.folder, args.seed, args.sample_size, args.prediction_type))
        return
    size = "tiny" if args.command == "tiny-text-to-image" else "sd15"
    print(make_text_to_image(args.folder, size, args.seed, torch.float16 if args.float16 else torch.float32))


if __name__ == "__main__":
    main()
