"""`python -m ctrl_worker.tools.classifier_sweep DATA_DIR --label-column NAME`: the held-out
accuracy of the reward classifier's architectures and epoch budgets on one labelled dataset.

Trains each architecture in `--architectures` for each budget in `--epochs` with ctrl's recipe
(AdamW, batch 64, a cosine learning rate from 5e-3, horizontal flips) on a seeded 80% of the rows
and prints one JSON line per setting: the held-out accuracy after every epoch. Every setting sees
the same split, the same initial weights and the same batches, so the rows differ by the setting
alone. This is how `stats-convnet` and 20 epochs were chosen (README: "The reward classifier").
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from ..classifiers.classifier import ARCHITECTURES, NOISE_AWARE, Classifier, create_classifier, score, train_step, validate_config
from ..data.datasets import load_dataset

CLEAN_ARCHITECTURES = tuple(a for a in ARCHITECTURES if a != NOISE_AWARE)


def train_on_split(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    architecture: str,
    epochs: int,
    seed: int = 0,
    width: int = 16,
    batch_size: int = 64,
    learning_rate: float = 5e-3,
    after_epoch: Callable[[Classifier, torch.Tensor], None] | None = None,
) -> tuple[Classifier, torch.Tensor]:
    """A classifier trained with ctrl's recipe on a seeded 80% of the rows (uint8 images [n, C,
    H, W], labels [n]), and the other 20%'s row indices; `after_epoch(classifier, held_out)` runs
    after each epoch."""
    rows = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    held_out, train = rows[: images.shape[0] // 5], rows[images.shape[0] // 5 :]
    config = validate_config(list(images.shape[1:]), num_classes, architecture, width, learning_rate, 1e-4)
    classifier = create_classifier(config, seed, torch.device("cpu"))
    order_generator = torch.Generator().manual_seed(seed + 1)
    total = epochs * math.ceil(len(train) / batch_size)
    step = 0
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=order_generator)]
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            rate = learning_rate * 0.5 * (1 + math.cos(math.pi * step / total))
            train_step(classifier, images[batch], labels[batch], augment=True, seed=seed + step, learning_rate=rate)
            step += 1
        if after_epoch is not None:
            after_epoch(classifier, held_out)
    return classifier, held_out


def held_out_curve(images: torch.Tensor, labels: torch.Tensor, *args, **options) -> list[float]:
    """Held-out accuracy after each epoch of train_on_split(images, labels, *args, **options)."""
    curve: list[float] = []

    def record(classifier: Classifier, held_out: torch.Tensor) -> None:
        logits, _ = score(classifier, images[held_out], with_features=False)
        curve.append(float((logits.argmax(1) == labels[held_out]).float().mean()))

    train_on_split(images, labels, *args, **options, after_epoch=record)
    return curve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.tools.classifier_sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a labelled dataset folder (images/ and labels.csv or labels.jsonl)")
    parser.add_argument("--label-column", required=True, help="the column with the class labels")
    parser.add_argument("--labels-file", default="labels.csv")
    parser.add_argument("--architectures", default="detail-convnet,stats-convnet", help=f"comma-separated, from {list(CLEAN_ARCHITECTURES)}")
    parser.add_argument("--epochs", default="10,20", help="comma-separated epoch budgets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    architectures = [a.strip() for a in args.architectures.split(",") if a.strip()]
    unknown = [a for a in architectures if a not in CLEAN_ARCHITECTURES]
    if not architectures or unknown:
        parser.error(f"--architectures: expected names from {list(CLEAN_ARCHITECTURES)}, got {unknown or 'none'}")
    try:
        budgets = [int(e) for e in args.epochs.split(",")]
    except ValueError:
        parser.error(f"--epochs: expected comma-separated whole numbers, got {args.epochs!r}")
    if not budgets or any(not 1 <= e <= 1000 for e in budgets):
        parser.error(f"--epochs: each budget must be in [1, 1000], got {args.epochs!r}")
    if args.threads < 0:
        parser.error(f"--threads must be non-negative, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset(str(args.data), args.labels_file, [args.label_column])
    column = dataset.column(args.label_column, "label_column")
    labels = dataset.labels[args.label_column]
    for architecture in architectures:
        for epochs in budgets:
            curve = held_out_curve(dataset.images, labels, column.num_classes, architecture, epochs, args.seed)
            print(json.dumps({"architecture": architecture, "epochs": epochs, "held_out_accuracy": curve[-1], "per_epoch": curve}), flush=True)


if __name__ == "__main__":
    main()
