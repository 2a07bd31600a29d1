"""Reward expressions composed by the orchestrator, evaluated on a rollout and back-propagated.

reward(sample) = sum_j weight_j * term_j(sample), with terms
- classifier_log_prob: log softmax(classifier(x0.clamp(-1, 1)) / T)[y], y = the sample's label
  for a field of the control, capped at log(confidence_cap) when one is set; the classifier is in
  eval mode and is not trained by this;
- kl: the sample's KL to the pre-trained model, summed over the rollout's steps;
- constant: one value per sample, computed by the orchestrator (an oracle, say).
The loss -mean(reward) * loss_scale is back-propagated into the control's parameters, where the
gradients accumulate until the optimiser steps.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..classifiers.classifier import Classifier, frozen, log_prob
from ..rpc.errors import invalid, precondition
from ..rpc.limits import MAX_TERMS, count_at_most
from .rollout import Rollout
from ..rpc.validation import finite, positive

# (handle, field) -> Classifier, raising NOT_FOUND / INVALID_ARGUMENT naming the field.
ClassifierLookup = Callable[[str, str], Classifier]


@dataclass(frozen=True)
class ClassifierLogProb:
    classifier: Classifier
    labels: torch.Tensor  # int64 [n]
    # log p(y | x0) is clamped at log(cap): 1.0 is no cap.
    confidence_cap: float = 1.0


@dataclass(frozen=True)
class Kl:
    pass


@dataclass(frozen=True)
class Constant:
    values: torch.Tensor  # float32 [n]


Source = ClassifierLogProb | Kl | Constant


@dataclass(frozen=True)
class Term:
    weight: float
    source: Source


@dataclass(frozen=True)
class BackwardResult:
    loss: float
    terms: list[torch.Tensor]  # per-sample values of each term, unweighted
    seconds: float
    non_finite: bool = False  # the loss was NaN or infinite: nothing was back-propagated


def parse_terms(messages, rollout: Rollout, lookup: ClassifierLookup) -> list[Term]:
    """RewardTerm messages -> terms, checked against the rollout (labels, sizes, image shapes)."""
    if not messages:
        raise invalid("terms", "at least one reward term is required")
    count_at_most(messages, MAX_TERMS, "terms")
    return [_parse_term(message, f"terms[{i}]", rollout, lookup) for i, message in enumerate(messages)]


def _parse_term(message, field: str, rollout: Rollout, lookup: ClassifierLookup) -> Term:
    weight = finite(message.weight, f"{field}.weight")
    kind = message.WhichOneof("source")
    if kind == "kl":
        return Term(weight, Kl())
    if kind == "constant":
        values = torch.tensor(list(message.constant.values), dtype=torch.float32)
        if values.numel() != rollout.num_samples:
            raise invalid(f"{field}.constant.values", f"expected {rollout.num_samples} values (one per sample), got {values.numel()}")
        if not torch.isfinite(values).all():
            raise invalid(f"{field}.constant.values", "must all be finite")
        return Term(weight, Constant(values.to(rollout.images.device)))
    if kind == "classifier_log_prob":
        return Term(weight, _classifier_term(message.classifier_log_prob, f"{field}.classifier_log_prob", rollout, lookup))
    raise invalid(field, "set one of classifier_log_prob, kl or constant")


def _classifier_term(message, field: str, rollout: Rollout, lookup: ClassifierLookup) -> ClassifierLogProb:
    cap = _confidence_cap(message.confidence_cap, f"{field}.confidence_cap")
    classifier = lookup(message.classifier, f"{field}.classifier")
    sample_shape = tuple(rollout.images.shape[1:])
    if classifier.config.input_shape != sample_shape:
        raise invalid(
            f"{field}.classifier",
            f"takes {list(classifier.config.input_shape)} images but the rollout's samples are {list(sample_shape)}",
        )
    names = ", ".join(f.name for f in rollout.control.fields)
    if message.label_field not in rollout.labels.values:
        raise invalid(f"{field}.label_field", f"no label field {message.label_field!r}; the control has {names}")
    labels = rollout.labels.values[message.label_field]
    null = (labels < 0).nonzero()
    if null.numel():
        raise invalid(
            f"{field}.label_field",
            f"sample {int(null[0])} has the null label (-1) for {message.label_field!r}; a classifier term needs a class",
        )
    too_large = (labels >= classifier.num_classes).nonzero()
    if too_large.numel():
        j = int(too_large[0])
        raise invalid(
            f"{field}.label_field",
            f"sample {j} has class {int(labels[j])}, but the classifier has {classifier.num_classes} classes",
        )
    return ClassifierLogProb(classifier, labels, cap)


def _confidence_cap(value: float, field: str) -> float:
    if value == 0:  # unset
        return 1.0
    if not (0 < value <= 1):
        raise invalid(field, f"must be in (0, 1] (0 or unset: no cap), got {value}")
    return float(value)


def backward(rollout: Rollout, terms: list[Term], loss_scale: float) -> BackwardResult:
    """Evaluates the reward, back-propagates -mean(reward) * loss_scale; returns the loss before
    loss_scale and each term's per-sample values."""
    loss_scale = positive(loss_scale, "loss_scale")
    control = rollout.control
    if rollout.version != control.version:
        raise precondition(
            "rollout",
            "the control's parameters changed after this rollout (an optimizer step or a load); roll out again",
        )
    started = time.perf_counter()
    classifiers = {id(t.source.classifier): t.source.classifier for t in terms if isinstance(t.source, ClassifierLogProb)}
    with contextlib.ExitStack() as stack:
        for classifier in classifiers.values():  # each once: frozen() restores requires_grad on exit
            stack.enter_context(frozen(classifier))
        stack.enter_context(control.backbone.lock)  # checkpointed steps re-run the UNet in backward
        values = [_evaluate(t.source, rollout) for t in terms]
        reward = sum(t.weight * v for t, v in zip(terms, values))
        loss = -reward.mean()
        value = float(loss.detach())
        non_finite = not math.isfinite(value)
        # A NaN would poison every parameter through the optimiser: leave the gradients alone and
        # let the orchestrator skip the step.
        if loss.requires_grad and not non_finite:  # without kept steps nothing depends on the parameters
            (loss * loss_scale).backward()
    return BackwardResult(
        loss=value,
        terms=[v.detach().float().cpu() for v in values],
        seconds=time.perf_counter() - started,
        non_finite=non_finite,
    )


def _evaluate(source: Source, rollout: Rollout) -> torch.Tensor:
    if isinstance(source, Kl):
        return rollout.kl
    if isinstance(source, Constant):
        return source.values
    values = log_prob(source.classifier, rollout.images.clamp(-1, 1), source.labels)
    if source.confidence_cap < 1:
        # Past the cap the gradient is zero: the KL alone keeps the sample where it was.
        values = values.clamp(max=math.log(source.confidence_cap))
    return values
