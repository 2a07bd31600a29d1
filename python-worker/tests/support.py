"""Helpers shared by the tests of controls, rollouts and rewards."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch
from PIL import Image

from ctrl_worker.ctrl.checkpoints import save_control
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb

TIMESTEPS = [900, 600, 300, 100]

# Tolerance policy. The same call on the same batch is bit-exact on one machine (torch's CPU
# kernels are deterministic): such comparisons use torch.equal. Anything else (another batch size,
# as when a fused call stacks model and reference rows; another call layout; another thread count
# or CPU, whose AVX2 and AVX-512 kernels sum in other orders) differs in float32 rounding. One
# UNet call's outputs agree to about 1e-6; a sampler step divides by sqrt(alpha_bar) (7x at
# t = 900), so samples after a few steps agree to a few 1e-5 (2.6e-5 seen on an AMD EPYC). A real
# difference (one perturbed adapter) moves them by more than 1e-2.
CLOSE = dict(rtol=1e-4, atol=1e-4)
CLOSE_DECODED = dict(rtol=1e-4, atol=1e-4)
# A KL that should be zero: the sum over the sample's dimensions of (mean difference)^2 / (2 sigma^2)
# with mean differences at float rounding stays below 1e-6 for these tiny models (1.3e-7 seen on an
# AMD EPYC); one perturbed adapter gives more than 1e-2.
ZERO_KL = 1e-5


def assert_zero_kl(kl) -> None:
    values = kl.tolist() if hasattr(kl, "tolist") else list(kl)
    assert all(abs(v) <= ZERO_KL for v in values), f"KL {values} is not zero up to float rounding ({ZERO_KL})"


def label_messages(**fields: list[int]) -> list[pb.LabelValues]:
    return [pb.LabelValues(field=name, values=values) for name, values in fields.items()]


def perturb(control, scale: float = 0.02, seed: int = 1) -> None:
    """Moves every LoRA and embedding weight off its initial value, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in control.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))


def sample(
    backbone, control=None, labels=None, compute_kl=False, num_samples: int = 3, seed: int = 5, eta: float = 1.0,
    timesteps=TIMESTEPS, condition=None,
):
    """A trajectory of the backbone (or of the control with labels) stepped to the end."""
    from ctrl_worker.diffusion.branches import StepModel
    from ctrl_worker.diffusion.sampler import Trajectory

    model = StepModel(backbone, control, labels, condition)
    trajectory = Trajectory(backbone, num_samples, seed, predict=model.predict, compute_kl=compute_kl)
    for i, t in enumerate(timesteps):
        trajectory.step(t, timesteps[i + 1] if i + 1 < len(timesteps) else -1, eta)
    return trajectory


def tiny_classifier(num_classes: int = 3, seed: int = 0, width: int = 4, size: int = 16):
    from ctrl_worker.classifiers.classifier import create_classifier, validate_config

    config = validate_config([3, size, size], num_classes, "convnet", width, 1e-3, 0.0)
    return create_classifier(config, seed, torch.device("cpu"))


def classifier_term(classifier, field: str, weight: float = 1.0):
    from ctrl_worker.ctrl.rewards import ClassifierLogProb, Term

    return lambda rollout: Term(weight, ClassifierLogProb(classifier, rollout.labels.values[field]))


def run_rollout(
    control, labels=None, grad_steps=(False, True, False, True), checkpointing=True, seed=3, eta=1.0, fused=True,
    condition=None, batch_size=0,
):
    from ctrl_worker.diffusion.branches import StepModel
    from ctrl_worker.ctrl.rollout import rollout

    labels = labels or control.parse_labels(label_messages(a=[0, 1, 2], b=[1, 0, 1]), 3)
    n = next(iter(labels.values.values())).numel()
    model = StepModel(control.backbone, control, labels, condition, fused=fused, checkpointing=checkpointing)
    return rollout(model, n, TIMESTEPS, eta, seed, list(grad_steps), batch_size)


def bright_dark_dataset(n=48, size=16, seed=0, extra_columns=None):
    """Bright vs dark images (column "bright"): an easy two-class problem. `extra_columns` maps
    more column names to their labels."""
    from ctrl_worker.data.datasets import Dataset, LabelColumnInfo

    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    base = torch.where(labels[:, None, None, None] == 1, 170, 60)
    images = (base + torch.randint(-40, 40, (n, 3, size, size), generator=generator)).to(torch.uint8)
    columns = {"bright": labels, **{name: torch.as_tensor(v) for name, v in (extra_columns or {}).items()}}
    infos = [LabelColumnInfo(name, int(v.max()) + 1, torch.bincount(v).tolist()) for name, v in columns.items()]
    return Dataset(path=None, images=images, labels=columns, columns=infos)


def lookup(table: dict):
    """A handle lookup over a dict, raising INVALID_ARGUMENT naming the field like the registry's."""
    from ctrl_worker.rpc.errors import invalid

    def get(name, field):
        if name not in table:
            raise invalid(field, f"no live handle {name!r}")
        return table[name]

    return get


class Aborted(Exception):
    pass


class Context:
    """A stand-in for a servicer call's grpc context: always active; abort raises Aborted."""

    def is_active(self):
        return True

    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted(f"{code}: {details}")


def call(method, request):
    """Calls a unary or streaming servicer method as gRPC would; returns its response or its events."""
    result = method(request, Context())
    return list(result) if hasattr(result, "__next__") else result


def refused(method, request) -> tuple:
    """Calls a servicer method that must abort; returns the status code and details."""
    context = Context()
    try:
        result = method(request, context)
        if hasattr(result, "__next__"):
            list(result)
    except Aborted:
        return context.code, context.details
    raise AssertionError(f"{method.__name__} answered instead of aborting")


def run_folder(tmp_path, backbone_dir, control=None):
    """A finished run as the run-folder tools read it: 12 offline 16x16 images in three brightness
    classes (class 0 the brightest), the brightness oracle, a 3-step sampler and, given a control,
    its checkpoint."""
    run = tmp_path / "run"
    (run / "dataset" / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(run / "dataset" / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "a", "a_value"])
        for i in range(12):
            level = [40, 128, 220][i % 3]
            image = np.clip(level + rng.normal(0, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(run / "dataset" / "images" / f"{i}.png")
            writer.writerow([f"images/{i}.png", 2 - i % 3, level])  # class 0: brightest
    config = {
        "backbone": str(backbone_dir),
        "dataset": {"oracle": "brightness"},
        "sampler": {"steps": 3, "eta": 0.5, "spacing": "trailing"},
        "evaluation": {"seed": 42, "numSamples": 6},
    }
    (run / "config.json").write_text(json.dumps(config))
    if control is not None:
        save_control(control, None, str(run / "checkpoints" / "epoch-0001"), overwrite=False)
    return run
