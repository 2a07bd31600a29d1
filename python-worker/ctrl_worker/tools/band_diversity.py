"""`python -m ctrl_worker.tools.band_diversity DATASET_DIR [--k 64]`: how varied a sharp target is.

CTRL's reward with a small KL weight aims at p_pre(x) p(y | x)^k with a large k. For a class that
is a band of an oracle's values (JPEG bytes between two quartiles), p(y | x) peaks at the band's
middle, so the target keeps the members near the middle. Does that alone make the samples alike?
This tool answers it on a default dataset folder (the pre-trained model's own samples, labelled
by the oracle; labels.csv has COLUMN and COLUMN_value): per class, the 8x8-thumbnail diversity
(mean pairwise distance, as src/ctrl/evaluate.ts computes it) of the k members nearest the band's
median, and of k random members, each over that of all members. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

THUMBNAIL_SIZE = 8


def thumbnail(path: Path, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """Area-averaged size x size x channels cells in [0, 1] (cells of floor(h / size) pixels)."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    cell_h, cell_w = pixels.shape[0] // size, pixels.shape[1] // size
    cropped = pixels[: cell_h * size, : cell_w * size]
    return cropped.reshape(size, cell_h, size, cell_w, 3).mean(axis=(1, 3)).reshape(-1)


def mean_pairwise_distance(rows: np.ndarray) -> float:
    if len(rows) < 2:
        return float("nan")
    distances = np.sqrt(((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1))
    return float(distances[np.triu_indices(len(rows), 1)].mean())


def band_diversity(folder: Path, k: int = 64, seed: int = 0) -> dict:
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{folder / 'labels.csv'}: no rows")
    value_columns = [c for c in rows[0] if c.endswith("_value")]
    if not value_columns or value_columns[0].removesuffix("_value") not in rows[0]:
        raise SystemExit(f"{folder / 'labels.csv'}: expected a label column and its COLUMN_value beside it (a default dataset)")
    column = value_columns[0].removesuffix("_value")
    thumbs = np.stack([thumbnail(folder / row["file"]) for row in rows])
    labels = np.array([int(row[column]) for row in rows])
    values = np.array([float(row[f"{column}_value"]) for row in rows])
    rng = np.random.default_rng(seed)
    classes = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        band = values[members]
        median = float(np.median(band))
        take = min(k, len(members))
        nearest = members[np.argsort(np.abs(band - median), kind="stable")[:take]]
        random = rng.choice(members, take, replace=False)
        whole = mean_pairwise_distance(thumbs[members])
        classes.append(
            {
                "class": c,
                "members": int(len(members)),
                "band": [float(band.min()), float(band.max())],
                "median": median,
                "nearest_span": [float(values[nearest].min()), float(values[nearest].max())],
                "nearest_vs_all": mean_pairwise_distance(thumbs[nearest]) / whole,
                "random_vs_all": mean_pairwise_distance(thumbs[random]) / whole,
            }
        )
    return {"dataset": str(folder), "column": column, "k": k, "classes": classes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.tools.band_diversity", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="a default dataset folder (a run's dataset/)")
    parser.add_argument("--k", type=int, default=64, help="members kept near each band's median (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.k < 2:
        parser.error("--k must be at least 2")
    print(json.dumps(band_diversity(args.dataset, args.k, args.seed)))


if __name__ == "__main__":
    main()
