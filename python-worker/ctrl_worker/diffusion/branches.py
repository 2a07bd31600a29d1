"""One denoising step's UNet work: the model's noise prediction and, where a KL is needed, the
pre-trained reference's, each with classifier-free guidance on a text-to-image backbone.

Branches of a step (n samples each):
- model: adapters on and the samples' labels (a control), or the plain backbone; guided backbones
  add an unconditional branch (empty prompt, null label, adapters on: the official code's setup);
- reference: adapters off, null label: exactly the pre-trained model, again with its
  unconditional branch when guided.
"fused" stacks every branch's rows into one UNet call (a LoRA row mask keeps the reference rows
pre-trained), so CTRL's four calls per step (official code) become one; "separate" calls the
UNet once per branch, optionally with a separate frozen network as the reference (the official
code's deep copy; kept for comparison in the benchmark).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch.utils.checkpoint import checkpoint

from .backbones import Backbone
from .conditioning import TextCondition
from ..ctrl.control import Control, Labels

# (x_t, timestep, context) -> noise prediction of a separate pre-trained network.
ReferenceNetwork = Callable[[torch.Tensor, int, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class _Branch:
    reference: bool
    unconditional: bool
    adapters: bool
    labels: Labels | None  # None: no control
    context: torch.Tensor | None


@dataclass(frozen=True)
class StepModel:
    backbone: Backbone
    control: Control | None = None
    labels: Labels | None = None  # with a control: the samples' labels
    condition: TextCondition | None = None
    fused: bool = True
    checkpointing: bool = False  # recompute each UNet call in the backward pass instead of storing it
    reference_network: ReferenceNetwork | None = None  # only with fused=False

    def __post_init__(self) -> None:
        if (self.control is None) != (self.labels is None):
            raise ValueError("labels go with a control")
        if self.reference_network is not None and self.fused:
            raise ValueError("a separate reference network needs separate UNet calls")

    def rows(self, rows: slice) -> StepModel:
        condition = self.condition
        if condition is not None:
            condition = replace(
                condition, prompt_embeds=condition.prompt_embeds[rows], empty_embeds=condition.empty_embeds[rows]
            )
        return replace(self, labels=None if self.labels is None else self.labels.rows(rows), condition=condition)

    def unet_calls(self, with_reference: bool) -> int:
        """UNet calls per step (for one chunk of samples)."""
        return 1 if self.fused else len(self._branches(with_reference))

    def predict(
        self, x: torch.Tensor, timestep: int, with_reference: bool, batch_size: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(eps of the model, eps of the reference or None), guided; batch_size samples (with all
        their branches) per UNet call, 0 for all at once."""
        n = x.shape[0]
        if batch_size <= 0 or batch_size >= n:
            return self._predict(x, timestep, with_reference)
        parts = [self.rows(slice(i, min(i + batch_size, n)))._predict(x[i : i + batch_size], timestep, with_reference)
                 for i in range(0, n, batch_size)]
        eps = torch.cat([p[0] for p in parts])
        return eps, (torch.cat([p[1] for p in parts]) if with_reference else None)

    # -- internals -----------------------------------------------------------------------------------

    def _branches(self, with_reference: bool) -> list[_Branch]:
        branches = []
        roles = (False, True) if with_reference else (False,)
        for reference in roles:
            adapters = self.control is not None and not reference
            labels = self.labels if self.labels is None or adapters else self.labels.null()
            condition = self.condition
            if condition is None:
                branches.append(_Branch(reference, False, adapters, labels, None))
                continue
            if condition.guided:
                null = None if labels is None else labels.null()
                branches.append(_Branch(reference, True, adapters, null, condition.empty_embeds))
            branches.append(_Branch(reference, False, adapters, labels, condition.prompt_embeds))
        return branches

    def _predict(self, x: torch.Tensor, timestep: int, with_reference: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        branches = self._branches(with_reference)
        outputs = self._run_fused(x, timestep, branches) if self.fused else [self._run_one(x, timestep, b) for b in branches]
        return self._combine(branches, outputs, False), (self._combine(branches, outputs, True) if with_reference else None)

    def _combine(self, branches: list[_Branch], outputs: list[torch.Tensor], reference: bool) -> torch.Tensor:
        unconditional = conditional = None
        for branch, out in zip(branches, outputs):
            if branch.reference == reference:
                if branch.unconditional:
                    unconditional = out
                else:
                    conditional = out
        assert conditional is not None
        if self.condition is None:
            return conditional
        return self.condition.combine(unconditional, conditional)

    def _call(self, fn: Callable[..., torch.Tensor], *args) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled():
            # fn enters the adapter/label context itself, so the recomputation runs the same model.
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def _run_fused(self, x: torch.Tensor, timestep: int, branches: list[_Branch]) -> list[torch.Tensor]:
        n = x.shape[0]
        xs = x.repeat(len(branches), *([1] * (x.dim() - 1)))
        context = None if self.condition is None else torch.cat([b.context for b in branches])
        control = self.control
        if control is None:
            out = self._call(lambda xs, ctx: self.backbone.predict_eps(xs, timestep, ctx), xs, context)
        else:
            labels = Labels.cat([b.labels for b in branches])
            adapter_rows = torch.cat([torch.full((n,), b.adapters, dtype=torch.bool) for b in branches])
            out = self._call(lambda xs, ctx: control.eps_mixed(xs, timestep, labels, adapter_rows, ctx), xs, context)
        return list(out.split(n))

    def _run_one(self, x: torch.Tensor, timestep: int, branch: _Branch) -> torch.Tensor:
        control = self.control
        if branch.reference and self.reference_network is not None:
            return self._call(lambda x, ctx: self.reference_network(x, timestep, ctx), x, branch.context)
        if control is None:
            return self._call(lambda x, ctx: self.backbone.predict_eps(x, timestep, ctx), x, branch.context)
        labels = branch.labels if branch.adapters else None
        return self._call(lambda x, ctx: control.eps(x, timestep, labels, ctx), x, branch.context)
