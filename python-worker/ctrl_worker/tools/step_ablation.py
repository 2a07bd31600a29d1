"""`python -m ctrl_worker.tools.step_ablation RUN_DIR [--checkpoint DIR]`: which sampler steps a
trained control acts through.

Samples n images (labels split equally, the run's evaluation seed and sampler) with the fine-tuned
model at some sampler steps and the pre-trained model at the others: "all", "first:K" (the
fine-tuned model for the first K steps only) and "last:K". Each set is judged by the run's oracle
(JPEG bytes at quality 95 or mean luma, with the class bands of the run's offline samples,
measured the same way) and, per asked class, its 8x8-thumbnail diversity over that of the
pre-trained samples the oracle puts in that class, and how selective the control is (`selectivity`).
If "last:K" alone keeps the accuracy while "first:K" alone already makes the images alike, the
early steps spend the control on something the reward did not need.

Two more modes ask which parameters carry the change, at every step: "lora-only" (LoRA on, every
sample with the null label: what the control does whatever the label) and "embeddings-only" (the
label embeddings with the LoRA weights zeroed). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..ctrl.checkpoints import read_control
from ..data import synthetic
from ..ctrl.control import Control, Labels
from ..diffusion.backbones import Backbone, load_backbone
from ..diffusion.sampler import Trajectory
from .band_diversity import mean_pairwise_distance
from .target_tilt import read_run, thumbnails


def jpeg_bytes(image: np.ndarray) -> float:
    return float(synthetic.jpeg_size(image))


def mean_luma(image: np.ndarray) -> float:
    return float((image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).mean())


ORACLES = {"compressibility": jpeg_bytes, "brightness": mean_luma}


class OracleClasses:
    """Classes as bands of an oracle's values, bounded midway between neighbouring classes."""

    def __init__(self, values: np.ndarray, labels: np.ndarray):
        classes = int(labels.max()) + 1
        self.order = sorted(range(classes), key=lambda k: values[labels == k].mean())
        self.bounds = [
            (values[labels == low].max() + values[labels == high].min()) / 2 for low, high in zip(self.order, self.order[1:])
        ]

    def judge(self, values: np.ndarray) -> np.ndarray:
        return np.array([self.order[int(np.searchsorted(self.bounds, v))] for v in values])


def sampler_timesteps(config: dict, num_train_timesteps: int, steps_offset: int) -> list[int]:
    """The run's sampler timesteps, as src/sampling/schedules.ts computes them."""
    sampler = config["sampler"]
    steps = int(sampler["steps"])
    ratio = num_train_timesteps // steps
    start = ratio - 1 if sampler.get("spacing", "leading") == "trailing" else int(sampler.get("offset", steps_offset))
    return [(steps - 1 - i) * ratio + start for i in range(steps)]


def parse_modes(text: str, steps: int) -> dict[str, list[int]]:
    """"all;first:3;last:7;lora-only" -> the sampler steps (indices) at which the fine-tuned model
    runs (every step for the PARTS modes, which keep only part of the control)."""
    modes = {}
    for part in text.split(";"):
        name, _, count = part.partition(":")
        if name in ("all", *PARTS) and not count:
            modes[part] = list(range(steps))
            continue
        if name not in ("first", "last") or not count.isdigit() or not 1 <= int(count) <= steps:
            raise SystemExit(
                f"--modes: {part!r} is not all, {', '.join(PARTS)}, first:K or last:K with K in [1, {steps}]"
            )
        k = int(count)
        modes[part] = list(range(k)) if name == "first" else list(range(steps - k, steps))
    return modes


PARTS = ("lora-only", "embeddings-only")


@contextmanager
def lora_zeroed(control: Control) -> Iterator[None]:
    """The control's LoRA weights at zero (its adapters then add nothing), restored on exit."""
    kept = [p.detach().clone() for p in control.lora_parameters()]
    with torch.no_grad():
        for p in control.lora_parameters():
            p.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in zip(control.lora_parameters(), kept):
                p.copy_(value)


def every_split(steps: int) -> str:
    return ";".join(["all"] + [f"{side}:{k}" for k in range(1, steps) for side in ("first", "last")])


def run_oracle(run: Path, config: dict) -> tuple[str, Callable[[np.ndarray], float]]:
    """The run's exact oracle, by name and function; a run labelled otherwise is refused."""
    name = config["dataset"].get("oracle")
    if name not in ORACLES:
        raise SystemExit(f"{run}: the run's oracle {name!r} is not one this tool measures ({', '.join(ORACLES)})")
    return name, ORACLES[name]


def run_backbone(config: dict) -> Backbone:
    """The run's backbone on the CPU (runs store the path they were given, from the repository root)."""
    backbone_path = Path(config["backbone"])
    if not backbone_path.is_absolute():
        backbone_path = Path(__file__).resolve().parents[3] / backbone_path
    return load_backbone(str(backbone_path), "", torch.float32, torch.device("cpu"))


def to_uint8(backbone: Backbone, x: torch.Tensor) -> np.ndarray:
    """A trajectory's end as (n, height, width, channels) uint8 images."""
    images = backbone.to_images(x)
    return ((images.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def selectivity(asked, pretrained_classes, pretrained_values, values, pretrained_thumbs, thumbs) -> dict:
    """Does the control move only what it must? Per asked class: the mean 8x8-thumbnail distance
    between each sample and the pre-trained sample from the same noise, for the samples that the
    pre-trained model already put in the asked class and for the others (a control that leaves the
    first alone is selective), and the correlation of the oracle's values before and after (near
    -1 or 0 where the control maps every sample to the same place in the class's band)."""
    change = np.linalg.norm(thumbs - pretrained_thumbs, axis=1)
    result: dict[str, list] = {"thumbnail_change_already_in_class": [], "thumbnail_change_others": [], "oracle_correlation_with_pretrained": []}
    for k in range(int(asked.max()) + 1):
        mask = asked == k
        inside = mask & (pretrained_classes == k)
        result["thumbnail_change_already_in_class"].append(float(change[inside].mean()) if inside.any() else None)
        result["thumbnail_change_others"].append(float(change[mask & ~inside].mean()) if (mask & ~inside).any() else None)
        spread = pretrained_values[mask].std() * values[mask].std()
        result["oracle_correlation_with_pretrained"].append(float(np.corrcoef(pretrained_values[mask], values[mask])[0, 1]) if spread > 0 else None)
    return result


@dataclass
class RunSetup:
    """What the run-folder tools need of a finished run: its oracle with the class bands of its
    offline samples, its backbone and its sampler's timesteps."""

    config: dict
    oracle_name: str
    oracle: Callable[[np.ndarray], float]
    classes_by_value: OracleClasses
    classes: int
    label_column: str
    backbone: Backbone
    timesteps: list[int]


def open_run(run: Path) -> RunSetup:
    config = json.loads((run / "config.json").read_text())
    oracle_name, oracle = run_oracle(run, config)
    images, labels, column = read_run(run)
    backbone = run_backbone(config)
    return RunSetup(
        config=config,
        oracle_name=oracle_name,
        oracle=oracle,
        classes_by_value=OracleClasses(np.array([oracle(image) for image in images]), labels),
        classes=int(labels.max()) + 1,
        label_column=column,
        backbone=backbone,
        timesteps=sampler_timesteps(config, backbone.num_train_timesteps, backbone.steps_offset),
    )


def step_ablation(run: Path, checkpoint: Path | None, modes: str | None, n: int | None) -> dict:
    setup = open_run(run)
    config, oracle_name, oracle, classes_by_value = setup.config, setup.oracle_name, setup.oracle, setup.classes_by_value
    classes, column, backbone, timesteps = setup.classes, setup.label_column, setup.backbone, setup.timesteps
    if checkpoint is None:
        checkpoint = sorted((run / "checkpoints").iterdir())[-1]
    control = read_control(backbone, str(checkpoint)).create(backbone)
    chosen = parse_modes(modes or every_split(len(timesteps)), len(timesteps))
    eta, seed = float(config["sampler"]["eta"]), int(config["evaluation"]["seed"])
    n = n or int(config["evaluation"]["numSamples"])
    asked = np.repeat(np.arange(classes), -(-n // classes))[:n]
    asked_labels = Labels({column: torch.tensor(asked)})

    def sample(fine_tuned_steps: set[int], mode: str = "all") -> np.ndarray:
        labels = asked_labels.null() if mode == "lora-only" else asked_labels

        def predict(x, timestep, with_reference, batch_size):
            use = timesteps.index(timestep) in fine_tuned_steps
            with torch.no_grad():
                return control.eps(x, timestep, labels if use else None), None

        with lora_zeroed(control) if mode == "embeddings-only" else nullcontext():
            trajectory = Trajectory(backbone, n, seed, predict=predict)
            for i, t in enumerate(timesteps):
                trajectory.step(t, timesteps[i + 1] if i + 1 < len(timesteps) else -1, eta)
        return to_uint8(backbone, trajectory.x)

    pretrained = sample(set())
    pretrained_values = np.array([oracle(image) for image in pretrained])
    pretrained_classes = classes_by_value.judge(pretrained_values)
    pretrained_thumbs = thumbnails(pretrained)
    reference = [mean_pairwise_distance(pretrained_thumbs[pretrained_classes == k]) for k in range(classes)]
    results = []
    for name, on in chosen.items():
        samples = sample(set(on), name)
        values = np.array([oracle(image) for image in samples])
        thumbs = thumbnails(samples)
        results.append(
            {
                "mode": name,
                "fine_tuned_steps": on,
                "accuracy": float((classes_by_value.judge(values) == asked).mean()),
                "mean_value_per_class": [float(values[asked == k].mean()) for k in range(classes)],
                "thumbnail_diversity_vs_pretrained": [
                    mean_pairwise_distance(thumbs[asked == k]) / reference[k] for k in range(classes)
                ],
                **selectivity(asked, pretrained_classes, pretrained_values, values, pretrained_thumbs, thumbs),
            }
        )
    control.close()
    return {
        "run": str(run),
        "checkpoint": str(checkpoint),
        "oracle": oracle_name,
        "timesteps": timesteps,
        "pretrained_per_class": np.bincount(pretrained_classes, minlength=classes).tolist(),
        "results": results,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.tools.step_ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run folder (config.json, dataset/, checkpoints/)")
    parser.add_argument("--checkpoint", type=Path, help="a control checkpoint (default: the run's last)")
    parser.add_argument(
        "--modes",
        help='e.g. "all;first:5;last:5;lora-only;embeddings-only" (default: all, and first:K and last:K for every K)',
    )
    parser.add_argument("--n", type=int, help="samples (default: the run's evaluation.numSamples)")
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 2:
        parser.error("--n must be at least 2")
    print(json.dumps(step_ablation(args.run, args.checkpoint, args.modes, args.n)))


if __name__ == "__main__":
    main()
