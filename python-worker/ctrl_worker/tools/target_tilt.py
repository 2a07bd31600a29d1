"""`python -m ctrl_worker.tools.target_tilt RUN_DIR [--kl-weights 1,3,10] [--confidence-cap 0.9]`:
what CTRL aims at.

CTRL's reward `log p(y | x0) - klWeight * KL / D` (D dimensions) is maximised by
p_pre(x) p(y | x)^g with g = D / klWeight; with a confidence cap c, by p_pre(x) min(p(y | x), c)^g.
The run's offline data are draws of p_pre (the pre-trained model's own samples), so that target
can be estimated without any fine-tuning: weigh sample i by p(y | x_i)^g (capped likewise) under
the run's calibrated reward classifier, normalised over all samples.
Per asked class y and per klWeight this prints (one JSON line):
- accuracy: the weight on samples whose oracle label is y (what a perfect optimiser would score);
- ess: the effective number of samples the target keeps, (sum w)^2 / sum w^2;
- thumbnail_vs_class, features_vs_class: the target's diversity (the expected distance between two
  of its draws, between 8x8 thumbnails and in the classifier's feature space, as the evaluation
  measures them) over that of the samples whose oracle label is y.
The classifier was trained on most of these samples, so accuracy is optimistic.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..classifiers.classifier import load_classifier, score
from .band_diversity import THUMBNAIL_SIZE

DEFAULT_KL_WEIGHTS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def pairwise_distances(rows: np.ndarray) -> np.ndarray:
    squared = (rows**2).sum(1)
    return np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * rows @ rows.T, 0))


def expected_distance(distances: np.ndarray, weights: np.ndarray) -> float:
    """E |x - x'| for two distinct draws from the weighted samples (weights sum to 1)."""
    return float(weights @ distances @ weights / max(1 - (weights**2).sum(), 1e-12))


def thumbnails(images: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """uint8 [n, H, W, 3] -> area-averaged size x size x 3 cells in [0, 1], flattened."""
    n, h, w, c = images.shape
    ch, cw = h // size, w // size
    cells = images[:, : ch * size, : cw * size].astype(np.float64) / 255
    return cells.reshape(n, size, ch, size, cw, c).mean(axis=(2, 4)).reshape(n, -1)


def read_run(run: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """The run's offline images (uint8 [n, H, W, 3]) and oracle labels."""
    labels_file = run / "dataset" / "labels.csv"
    with open(labels_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{labels_file}: no rows")
    columns = [c for c in rows[0] if c != "file" and not c.endswith("_value")]
    if len(columns) != 1:
        raise SystemExit(f"{labels_file}: expected one label column beside file, got {columns}")
    images = np.stack([np.asarray(Image.open(run / "dataset" / row["file"]).convert("RGB")) for row in rows])
    return images, np.array([int(row[columns[0]]) for row in rows]), columns[0]


def tilted_targets(
    log_p: np.ndarray,
    labels: np.ndarray,
    distances: dict[str, np.ndarray],
    dims: int,
    kl_weights: tuple[float, ...],
    confidence_cap: float = 1.0,
) -> list[dict]:
    """Per klWeight and class: the target's accuracy, effective sample size and diversity (one
    entry per matrix in `distances`, as NAME_vs_class), from log p(y | x_i) [n, K], capped at
    log(confidence_cap) as the reward caps it."""
    log_p = np.minimum(log_p, np.log(confidence_cap))
    rows = []
    for kl_weight in kl_weights:
        exponent = dims / kl_weight
        classes = []
        for y in range(log_p.shape[1]):
            members = (labels == y).astype(np.float64)
            if members.sum() < 2:
                raise SystemExit(f"class {y} has fewer than 2 samples")
            members /= members.sum()
            scaled = exponent * log_p[:, y]
            weights = np.exp(scaled - scaled.max())
            weights /= weights.sum()
            entry = {"class": y, "accuracy": float(weights[labels == y].sum()), "ess": float(1 / (weights**2).sum())}
            for name, d in distances.items():
                entry[f"{name}_vs_class"] = expected_distance(d, weights) / expected_distance(d, members)
            classes.append(entry)
        rows.append({"kl_weight": kl_weight, "exponent": exponent, "classes": classes})
    return rows


def target_tilt(run: Path, kl_weights: tuple[float, ...] = DEFAULT_KL_WEIGHTS, confidence_cap: float = 1.0) -> dict:
    images, labels, column = read_run(run)
    classifier = load_classifier(str(run / "classifier"), torch.device("cpu"))
    logits, features = score(classifier, torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), with_features=True)
    log_p = torch.log_softmax(logits / classifier.temperature, dim=1).double().numpy()
    dims = int(np.prod(images.shape[1:]))
    distances = {"thumbnail": pairwise_distances(thumbnails(images)), "features": pairwise_distances(features.double().numpy())}
    targets = tilted_targets(log_p, labels, distances, dims, kl_weights, confidence_cap)
    return {
        "run": str(run),
        "column": column,
        "samples": int(len(labels)),
        "dimensions": dims,
        "confidence_cap": confidence_cap,
        "targets": targets,
    }


def _kl_weights(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}") from None
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}")
    return values


def _confidence_cap(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.tools.target_tilt", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with dataset/ (labels.csv) and classifier/")
    parser.add_argument("--kl-weights", type=_kl_weights, default=DEFAULT_KL_WEIGHTS, help="comma-separated klWeight values")
    parser.add_argument(
        "--confidence-cap", type=_confidence_cap, default=1.0, help="the reward's cap on p(y | x0), in (0, 1] (1: none)"
    )
    args = parser.parse_args(argv)
    print(json.dumps(target_tilt(args.run, args.kl_weights, args.confidence_cap)))


if __name__ == "__main__":
    main()
