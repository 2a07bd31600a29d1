"""The parts a latent text-to-image backbone (the Stable Diffusion family) adds to its UNet: the
VAE that maps latents to images, and the CLIP text encoder and tokenizer that turn prompts into
the UNet's cross-attention context.

Images leave the worker decoded: a reward or an oracle sees pixels, never latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..rpc.errors import invalid, is_out_of_memory, precondition
from ..rpc.limits import MAX_PROMPT_CHARS

# The sub-folders model_index.json must name for a text-to-image pipeline.
REQUIRED_PARTS = ("vae", "text_encoder", "tokenizer")


@dataclass
class TextToImageParts:
    vae: torch.nn.Module  # AutoencoderKL
    text_encoder: torch.nn.Module  # CLIPTextModel
    tokenizer: object  # CLIPTokenizer
    scaling_factor: float
    image_shape: tuple[int, int, int]  # [C, H, W] of decoded images

    def num_parameters(self) -> int:
        return sum(p.numel() for m in (self.vae, self.text_encoder) for p in m.parameters())

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str], device: torch.device) -> torch.Tensor:
        """[n, max_length, hidden] CLIP last hidden states, padded to the tokenizer's length as in
        StableDiffusionPipeline.encode_prompt (prompts past it are truncated, as there)."""
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(device))[0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images in [-1, 1] (unclamped), float32; differentiable."""
        vae_dtype = next(self.vae.parameters()).dtype
        images = self.vae.decode((latents / self.scaling_factor).to(vae_dtype)).sample
        return images.float()


def is_text_to_image(root: Path, model_index: dict) -> bool:
    return all(part in model_index for part in REQUIRED_PARTS)


def load_parts(root: Path, dtype: torch.dtype, device: torch.device, latent_shape: tuple[int, int, int]) -> TextToImageParts:
    """Loads the VAE, text encoder and tokenizer of a pipeline folder (safetensors only)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the worker's stderr is for its own log lines

    for part in ("vae", "text_encoder"):
        if not any((root / part).glob("*.safetensors")):
            raise precondition(
                "source", f"{root / part} has no .safetensors weights; pickled .bin checkpoints are refused (they can run code)"
            )
    try:
        vae = AutoencoderKL.from_pretrained(root / "vae", use_safetensors=True, torch_dtype=dtype)
        text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", use_safetensors=True, dtype=dtype)
        tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
    except Exception as error:  # corrupt or mismatched files raise many types
        if is_out_of_memory(error):
            raise
        raise invalid("source", f"could not load the text-to-image parts in {root}: {type(error).__name__}: {error}") from error
    if int(vae.config.latent_channels) != latent_shape[0]:
        raise invalid(
            "source", f"the VAE makes {vae.config.latent_channels}-channel latents but the UNet takes {latent_shape[0]} channels"
        )
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    vae.to(device).eval().requires_grad_(False)
    text_encoder.to(device).eval().requires_grad_(False)
    return TextToImageParts(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scaling_factor=float(vae.config.scaling_factor),
        image_shape=(int(vae.config.out_channels), latent_shape[1] * scale, latent_shape[2] * scale),
    )


def validate_prompts(prompts: list[str], num_samples: int, field: str = "prompts") -> list[str]:
    """One prompt for all samples or one per sample; none means the empty (unconditional) prompt."""
    if not prompts:
        return [""] * num_samples
    if len(prompts) not in (1, num_samples):
        raise invalid(field, f"give one prompt for all samples or one per sample ({num_samples}), got {len(prompts)}")
    for i, prompt in enumerate(prompts):
        if len(prompt) > MAX_PROMPT_CHARS:
            raise invalid(f"{field}[{i}]", f"at most {MAX_PROMPT_CHARS} characters, got {len(prompt)}")
    return list(prompts) * num_samples if len(prompts) == 1 else list(prompts)
