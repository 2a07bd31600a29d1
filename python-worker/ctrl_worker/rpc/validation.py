"""Small checks of request fields shared by the RPCs; each raises INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .errors import invalid, shorten
from .limits import MAX_BATCH_SIZE, MAX_NAME_CHARS, MAX_RATE, at_most


def validate_seed(seed: int, field: str) -> int:
    if seed > 2**53 - 1:
        raise invalid(field, f"must be at most 2^53 - 1 (a safe integer in TypeScript), got {seed}")
    return seed


def finite(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise invalid(field, f"must be finite, got {value}")
    return float(value)


def positive(value: float, field: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise invalid(field, f"must be positive and finite, got {value}")
    return float(value)


def non_negative(value: float, field: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise invalid(field, f"must be non-negative and finite, got {value}")
    return float(value)


def rate(value: float, field: str, allow_zero: bool = False) -> float:
    """A learning rate, its scale or a weight decay: positive (or zero), at most MAX_RATE."""
    value = non_negative(value, field) if allow_zero else positive(value, field)
    if value > MAX_RATE:
        raise invalid(field, f"must be at most {MAX_RATE} (the worker's limit), got {value}")
    return value


def unit_interval(value: float, field: str) -> float:
    """A value in [0, 1), such as an Adam beta."""
    if not math.isfinite(value) or not 0 <= value < 1:
        raise invalid(field, f"must be in [0, 1), got {value}")
    return float(value)


def required(value: str, field: str, what: str) -> str:
    if not value:
        raise invalid(field, f"{what} is required")
    return value


def unique(names: Iterable[str], field: str, suffix: str = "") -> list[str]:
    """Non-empty, distinct names; `field` is the repeated field, e.g. "lora_target_modules", and
    `suffix` the name's path inside one entry, e.g. ".name"."""
    seen: dict[str, None] = {}  # a dict: ordered, and lookups stay O(1) on hostile lists
    for i, name in enumerate(names):
        if not name:
            raise invalid(f"{field}[{i}]{suffix}", "must not be empty")
        if len(name) > MAX_NAME_CHARS:
            raise invalid(f"{field}[{i}]{suffix}", f"at most {MAX_NAME_CHARS} characters, got {len(name):,}")
        if name in seen:
            raise invalid(f"{field}[{i}]{suffix}", f"{shorten(name)} is given twice")
        seen[name] = None
    return list(seen)


def batch_size(value: int, field: str = "batch_size") -> int:
    """Rows per model call (0: all at once)."""
    return at_most(value, MAX_BATCH_SIZE, field)
