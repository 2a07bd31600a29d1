"""Pre-trained diffusion backbones in diffusers format: from a local folder or a Hugging Face id.

Two families: pixel-space UNet2DModel checkpoints (a pipeline folder or a bare UNet folder), and
latent text-to-image pipelines of the Stable Diffusion family (UNet2DConditionModel + VAE + CLIP
text encoder and tokenizer). Both are sampled with the same DDIM/DDPM step on the UNet's space.
Only safetensors weights are read: pickled `.bin` checkpoints can run code when loaded.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..rpc.errors import invalid, is_out_of_memory, not_found, precondition, shorten
from ..rpc.files import read_json_object, user_path
from ..rpc.limits import MAX_TRAIN_TIMESTEPS, shape_within
from .latent import TextToImageParts, is_text_to_image, load_parts

# "owner/name" or "name", as on the Hugging Face hub.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_PIXEL_UNET, _TEXT_UNET = "UNet2DModel", "UNet2DConditionModel"


@dataclass
class Backbone:
    source: str
    unet: torch.nn.Module
    alphas_cumprod: torch.Tensor  # float64, on the CPU: read as Python floats in the step math
    final_alpha_cumprod: float  # the clean end of the chain (timestep -1)
    prediction_type: str
    clip_range: float | None
    sample_shape: tuple[int, int, int]  # the UNet's space: pixels, or latents
    dtype: torch.dtype
    device: torch.device
    # Latent text-to-image backbones only: VAE, text encoder, tokenizer.
    text_to_image: TextToImageParts | None = None
    # Mixed precision for the UNet calls (None: run in the weights' dtype).
    autocast: torch.dtype | None = None
    steps_offset: int = 0  # the scheduler's offset of DDIM timesteps (Stable Diffusion: 1)
    content_hash: str = ""  # sha256 of the files that define the model (see content_hash)
    # Held while the UNet runs: a control switches adapters and labels on the shared module.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    def model_class(self) -> str:
        return type(self.unet).__name__

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """[C, H, W] of the images the backbone's samples decode to."""
        return self.sample_shape if self.text_to_image is None else self.text_to_image.image_shape

    def num_parameters(self) -> int:
        extra = 0 if self.text_to_image is None else self.text_to_image.num_parameters()
        return sum(p.numel() for p in self.unet.parameters()) + extra

    def to_images(self, x: torch.Tensor, batch_size: int = 0) -> torch.Tensor:
        """Samples in the UNet's space -> images in model range [-1, 1] (VAE-decoded for latents)."""
        parts = self.text_to_image
        if parts is None:
            return x
        with self._autocast():
            return in_batches(lambda rows: parts.decode(x[rows]), x.shape[0], batch_size)

    def _autocast(self):
        enabled = self.autocast is not None
        return torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16, enabled=enabled)

    def alpha_cumprod(self, timestep: int) -> float:
        """Cumulative alpha at `timestep`; timestep -1 is the clean end of the chain."""
        return self.final_alpha_cumprod if timestep < 0 else float(self.alphas_cumprod[timestep])

    def predict_eps(self, x_t: torch.Tensor, timestep: int, context: torch.Tensor | None = None) -> torch.Tensor:
        """The network's output at x_t, converted to a noise prediction, in float32. `context` is
        the text encoder's output, one row per sample, for a text-to-image backbone."""
        t = torch.full((x_t.shape[0],), timestep, device=self.device, dtype=torch.long)
        with self._autocast():
            if self.text_to_image is None:
                out = self.unet(x_t.to(self.dtype), t).sample.float()
            else:
                if context is None:
                    raise ValueError("a text-to-image backbone needs the prompt embeddings")
                out = self.unet(x_t.to(self.dtype), t, encoder_hidden_states=context.to(self.dtype)).sample.float()
        alpha = self.alpha_cumprod(timestep)
        if self.prediction_type == "epsilon":
            return out
        if self.prediction_type == "v_prediction":
            return alpha**0.5 * out + (1 - alpha) ** 0.5 * x_t
        # "sample": the network predicts x0 itself.
        return (x_t - alpha**0.5 * out) / (1 - alpha) ** 0.5



def in_batches(run: Callable[[slice], torch.Tensor], n: int, batch_size: int) -> torch.Tensor:
    """run(rows) over consecutive row slices of at most batch_size rows (0: all at once), concatenated."""
    if batch_size <= 0 or batch_size >= n:
        return run(slice(0, n))
    return torch.cat([run(slice(first, min(first + batch_size, n))) for first in range(0, n, batch_size)])


def resolve_source(source: str, revision: str) -> Path:
    """A local directory as it is, or a Hugging Face id resolved through the local cache/hub."""
    if not source:
        raise invalid("source", "a local directory or a Hugging Face model id is required")
    path = user_path(source, "source")
    if path.exists():
        if not path.is_dir():
            raise invalid("source", f"{shorten(source)} is a file; expected a diffusers model directory")
        return path
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_like_path or not _HUB_ID.match(source):
        raise not_found("source", f"no directory {shorten(source)}, and it is not a Hugging Face model id either")
    return _download(source, revision)


def _download(repo_id: str, revision: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision or None,
            allow_patterns=["*.json", "*.safetensors", "*.txt"],
            local_files_only=offline,
        )
    except LocalEntryNotFoundError as error:
        hint = (
            "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
            if offline
            else "it is not in the local Hugging Face cache and the hub could not be reached"
        )
        raise not_found("source", f"model {repo_id!r}: {hint} ({type(error).__name__})") from error
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise not_found("source", f"model {repo_id!r} (revision {revision or 'main'}): {error}") from error
    except OSError as error:
        raise not_found("source", f"model {repo_id!r} could not be fetched: {error}") from error
    return Path(folder)


# The files a diffusers model folder is made of (what `_download` fetches): configs, weights, vocabularies.
_MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".txt")


def content_hash(root: Path) -> str:
    """sha256 over the model's files (relative path, size, bytes) in path order, symlinks followed
    (a Hugging Face snapshot links into its blob store); hidden files and folders are skipped."""
    digest = hashlib.sha256()
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix in _MODEL_FILE_SUFFIXES and p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    for path in files:
        relative = path.relative_to(root).as_posix()
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path, field: str) -> dict:
    return read_json_object(path, field)


def _check_unet_config(config: dict, where: Path) -> None:
    """The config values that size the UNet's tensors, checked before diffusers allocates them."""
    size = config.get("sample_size", 0)
    sides = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
    channels = config.get("in_channels", 4)
    if not (isinstance(sides, list) and len(sides) == 2 and all(isinstance(d, int) for d in sides) and isinstance(channels, int)):
        raise invalid("source", f"{where}: 'sample_size' must be an integer or two, and 'in_channels' an integer")
    try:
        shape_within([channels, *sides], "source")
    except Exception as error:
        raise invalid("source", f"{where}: in_channels and sample_size {error}") from error


def _load_module(load, what: str):
    """A diffusers/transformers from_pretrained call; corrupt or mismatched files and config values
    it rejects raise many types (OSError, SafetensorError, ValueError, TypeError, ...)."""
    try:
        return load()
    except Exception as error:  # noqa: BLE001 - anything but memory is the folder's fault
        if is_out_of_memory(error):
            raise
        raise invalid("source", f"could not load {what}: {type(error).__name__}: {shorten(str(error), 1000, quote=False)}") from error


def _layout(root: Path) -> tuple[Path, Path, dict | None]:
    """(unet folder, scheduler config file, model_index or None) for a pipeline folder or a bare
    UNet folder."""
    model_index = None
    if (root / "model_index.json").is_file():
        model_index = _read_json(root / "model_index.json", "source")
        unet_dir, scheduler = root / "unet", root / "scheduler" / "scheduler_config.json"
    else:
        unet_dir, scheduler = root, root / "scheduler_config.json"
    if not (unet_dir / "config.json").is_file():
        raise invalid("source", f"{root} holds no diffusers UNet (expected {unet_dir / 'config.json'})")
    if not scheduler.is_file():
        raise invalid("source", f"{root} holds no noise scheduler (expected {scheduler})")
    return unet_dir, scheduler, model_index


def supported_dtypes(device: torch.device) -> list[torch.dtype]:
    if device.type == "cuda":
        return [torch.float32, torch.float16, torch.bfloat16]
    return [torch.float32, torch.bfloat16]


def supported_autocast(device: torch.device) -> list[torch.dtype]:
    return [torch.float16, torch.bfloat16] if device.type == "cuda" else [torch.bfloat16]


def load_backbone(
    source: str, revision: str, dtype: torch.dtype, device: torch.device, autocast: torch.dtype | None = None
) -> Backbone:
    if dtype not in supported_dtypes(device):
        raise invalid("dtype", f"{dtype} is not supported on {device}; use one of {supported_dtypes(device)}")
    if autocast is not None and autocast not in supported_autocast(device):
        raise invalid("autocast", f"{autocast} autocast is not supported on {device}; use one of {supported_autocast(device)}")
    root = resolve_source(source, revision)
    unet_dir, scheduler_file, model_index = _layout(root)
    unet_config = _read_json(unet_dir / "config.json", "source")
    model_class = unet_config.get("_class_name", "")
    if not isinstance(model_class, str):
        raise invalid("source", f"{unet_dir / 'config.json'}: '_class_name' must be a string")
    text_to_image = model_index is not None and is_text_to_image(root, model_index)
    expected = _TEXT_UNET if text_to_image else _PIXEL_UNET
    if model_class != expected:
        kind = "a text-to-image pipeline (vae, text_encoder, tokenizer)" if text_to_image else "a pixel-space model"
        raise precondition(
            "source",
            f"model class {shorten(model_class)} is not supported as {kind}; supported: {_PIXEL_UNET} (pixel space) and "
            f"{_TEXT_UNET} with vae, text_encoder and tokenizer (Stable Diffusion 1.x/2.x layout)",
        )
    if not any(unet_dir.glob("*.safetensors")):
        raise precondition(
            "source", f"{unet_dir} has no .safetensors weights; pickled .bin checkpoints are refused (they can run code)"
        )

    import diffusers
    from diffusers import DDIMScheduler

    _check_unet_config(unet_config, unet_dir / "config.json")
    scheduler_config = _read_json(scheduler_file, "source")
    steps = scheduler_config.get("num_train_timesteps", 1000)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_TRAIN_TIMESTEPS:
        raise invalid("source", f"{scheduler_file}: 'num_train_timesteps' must be an integer in [1, {MAX_TRAIN_TIMESTEPS}], got {shorten(steps)}")
    # DDIMScheduler fills in the defaults the checkpoint's config leaves out (clip_sample, ...).
    scheduler = _load_module(lambda: DDIMScheduler.from_config(scheduler_config), f"the noise scheduler from {scheduler_file}")
    unet = _load_module(
        lambda: getattr(diffusers, model_class).from_pretrained(unet_dir, use_safetensors=True, torch_dtype=dtype),
        f"the UNet weights in {unet_dir}",
    )
    config = scheduler.config
    if config.thresholding:
        raise precondition("source", "schedulers with dynamic thresholding are not supported")
    if not isinstance(config.prediction_type, str) or config.prediction_type not in {"epsilon", "v_prediction", "sample"}:
        raise precondition("source", f"unknown prediction_type {shorten(config.prediction_type)}")

    unet.to(device).eval().requires_grad_(False)
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    sample_shape = (int(unet.config.in_channels), int(height), int(width))
    parts = load_parts(root, dtype, device, sample_shape) if text_to_image else None
    if parts is not None and config.clip_sample:
        raise precondition("source", "a latent backbone's scheduler must not clip samples (clip_sample is for pixels)")
    try:
        clip_range = float(config.clip_sample_range) if config.clip_sample else None
        steps_offset = int(config.steps_offset)
    except (TypeError, ValueError) as error:
        raise invalid("source", f"{scheduler_file}: clip_sample_range and steps_offset must be numbers: {error}") from error
    return Backbone(
        source=source,
        unet=unet,
        alphas_cumprod=scheduler.alphas_cumprod.to(torch.float64),
        final_alpha_cumprod=float(scheduler.final_alpha_cumprod),
        prediction_type=config.prediction_type,
        clip_range=clip_range,
        sample_shape=sample_shape,
        dtype=dtype,
        device=device,
        text_to_image=parts,
        autocast=autocast,
        steps_offset=steps_offset,
        content_hash=content_hash(root),
    )

