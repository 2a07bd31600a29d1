"""Hostile inputs a client or a file on disk can hold, shared by the boundary tests and the fuzz test."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def small_png(path: Path, value: int = 40) -> None:
    Image.fromarray(np.full((6, 8, 3), value, dtype=np.uint8)).save(path)


# labels files (name, bytes) that must each be refused with INVALID_ARGUMENT naming the file.
HOSTILE_LABELS = {
    "undecodable.csv": b"file,a\n\xff\xfe\x00bad,1\n",
    "deep.jsonl": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "list.jsonl": b"[1, 2, 3]\n",
    "bigint.jsonl": b'{"file": "a.png", "a": 99999999999999999999999999}\n',
    "hugeint.jsonl": b'{"file": "a.png", "a": ' + b"9" * 5000 + b"}\n",
    "bigint.csv": b"file,a\na.png,99999999999999999999999999\n",
    "field.csv": b'file,a\n"' + b"x" * 200_000 + b'",1\n',
    "badjson.jsonl": b"{nope\n",
    "nonstring.jsonl": b'{"file": 3, "a": 1}\n',
}


def hostile_dataset(folder: Path) -> dict[str, str]:
    """Writes hostile files into `folder` (a dataset folder); returns {labels_file: what it tests}."""
    small_png(folder / "a.png")
    small_png(folder / "b.png", 200)
    for name, content in HOSTILE_LABELS.items():
        (folder / name).write_bytes(content)
    (folder / "bomb.png").write_bytes(png_header(30000, 30000))
    (folder / "garbage.png").write_bytes(b"\x89PNG not really")
    (folder / "bomb.csv").write_text("file,a\na.png,0\nbomb.png,1\n")
    (folder / "garbage.csv").write_text("file,a\na.png,0\ngarbage.png,1\n")
    outside = folder.parent / f"{folder.name}-outside.csv"
    outside.write_text("file,a\na.png,0\nb.png,1\n")
    (folder / "escape.csv").symlink_to(outside)
    (folder / "escape-image.csv").write_text("file,a\na.png,0\nlink.png,1\n")
    (folder / "link.png").symlink_to(folder.parent)
    return {name: name for name in [*HOSTILE_LABELS, "bomb.csv", "garbage.csv", "escape.csv", "escape-image.csv"]}


# Paths the OS refuses in unhelpful ways: a NUL byte, an over-long name, a path through a file.
def hostile_paths(tmp: Path) -> list[str]:
    regular = tmp / "regular-file"
    regular.write_text("x")
    return ["a\0b", str(tmp / ("n" * 300)), "/" + "d/" * 3000, str(regular / "below"), "/proc/ctrl-save-target", ""]
