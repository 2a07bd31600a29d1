"""Small checks of request fields shared by the RPCs; each raises INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .errors import invalid


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
    seen: list[str] = []
    for i, name in enumerate(names):
        if not name:
            raise invalid(f"{field}[{i}]{suffix}", "must not be empty")
        if name in seen:
            raise invalid(f"{field}[{i}]{suffix}", f"{name!r} is given twice")
        seen.append(name)
    return seen
