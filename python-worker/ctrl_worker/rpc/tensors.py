"""Conversion between the contract's `Tensor` message and torch tensors, with validation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .errors import invalid
from .limits import MAX_TENSOR_DIMS
from ..gen.ctrl.v1 import worker_pb2 as pb

# dtype enum -> (torch dtype, numpy dtype used on the wire). bf16 travels as uint16 words.
_WIRE = {
    pb.DTYPE_FLOAT32: (torch.float32, np.dtype("<f4")),
    pb.DTYPE_FLOAT16: (torch.float16, np.dtype("<f2")),
    pb.DTYPE_BFLOAT16: (torch.bfloat16, np.dtype("<u2")),
    pb.DTYPE_UINT8: (torch.uint8, np.dtype("u1")),
    pb.DTYPE_INT32: (torch.int32, np.dtype("<i4")),
    pb.DTYPE_INT64: (torch.int64, np.dtype("<i8")),
}
_BY_TORCH = {torch_dtype: enum for enum, (torch_dtype, _) in _WIRE.items()}


def torch_dtype(enum_value: int, field: str, default: torch.dtype | None = None) -> torch.dtype:
    if enum_value == pb.DTYPE_UNSPECIFIED and default is not None:
        return default
    if enum_value not in _WIRE:
        names = ", ".join(pb.DType.Name(v) for v in _WIRE)
        raise invalid(field, f"unsupported dtype {enum_value}; expected one of {names}")
    return _WIRE[enum_value][0]


def dtype_enum(dtype: torch.dtype) -> int:
    return _BY_TORCH[dtype]


def from_proto(
    message: pb.Tensor, field: str, expected_shape: tuple[int | None, ...] | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Decodes a Tensor message; raises INVALID_ARGUMENT naming `field` when it is malformed. Shape
    (None: any size >= 1 in that place) and dtype are checked before any byte is decoded."""
    dtype_given = torch_dtype(message.dtype, f"{field}.dtype")
    if dtype is not None and dtype_given != dtype:
        raise invalid(f"{field}.dtype", f"must be {pb.DType.Name(dtype_enum(dtype))}")
    if len(message.shape) > MAX_TENSOR_DIMS:
        raise invalid(f"{field}.shape", f"at most {MAX_TENSOR_DIMS} dimensions, got {len(message.shape)}")
    shape = tuple(int(d) for d in message.shape)
    if any(d < 0 for d in shape):
        raise invalid(f"{field}.shape", f"dimensions must be non-negative, got {list(shape)}")
    if expected_shape is not None and not _matches(shape, expected_shape):
        wanted = ["n >= 1" if d is None else d for d in expected_shape]
        raise invalid(f"{field}.shape", f"expected {wanted}, got {list(shape)}")
    wire = _WIRE[message.dtype][1]
    expected_bytes = math.prod(shape) * wire.itemsize
    if len(message.data) != expected_bytes:
        raise invalid(
            f"{field}.data",
            f"holds {len(message.data)} bytes but shape {list(shape)} of {pb.DType.Name(message.dtype)} needs {expected_bytes}",
        )
    array = np.frombuffer(message.data, dtype=wire).reshape(shape).copy()
    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if dtype_given == torch.bfloat16 else tensor


def _matches(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(d >= 1 if e is None else d == e for d, e in zip(shape, expected))


def to_proto(tensor: torch.Tensor) -> pb.Tensor:
    tensor = tensor.detach().to("cpu").contiguous()
    enum = dtype_enum(tensor.dtype)
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.uint16) if hasattr(torch, "uint16") else tensor.view(torch.int16)
    array = tensor.numpy().astype(_WIRE[enum][1], copy=False)
    return pb.Tensor(shape=list(tensor.shape), dtype=enum, data=array.tobytes())


def images_to_uint8(samples: torch.Tensor) -> torch.Tensor:
    """Model-space samples in [-1, 1], NCHW -> uint8 NHWC, rounded as PIL would save them."""
    scaled = (samples.detach().float() / 2 + 0.5).clamp(0, 1) * 255
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()


# Image chunks stay well under any message limit.
_CHUNK_BYTES = 1 << 20


def image_chunks(images: torch.Tensor) -> Iterator[pb.ImageChunk]:
    """uint8 images [n, height, width, channels] as ImageChunk messages of about 1 MiB each."""
    per_image = max(1, images[0].numel()) if images.shape[0] else 1
    per_chunk = max(1, _CHUNK_BYTES // per_image)
    for first in range(0, images.shape[0], per_chunk):
        yield pb.ImageChunk(first_index=first, images=to_proto(images[first : first + per_chunk]))


def uint8_to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]: the range a diffusion model's samples live in."""
    return images.float() / 127.5 - 1


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Runs the block on a private RNG stream seeded with `seed` (the CPU's, plus the CUDA device's
    when `device` is one), so seeded initialisation does not disturb or depend on other RNG use."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
