"""Checkpoint folders: written atomically, read back with validation, weights in safetensors only.

A save writes every file into a new hidden sibling folder and renames it into place, so a failed
or interrupted save never leaves half a checkpoint and never damages an earlier one. Overwriting
replaces only a folder that is empty or already a checkpoint of the same kind (its marker file
says so), so a mistyped path never deletes the user's files. Weights are read with safetensors,
never with torch.load (pickle can run code).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..rpc.errors import RequestError, invalid, not_found, precondition, shorten
from ..rpc.files import os_error, parse_json, read_text, user_path
from ..rpc.validation import required

# Writes the checkpoint's files into the staging folder it is given.
Writer = Callable[[Path], None]


@dataclass(frozen=True)
class Marker:
    """The JSON file that makes a folder a checkpoint of one kind: `file` holding "format": `format`."""

    file: str
    format: str


def save_folder(directory: str, overwrite: bool, write: Writer, marker: Marker) -> list[str]:
    """Writes a checkpoint folder atomically; returns the names of the files it holds."""
    target = user_path(required(directory, "directory", "a directory"), "directory")
    try:
        return _save(target, overwrite, write, marker)
    except OSError as error:  # a target under /proc, a path through a file, a read-only disk, ...
        raise os_error(error, "directory", f"cannot write {directory}", reading=False) from error


def _save(target: Path, overwrite: bool, write: Writer, marker: Marker) -> list[str]:
    if target.exists():
        if not target.is_dir():
            raise invalid("directory", f"{shorten(str(target))} is a file")
        if not overwrite:
            raise precondition("directory", f"{shorten(str(target))} already exists; set overwrite to replace it")
        _check_replaceable(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    tag = uuid.uuid4().hex[:8]
    staging = target.parent / f".{target.name[:200]}.staging-{tag}"
    staging.mkdir()
    try:
        write(staging)
        _fsync_files(staging)
        if target.exists():
            # Swap: the old folder goes only once the new one is complete.
            old = target.parent / f".{target.name[:200]}.old-{tag}"
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
    prefixes = (f".{target.name[:200]}.staging-", f".{target.name[:200]}.old-")
    for name in os.listdir(target.parent):
        if name.startswith(prefixes):
            shutil.rmtree(target.parent / name, ignore_errors=True)


def _check_replaceable(target: Path, marker: Marker) -> None:
    """Overwrite replaces an empty folder or a checkpoint of this kind with plain files only."""
    entries = list(target.iterdir())
    if not entries:
        return
    refuse = f"{shorten(str(target))} is not a {marker.format} checkpoint"
    if any(not entry.is_file() or entry.is_symlink() for entry in entries):
        raise precondition("directory", f"{refuse} (it holds folders or links); overwrite replaces only such checkpoints")
    marker_path = target / marker.file
    if not marker_path.is_file():
        raise precondition("directory", f"{refuse} (no {marker.file}); overwrite replaces only such checkpoints")
    try:
        value = parse_json(read_text(marker_path, "directory"), "directory", str(marker_path))
    except RequestError:
        value = None
    if not isinstance(value, dict) or value.get("format") != marker.format:
        raise precondition("directory", f"{refuse} ({marker.file} does not say so); overwrite replaces only such checkpoints")


def _fsync_files(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    save_file({name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}, str(path), metadata=metadata)


def checkpoint_folder(directory: str) -> Path:
    folder = user_path(required(directory, "directory", "a checkpoint directory"), "directory")
    if not folder.is_dir():
        raise not_found("directory", f"no folder {shorten(directory)}")
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
    value = parse_json(read_text(path, "directory"), "directory", str(path))
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
        raise invalid("directory", f"{where}: {key!r} must be a {kind.__name__}, got {shorten(value)}")
    return float(value) if kind is float else value
