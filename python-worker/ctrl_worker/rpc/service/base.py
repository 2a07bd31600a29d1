"""What every group of calls shares: the handles, the limits, lookups by kind, registering results."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...classifiers import classifier as clf
from ...ctrl.control import Control
from ...ctrl.optim import ControlOptimizer
from ...data.datasets import Dataset
from ...diffusion.backbones import Backbone
from ...diffusion.conditioning import TextCondition, parse_condition
from ...diffusion.sampler import Shard, validate_shard
from ..errors import cancelled, exhausted, invalid
from ..handles import HandleRegistry
from ..telemetry import Telemetry


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int
    max_samples: int


class ServiceBase:
    """State of the servicer; the call groups (mixins beside this module) add the RPCs."""

    def __init__(self, device: torch.device, limits: Limits, telemetry: Telemetry):
        self.device = device
        self.limits = limits
        self.telemetry = telemetry
        self.handles = HandleRegistry()

    def _register(self, context, kind: str, value: object, description: str, parent: str | None = None) -> str:
        """Registers a new handle, unless the client is gone (cancelled, or past its deadline): no
        one would ever learn its name, so what the call made is closed instead."""
        try:
            if not context.is_active():
                raise cancelled(f"the call was cancelled or its deadline passed; the new {kind} was not kept")
            return self.handles.add(kind, value, description, parent=parent)
        except BaseException:
            close = getattr(value, "close", None)
            if callable(close):
                close()
            raise

    def _backbone(self, name: str, field: str) -> Backbone:
        return self.handles.get(name, "backbone", Backbone, field)

    def _control(self, name: str, field: str) -> Control:
        return self.handles.get(name, "control", Control, field)

    def _classifier(self, name: str, field: str) -> clf.Classifier:
        return self.handles.get(name, "classifier", clf.Classifier, field)

    def _dataset(self, name: str, field: str) -> Dataset:
        return self.handles.get(name, "dataset", Dataset, field)

    def _optimizer(self, name: str, field: str) -> ControlOptimizer:
        return self.handles.get(name, "optimizer", ControlOptimizer, field)

    def _model(self, name: str, field: str) -> tuple[Backbone, Control | None]:
        """A backbone, or a control with the backbone it lives on."""
        kind, value = self.handles.get_one_of(name, {"backbone": Backbone, "control": Control}, field)
        if kind == "control":
            return value.backbone, value
        return value, None

    def _check_num_samples(self, num_samples: int) -> int:
        if num_samples < 1:
            raise invalid("num_samples", f"must be at least 1, got {num_samples}")
        if num_samples > self.limits.max_samples:
            raise exhausted("num_samples", f"at most {self.limits.max_samples} samples per request, got {num_samples}")
        return num_samples

    def _check_shard(self, request, num_samples: int) -> Shard | None:
        """A Sample or Rollout request's shard_offset/shard_total (data parallel)."""
        return validate_shard(request.shard_offset, request.shard_total, num_samples, self.limits.max_samples)


def text_condition(backbone: Backbone, request, num_samples: int) -> TextCondition | None:
    """The request's text condition (prompts and guidance scale), checked against the backbone."""
    text = request.text
    scale = text.guidance_scale if text.HasField("guidance_scale") else None
    return parse_condition(backbone, list(text.prompts), scale, num_samples, field="text")
