"""Guided sampling: the pre-trained noise prediction corrected at every step, for the baselines.

    eps = eps_u + w (eps_control(y) - eps_u)                       classifier-free guidance
              - sqrt(1 - a_t) * sum_j s_j grad_x_t log p_j(y_j | .)   classifier gradients

with eps_u the pre-trained prediction (or the control at the null label), and the classifier's
input either the denoised estimate x0_hat(x_t) = (x_t - sqrt(1 - a_t) eps_u) / sqrt(a_t), with the
gradient taken through the UNet (reconstruction guidance, DPS-style, a clean classifier), or x_t
itself at timestep t (classifier guidance, a noise-aware classifier). The guided denoiser plugs
into `Trajectory`, so the seeded noise draws are those of the pre-trained sampler: with every
scale 0 the corrections are exactly zero and the images are the pre-trained sampler's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..diffusion.backbones import Backbone, in_batches
from ..classifiers.classifier import Classifier, frozen, log_prob
from ..ctrl.control import Control, Labels
from ..rpc.errors import invalid
from ..rpc.limits import MAX_TERMS, count_at_most
from ..gen.ctrl.v1 import worker_pb2 as pb
from ..classifiers.noisy_classifier import require_noise_aware, require_pixel_backbone

# (handle, field) -> the object, raising NOT_FOUND / INVALID_ARGUMENT naming the field.
ControlLookup = Callable[[str, str], Control]
ClassifierLookup = Callable[[str, str], Classifier]


@dataclass(frozen=True)
class ClassifierFree:
    scale: float
    control: Control
    labels: Labels
    # The unconditional branch: the control at the null label instead of the pre-trained model.
    null_unconditional: bool


@dataclass(frozen=True)
class ClassifierGradient:
    scale: float
    classifier: Classifier
    targets: torch.Tensor  # int64 [n]
    # Classify x_t at t (a noise-aware classifier) instead of the denoised estimate x0_hat(x_t).
    on_noisy_sample: bool


GuidanceTerm = ClassifierFree | ClassifierGradient


class GuidedDenoiser:
    """A trajectory's `Predictor`: (x_t, timestep, with_reference, batch_size) -> (guided eps, the
    pre-trained eps for the KL or None). The pre-trained prediction is usually the guidance's own
    base, so the KL costs no extra UNet call."""

    def __init__(self, backbone: Backbone, terms: Sequence[GuidanceTerm]):
        self.backbone = backbone
        self.classifier_free = next((t for t in terms if isinstance(t, ClassifierFree)), None)
        self.gradients = [t for t in terms if isinstance(t, ClassifierGradient)]

    @property
    def control(self) -> Control | None:
        return self.classifier_free.control if self.classifier_free else None

    def __call__(self, x: torch.Tensor, timestep: int, with_reference: bool, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        references: list[torch.Tensor] = []

        def chunk(rows: slice) -> torch.Tensor:
            eps, reference = self._rows(x[rows], timestep, rows, with_reference)
            if reference is not None:
                references.append(reference)
            return eps

        eps = in_batches(chunk, x.shape[0], batch_size)
        return eps, torch.cat(references) if with_reference else None

    # -- one chunk of rows -----------------------------------------------------------------------

    def _pretrained(self, x: torch.Tensor, timestep: int) -> torch.Tensor:
        control = self.control
        return control.eps(x, timestep, None) if control else self.backbone.predict_eps(x, timestep)

    def _null_unconditional(self) -> bool:
        return self.classifier_free is not None and self.classifier_free.null_unconditional

    def _unconditional(self, x: torch.Tensor, timestep: int, rows: slice) -> torch.Tensor:
        cfg = self.classifier_free
        if cfg is not None and cfg.null_unconditional:
            return cfg.control.eps(x, timestep, cfg.labels.rows(rows).null())
        return self._pretrained(x, timestep)

    def _rows(self, x: torch.Tensor, timestep: int, rows: slice, with_reference: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        through_unet = any(not g.on_noisy_sample for g in self.gradients)
        with torch.enable_grad():
            x = x.detach().requires_grad_(bool(self.gradients))
            eps_u = self._unconditional(x, timestep, rows) if through_unet else None
            gradient = self._classifier_gradient(x, timestep, rows, eps_u)
        with torch.no_grad():
            x = x.detach()
            eps = (self._unconditional(x, timestep, rows) if eps_u is None else eps_u).detach()
            reference = None
            if with_reference:
                reference = self._pretrained(x, timestep) if self._null_unconditional() else eps
            cfg = self.classifier_free
            if cfg is not None:
                eps = eps + cfg.scale * (cfg.control.eps(x, timestep, cfg.labels.rows(rows)) - eps)
            if gradient is not None:
                eps = eps - math.sqrt(1 - self.backbone.alpha_cumprod(timestep)) * gradient
        return eps, reference

    def _classifier_gradient(
        self, x: torch.Tensor, timestep: int, rows: slice, eps_u: torch.Tensor | None
    ) -> torch.Tensor | None:
        """sum_j s_j grad_x log p_j(y_j | input_j), or None without classifier terms."""
        if not self.gradients:
            return None
        alpha = self.backbone.alpha_cumprod(timestep)
        with contextlib.ExitStack() as stack:
            for classifier in {id(g.classifier): g.classifier for g in self.gradients}.values():
                stack.enter_context(frozen(classifier))
            total = torch.zeros((), device=x.device)
            for g in self.gradients:
                targets = g.targets[rows]
                if g.on_noisy_sample:
                    t = torch.full((x.shape[0],), timestep, device=x.device, dtype=torch.long)
                    value = log_prob(g.classifier, x, targets, t)
                else:
                    assert eps_u is not None
                    x0_hat = (x - math.sqrt(1 - alpha) * eps_u) / math.sqrt(alpha)
                    value = log_prob(g.classifier, x0_hat, targets)
                total = total + g.scale * value.sum()
            (gradient,) = torch.autograd.grad(total, x)
        return gradient.detach()


# -- requests -> terms -----------------------------------------------------------------------------


def parse_terms(
    messages: Sequence, backbone: Backbone, num_samples: int, controls: ControlLookup, classifiers: ClassifierLookup
) -> list[GuidanceTerm]:
    """GuidanceTerm messages -> terms, each checked against the backbone and the sample count."""
    require_pixel_backbone(backbone, "backbone")
    count_at_most(messages, MAX_TERMS, "terms")
    terms: list[GuidanceTerm] = []
    for i, message in enumerate(messages):
        field = f"terms[{i}]"
        scale = message.scale
        if not math.isfinite(scale) or scale < 0:
            raise invalid(f"{field}.scale", f"must be finite and >= 0, got {scale}")
        kind = message.WhichOneof("kind")
        if kind == "classifier_free":
            if any(isinstance(t, ClassifierFree) for t in terms):
                raise invalid(f"{field}.classifier_free", "only one classifier-free term per trajectory")
            terms.append(_classifier_free(message.classifier_free, f"{field}.classifier_free", scale, backbone, num_samples, controls))
        elif kind in ("reconstruction", "noise_aware_classifier"):
            spec = getattr(message, kind)
            terms.append(_gradient(spec, f"{field}.{kind}", scale, backbone, num_samples, classifiers, kind == "noise_aware_classifier"))
        else:
            raise invalid(field, "set one of classifier_free, reconstruction or noise_aware_classifier")
    return terms


def _classifier_free(message, field: str, scale: float, backbone: Backbone, n: int, controls: ControlLookup) -> ClassifierFree:
    control = controls(message.control, f"{field}.control")
    if control.backbone is not backbone:
        raise invalid(f"{field}.control", f"{message.control} lives on another backbone than this trajectory's")
    labels = control.parse_labels(message.labels, n, field=f"{field}.labels")
    for name, values in labels.values.items():
        null = (values < 0).nonzero()
        if null.numel():
            raise invalid(f"{field}.labels", f"sample {int(null[0])} has the null label (-1) for {name!r}; guidance needs a class")
    return ClassifierFree(scale, control, labels, message.unconditional == pb.UNCONDITIONAL_NULL_LABEL)


def _gradient(
    message, field: str, scale: float, backbone: Backbone, n: int, classifiers: ClassifierLookup, noisy: bool
) -> ClassifierGradient:
    classifier = classifiers(message.classifier, f"{field}.classifier")
    if noisy:
        require_noise_aware(classifier, f"{field}.classifier")
    if classifier.config.input_shape != backbone.sample_shape:
        raise invalid(
            f"{field}.classifier",
            f"takes {list(classifier.config.input_shape)} images but the backbone makes {list(backbone.sample_shape)}",
        )
    targets = torch.tensor(list(message.targets), dtype=torch.long)
    if targets.numel() != n:
        raise invalid(f"{field}.targets", f"expected {n} values (num_samples), got {targets.numel()}")
    too_large = (targets >= classifier.num_classes).nonzero()
    if too_large.numel():
        j = int(too_large[0])
        raise invalid(f"{field}.targets[{j}]", f"must be below the classifier's {classifier.num_classes} classes, got {int(targets[j])}")
    return ClassifierGradient(scale, classifier, targets.to(backbone.device), noisy)
