"""The condition c of a text-to-image backbone: prompt embeddings, the empty prompt's embeddings
for the unconditional branch, and the classifier-free guidance scale w.

eps = eps(x, "") + w * (eps(x, prompt) - eps(x, "")), as in StableDiffusionPipeline; w = 1 is the
conditional model alone (one branch). Pixel-space backbones are unconditional and take no prompt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .backbones import Backbone
from ..rpc.errors import invalid
from .latent import validate_prompts

# The official CTRL code and StableDiffusionPipeline's default.
DEFAULT_GUIDANCE_SCALE = 7.5
MAX_GUIDANCE_SCALE = 100.0


@dataclass(frozen=True)
class TextCondition:
    prompt_embeds: torch.Tensor  # [n, L, D]
    empty_embeds: torch.Tensor  # [n, L, D]: the unconditional branch's context
    guidance_scale: float

    @property
    def guided(self) -> bool:
        """Whether the unconditional branch is needed (w != 1)."""
        return self.guidance_scale != 1.0

    def combine(self, eps_unconditional: torch.Tensor | None, eps_conditional: torch.Tensor) -> torch.Tensor:
        if eps_unconditional is None:
            return eps_conditional
        return eps_unconditional + self.guidance_scale * (eps_conditional - eps_unconditional)


def parse_condition(
    backbone: Backbone, prompts: list[str], guidance_scale: float | None, num_samples: int, field: str = "text"
) -> TextCondition | None:
    """The request's prompts and guidance scale for this backbone (None for a pixel backbone)."""
    parts = backbone.text_to_image
    if parts is None:
        if prompts:
            raise invalid(f"{field}.prompts", f"{backbone.model_class} is an unconditional pixel-space model; it takes no prompts")
        if guidance_scale is not None:
            raise invalid(f"{field}.guidance_scale", f"{backbone.model_class} takes no prompts, so there is nothing to guide")
        return None
    scale = DEFAULT_GUIDANCE_SCALE if guidance_scale is None else float(guidance_scale)
    if not math.isfinite(scale) or not 0 <= scale <= MAX_GUIDANCE_SCALE:
        raise invalid(f"{field}.guidance_scale", f"must be in [0, {MAX_GUIDANCE_SCALE}], got {guidance_scale}")
    texts = validate_prompts(prompts, num_samples, f"{field}.prompts")
    # Each distinct prompt is encoded once; the same goes for the empty prompt.
    distinct = sorted(set(texts) | {""})
    embeds = parts.encode_prompts(distinct, backbone.device)
    index = {text: i for i, text in enumerate(distinct)}
    rows = torch.tensor([index[t] for t in texts], device=embeds.device)
    empty = embeds[index[""]].expand(num_samples, *embeds.shape[1:])
    return TextCondition(prompt_embeds=embeds[rows], empty_embeds=empty, guidance_scale=scale)
