"""The boundary where user files are read: paths, text, JSON and images, each failure reported as
INVALID_ARGUMENT (NOT_FOUND for a missing file) naming the request field and the file.

Anything a file can hold (undecodable bytes, JSON nested 100,000 deep, numbers of 5,000 digits,
an image header claiming gigapixels) is the user's data, never a worker bug, and is reported here
where the field and the file are known.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from .errors import RequestError, exhausted, invalid, not_found, shorten
from .limits import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

# Linux limits: a path of PATH_MAX bytes, a name of NAME_MAX bytes.
_PATH_MAX, _NAME_MAX = 4096, 255


def user_path(value: str, field: str) -> Path:
    """A path from a request, checked for what the OS would refuse with an unhelpful error."""
    if "\0" in value:
        raise invalid(field, f"must not contain a NUL byte, got {shorten(value)}")
    encoded = os.fsencode(value)
    if len(encoded) > _PATH_MAX:
        raise invalid(field, f"path of {len(encoded)} bytes is longer than {_PATH_MAX}")
    for part in encoded.split(b"/"):
        if len(part) > _NAME_MAX:
            raise invalid(field, f"a file name in it is {len(part)} bytes, longer than {_NAME_MAX}: {shorten(value)}")
    return Path(value).expanduser()


def os_error(error: OSError, field: str, what: str, reading: bool = True) -> RequestError:
    """An OSError met while reading or writing `what` (a path, as the user knows it): a missing
    file to read is NOT_FOUND, a full disk RESOURCE_EXHAUSTED, anything else a bad path."""
    message = f"{shorten(what, quote=False)}: {error.strerror or error}"
    if error.errno == errno.ENOENT and reading:
        return not_found(field, message)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return exhausted(field, message)
    return invalid(field, message)


def resolve_inside(root: Path, name: str, field: str, where: str) -> Path:
    """root/name with symlinks resolved, which must stay inside root (itself resolved); `where`
    (e.g. "labels.csv line 3") prefixes the messages."""
    prefix = f"{where}: " if where else ""
    try:
        path = (root / user_path(name, field)).resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop (Python 3.11)
        raise invalid(field, f"{prefix}{shorten(name)} cannot be resolved: {error}") from error
    if not path.is_relative_to(root):
        raise invalid(field, f"{prefix}{shorten(name)} is outside the dataset folder {root} (symlinks included)")
    return path


def read_text(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise os_error(error, field, str(path)) from error
    except UnicodeDecodeError as error:
        raise invalid(field, f"{path} is not UTF-8 text: {error.reason} at byte {error.start}") from error


def parse_json(text: str, field: str, where: str) -> object:
    """json.loads, with what a hostile file can make it raise reported against `where`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid(field, f"{where} is not readable JSON: {error.msg} at line {error.lineno} column {error.colno}") from error
    except RecursionError as error:
        raise invalid(field, f"{where}: JSON nested too deeply") from error
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise invalid(field, f"{where}: {shorten(str(error))}") from error


def read_json_object(path: Path, field: str) -> dict:
    value = parse_json(read_text(path, field), field, str(path))
    if not isinstance(value, dict):
        raise invalid(field, f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def read_rgb_image(path: Path, field: str, where: str):
    """An image file as an RGB uint8 array [H, W, 3]; its size is checked from the header before
    any pixel is decoded."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                raise invalid(field, f"{where}: image is {width}x{height}; at most {MAX_IMAGE_SIDE} pixels a side")
            return np.asarray(image.convert("RGB"))
    except RequestError:
        raise
    # PIL reports broken files with many types: UnidentifiedImageError (an OSError),
    # DecompressionBombError, SyntaxError, EOFError, ValueError, struct.error (an Exception).
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise invalid(field, f"{where} is not a readable image: {shorten(str(error))}") from error
    except Exception as error:  # noqa: BLE001 - struct.error and friends from a truncated header
        if type(error).__module__ in {"struct", "zlib"}:
            raise invalid(field, f"{where} is not a readable image: {shorten(str(error))}") from error
        raise
