"""Checkpoint folders: written atomically, read back with validation, weights in safetensors only.

A save writes every file into a new hidden sibling folder and renames it into place, so a failed
or interrupted save never leaves half a checkpoint and never damages an earlier one. Weights are
read with safetensors, never with torch.load (pickle can run code).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import invalid, not_found, precondition
from .validation import required

# Writes the checkpoint's files into the staging folder it is given.
Writer = Callable[[Path], None]


def save_folder(directory: str, overwrite: bool, write: Writer) -> list[str]:
    """Writes a checkpoint folder atomically; returns the names of the files it holds."""
    target = Path(required(directory, "directory", "a directory")).expanduser()
    if target.exists() and not target.is_dir():
        raise invalid("directory", f"{directory!r} is a file")
    if target.exists() and not overwrite:
        raise precondition("directory", f"{directory!r} already exists; set overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    tag = uuid.uuid4().hex[:8]
    staging = target.parent / f".{target.name}.staging-{tag}"
    staging.mkdir()
    try:
        write(staging)
        _fsync_files(staging)
        if target.exists():
            # Swap: the old folder goes only once the new one is complete.
            old = target.parent / f".{target.name}.old-{tag}"
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(os.listdir(target))


def _remove_leftovers(target: Path) -> None:
    """A save killed mid-write (SIGKILL, the OOM killer) leaves its hidden staging or old folder
    beside the target; the next save of that target removes them. Their names are only ever ours."""
    prefixes = (f".{target.name}.staging-", f".{target.name}.old-")
    for name in os.listdir(target.parent):
        if name.startswith(prefixes):
            shutil.rmtree(target.parent / name, ignore_errors=True)


def _fsync_files(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    save_file({name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}, str(path), metadata=metadata)


def checkpoint_folder(directory: str) -> Path:
    folder = Path(required(directory, "directory", "a checkpoint directory")).expanduser()
    if not folder.is_dir():
        raise not_found("directory", f"no folder {directory!r}")
    return folder


def _checkpoint_file(folder: Path, name: str) -> Path:
    # The folder exists (else NOT_FOUND) but is not the checkpoint asked for: a bad argument.
    path = folder / name
    if not path.is_file():
        raise invalid("directory", f"{folder} has no {name}: it is not a checkpoint of this kind")
    return path


def read_json(folder: Path, name: str, expected_format: str) -> dict:
    """A checkpoint's JSON file, which must carry `"format": expected_format`."""
    path = _checkpoint_file(folder, name)
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise invalid("directory", f"{path} is not readable JSON: {error}") from error
    if not isinstance(value, dict):
        raise invalid("directory", f"{path} must hold a JSON object")
    if value.get("format") != expected_format:
        raise invalid("directory", f"{path} has format {value.get('format')!r}; expected {expected_format!r}")
    return value


def read_tensors(folder: Path, name: str) -> dict[str, torch.Tensor]:
    path = _checkpoint_file(folder, name)
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise invalid("directory", f"{path} is not a readable safetensors file: {error}") from error


def check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str) -> None:
    """Same names, shapes and dtypes as `expected` (the live model's tensors)."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        details = "; ".join(
            f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for label, names in (("missing", missing), ("unexpected", unexpected))
            if names
        )
        raise invalid("directory", f"{where} does not match the model: {details}")
    for name, tensor in tensors.items():
        want = expected[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise invalid(
                "directory",
                f"{where}: {name} is {list(tensor.shape)} {tensor.dtype}, the model needs {list(want.shape)} {want.dtype}",
            )


def json_field(config: dict, key: str, kind: type, where: str):
    """config[key], which must be of `kind` (bool is not a number here; an int is a float)."""
    value = config.get(key)
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        raise invalid("directory", f"{where}: {key!r} must be a {kind.__name__}, got {value!r}")
    return float(value) if kind is float else value
