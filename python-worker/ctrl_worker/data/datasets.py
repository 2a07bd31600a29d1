"""Offline labelled datasets: a folder of images and a labels file, held in memory as uint8.

The labels file is CSV with a header row or JSON lines; each row names its image (path relative
to the folder) in the column `file`, and every other column holds integer class labels 0..K-1.
Problems are reported with the file, line and column they come from, so a user can fix the data.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..rpc.errors import invalid, not_found, shorten
from ..rpc.files import parse_json, read_rgb_image, read_text, resolve_inside, user_path
from ..rpc.limits import MAX_BATCH_SIZE, MAX_CLASSES, MAX_LABEL_FIELDS, MAX_DATASET_BYTES, MAX_DATASET_ROWS, count_at_most
from ..rpc.validation import unique

FILE_COLUMN = "file"
_DEFAULT_LABEL_FILES = ("labels.csv", "labels.jsonl")


@dataclass(frozen=True)
class LabelColumnInfo:
    name: str
    num_classes: int
    counts: list[int]


@dataclass
class Dataset:
    path: Path
    images: torch.Tensor  # uint8 [N, C, H, W], on the CPU
    labels: dict[str, torch.Tensor]  # int64 [N] per column
    columns: list[LabelColumnInfo]

    @property
    def size(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def column(self, name: str, field: str) -> LabelColumnInfo:
        for column in self.columns:
            if column.name == name:
                return column
        raise invalid(field, f"no label column {name!r} in this dataset; it has {', '.join(c.name for c in self.columns)}")

    def check_indices(self, indices: list[int], field: str) -> torch.Tensor:
        if not indices:
            raise invalid(field, "at least one row index is required")
        count_at_most(indices, MAX_BATCH_SIZE, field)
        for i, index in enumerate(indices):
            if index >= self.size:
                raise invalid(f"{field}[{i}]", f"must be below the dataset size {self.size}, got {index}")
        return torch.tensor(indices, dtype=torch.long)


@dataclass(frozen=True)
class _Row:
    line: int  # 1-based line in the labels file, for messages
    values: dict[str, object]


def load_dataset(path: str, labels_file: str, label_columns: list[str]) -> Dataset:
    if not path:
        raise invalid("path", "a dataset folder is required")
    folder = user_path(path, "path")
    if not folder.is_dir():
        raise not_found("path", f"no folder {shorten(path)}")
    folder = folder.resolve()
    labels_path = _labels_path(folder, labels_file)
    rows, columns = _read_rows(labels_path)
    where = labels_path.name
    if FILE_COLUMN not in columns:
        raise invalid("path", f"{where} has no {FILE_COLUMN!r} column (columns: {', '.join(columns) or 'none'})")
    if not rows:
        raise invalid("path", f"{where} has no rows: the dataset is empty")
    if len(rows) > MAX_DATASET_ROWS:
        raise invalid("path", f"{where} has {len(rows):,} rows; at most {MAX_DATASET_ROWS:,} (the worker's limit)")
    names = _select_columns(columns, unique(count_at_most(label_columns, MAX_LABEL_FIELDS, "label_columns"), "label_columns"), where)
    labels = {name: _parse_labels(rows, name, where) for name in names}
    infos = [_column_info(name, values, where) for name, values in labels.items()]
    images = _read_images(folder, rows, where)
    return Dataset(path=folder, images=images, labels=labels, columns=infos)


def _labels_path(folder: Path, labels_file: str) -> Path:
    """The labels file, resolved (symlinks too) inside the resolved dataset folder."""
    if labels_file:
        candidate = resolve_inside(folder, labels_file, "labels_file", "")
        if not candidate.is_file():
            raise not_found("labels_file", f"no file {shorten(labels_file)} in {folder}")
        if candidate.suffix.lower() not in {".csv", ".jsonl"}:
            raise invalid("labels_file", f"{shorten(labels_file)} must end in .csv or .jsonl")
        return candidate
    for name in _DEFAULT_LABEL_FILES:
        if (folder / name).is_file() or (folder / name).is_symlink():
            return resolve_inside(folder, name, "path", name)
    raise invalid("path", f"{folder} has no labels file (expected {' or '.join(_DEFAULT_LABEL_FILES)})")


def _read_rows(labels_path: Path) -> tuple[list[_Row], list[str]]:
    """Rows and the column names (CSV: the header; JSONL: every key, in order of appearance)."""
    text = read_text(labels_path, "path")
    if labels_path.suffix.lower() == ".jsonl":
        return _read_jsonl(text, labels_path.name)
    return _read_csv(text, labels_path.name)


def _read_csv(text: str, where: str) -> tuple[list[_Row], list[str]]:
    try:
        return _csv_rows(csv.reader(text.splitlines()), where)
    except csv.Error as error:  # e.g. a field larger than csv.field_size_limit()
        raise invalid("path", f"{where} is not valid CSV: {error}") from error


def _csv_rows(reader, where: str) -> tuple[list[_Row], list[str]]:
    header = next(reader, None)
    if header is None:
        raise invalid("path", f"{where} is empty; it needs a header row with a {FILE_COLUMN!r} column")
    header = [name.strip() for name in header]
    duplicated = {name for name in header if header.count(name) > 1}
    if duplicated:
        raise invalid("path", f"{where}: column {sorted(duplicated)[0]!r} appears twice in the header")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, e.g. at the end
        if len(cells) != len(header):
            raise invalid("path", f"{where} line {line}: {len(cells)} cells, but the header has {len(header)} columns")
        rows.append(_Row(line, {name: cell.strip() for name, cell in zip(header, cells)}))
    return rows, header


def _read_jsonl(text: str, where: str) -> tuple[list[_Row], list[str]]:
    rows, columns = [], []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        values = parse_json(raw, "path", f"{where} line {line}")
        if not isinstance(values, dict):
            raise invalid("path", f"{where} line {line}: expected a JSON object, got {type(values).__name__}")
        columns.extend(key for key in values if key not in columns)
        rows.append(_Row(line, values))
    return rows, columns


def _select_columns(columns: list[str], requested: list[str], where: str) -> list[str]:
    available = [name for name in columns if name != FILE_COLUMN]
    if not requested:
        if not available:
            raise invalid("path", f"{where} has no label columns besides {FILE_COLUMN!r}")
        if len(available) > MAX_LABEL_FIELDS:
            raise invalid("label_columns", f"{where} has {len(available):,} label columns; name at most {MAX_LABEL_FIELDS} to load")
        return available
    for i, name in enumerate(requested):
        if name not in available:
            raise invalid(f"label_columns[{i}]", f"no column {name!r} in {where}; its label columns: {', '.join(available) or 'none'}")
    return requested


def _parse_labels(rows: list[_Row], column: str, where: str) -> torch.Tensor:
    values = []
    for row in rows:
        if column not in row.values:
            raise invalid("path", f"{where} line {row.line}: no value for column {column!r}")
        value = _as_label(row.values[column])
        if value is None:
            raise invalid(
                "path",
                f"{where} line {row.line}, column {shorten(column)}: expected a class index 0, 1, 2, ..., "
                f"got {shorten(row.values[column])} (classes are below {MAX_CLASSES:,})",
            )
        values.append(value)
    return torch.tensor(values, dtype=torch.long)


def _as_label(value: object) -> int | None:
    """A class index below MAX_CLASSES from a CSV cell or a JSON value; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        value = int(value)
    if isinstance(value, int):
        return value if 0 <= value < MAX_CLASSES else None
    return None


def _column_info(name: str, values: torch.Tensor, where: str) -> LabelColumnInfo:
    num_classes = int(values.max()) + 1
    counts = torch.bincount(values, minlength=num_classes).tolist()
    if num_classes < 2:
        raise invalid("path", f"{where}, column {name!r}: every row has class 0; a label needs at least two classes")
    missing = [k for k, count in enumerate(counts) if count == 0]
    if missing:
        raise invalid(
            "path",
            f"{where}, column {name!r}: class {missing[0]} has no rows; classes must be 0..K-1 "
            f"(K = {num_classes}, the largest label + 1) with every class present",
        )
    return LabelColumnInfo(name, num_classes, counts)


def _read_images(folder: Path, rows: list[_Row], where: str) -> torch.Tensor:
    """The rows' images; `folder` is resolved, and every image must resolve inside it."""
    images: list[np.ndarray] = []
    first_name = ""
    for row in rows:
        name = row.values.get(FILE_COLUMN)
        line = f"{where} line {row.line}"
        if not isinstance(name, str) or not name:
            raise invalid("path", f"{line}: column {FILE_COLUMN!r} must name an image file")
        file = resolve_inside(folder, name, "path", line)
        if not file.is_file():
            raise invalid("path", f"{line}: image {shorten(name)} does not exist in {folder}")
        array = read_rgb_image(file, "path", f"{line}: {shorten(name)}")
        if images and array.shape != images[0].shape:
            raise invalid(
                "path",
                f"{line}: {shorten(name)} is {_size(array)} but {shorten(first_name)} is {_size(images[0])}; "
                "all images must have the same size",
            )
        if array.nbytes * len(rows) > MAX_DATASET_BYTES:
            raise invalid(
                "path", f"{where}: {len(rows):,} images of {_size(array)} exceed the worker's {MAX_DATASET_BYTES >> 30} GiB for a dataset"
            )
        first_name = first_name or name
        images.append(array)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _size(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"
