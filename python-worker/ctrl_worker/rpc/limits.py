"""Upper bounds on every request value that sizes an allocation, in one place.

Each is generous for real use (Stable Diffusion: 4x64x64 latents, 512x512 images, 1000 timesteps)
and checked before anything is allocated, so a hostile or mistyped value (10^7 classes, a width of
2000, a shape of 2^32) gets INVALID_ARGUMENT naming the field instead of gigabytes or an
allocator failure. GetInfo reports them (WorkerInfo.limits) under these names.
"""

from __future__ import annotations

from .errors import invalid

MAX_CLASSES = 100_000  # classes of a label field, a classifier, a dataset column
MAX_LABEL_FIELDS = 64  # label fields of one control
MAX_CLASSIFIER_WIDTH = 256  # base width w of a classifier (its widest layer has 4w channels)
MAX_CLASSIFIER_HEAD = 1 << 25  # (4 or 8) * width * num_classes: the linear head's weights (128 MiB)
MAX_CHANNELS = 64  # channels of an image or sample
MAX_IMAGE_SIDE = 4096  # pixels (or latent cells) per side
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_LORA_RANK = 256
MAX_LORA_TARGETS = 256  # entries of lora_target_modules
MAX_NAME_CHARS = 256  # a label field, a module, a column name
MAX_BATCH_SIZE = 4096  # batch_size fields, and rows (indices) of one request
MAX_TRAIN_TIMESTEPS = 10_000  # a scheduler's num_train_timesteps
MAX_TERMS = 64  # reward or guidance terms of one request
MAX_PROMPT_CHARS = 2000  # a CLIP tokenizer keeps 77 tokens anyway
MAX_SYNTHETIC_IMAGES = 100_000  # SyntheticImages holds the set in memory (3 KiB an image)
# Attack steps above this buy little robustness (Madry et al. use 7-10 on CIFAR) for their cost.
MAX_ADVERSARIAL_STEPS = 20
MAX_DATASET_ROWS = 1_000_000
MAX_DATASET_BYTES = 8 << 30  # uint8 pixels a dataset holds in memory
MAX_TENSOR_DIMS = 8
# Learning rates, their scale and weight decays: optimisers pass lr (times the decay) to torch as a
# float32 scalar, which overflows (a RuntimeError mid-step) long before a float32 field does.
MAX_RATE = 10

LIMITS = {
    "max_classes": MAX_CLASSES,
    "max_label_fields": MAX_LABEL_FIELDS,
    "max_classifier_width": MAX_CLASSIFIER_WIDTH,
    "max_classifier_head": MAX_CLASSIFIER_HEAD,
    "max_channels": MAX_CHANNELS,
    "max_image_side": MAX_IMAGE_SIDE,
    "max_image_pixels": MAX_IMAGE_PIXELS,
    "max_lora_rank": MAX_LORA_RANK,
    "max_lora_targets": MAX_LORA_TARGETS,
    "max_name_chars": MAX_NAME_CHARS,
    "max_batch_size": MAX_BATCH_SIZE,
    "max_train_timesteps": MAX_TRAIN_TIMESTEPS,
    "max_terms": MAX_TERMS,
    "max_prompt_chars": MAX_PROMPT_CHARS,
    "max_synthetic_images": MAX_SYNTHETIC_IMAGES,
    "max_adversarial_steps": MAX_ADVERSARIAL_STEPS,
    "max_dataset_rows": MAX_DATASET_ROWS,
    "max_dataset_bytes": MAX_DATASET_BYTES,
    "max_tensor_dims": MAX_TENSOR_DIMS,
    "max_rate": MAX_RATE,
}


def at_most(value: int, limit: int, field: str, what: str = "") -> int:
    if value > limit:
        raise invalid(field, f"{what or 'must be'} at most {limit:,} (the worker's limit), got {value:,}")
    return value


def count_at_most(items, limit: int, field: str):
    """A repeated field with at most `limit` entries."""
    if len(items) > limit:
        raise invalid(field, f"at most {limit:,} entries (the worker's limit), got {len(items):,}")
    return items


def shape_within(shape, field: str) -> tuple[int, ...]:
    """An image or sample shape [C, H, W] with every entry >= 1 and within the limits."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or any(d < 1 for d in shape):
        raise invalid(field, f"must be [channels, height, width] with every entry >= 1, got {list(shape)[:8]}")
    at_most(shape[0], MAX_CHANNELS, f"{field}[0]", "channels must be")
    for i in (1, 2):
        at_most(shape[i], MAX_IMAGE_SIDE, f"{field}[{i}]", "a side must be")
    return shape
