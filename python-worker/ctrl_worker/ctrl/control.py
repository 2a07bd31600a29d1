"""A control: the backbone's UNet augmented with zero-initialised label embeddings and LoRA.

As in the official code, each label field has an `nn.Embedding(K + 1, time_embed_dim)` whose
vector is added to the timestep embedding (row K is the null label, for value -1, never trained),
and LoRA adapters (peft) go into the chosen UNet layers. Both start at zero output (zero embedding,
zero LoRA B), so a fresh control is exactly its backbone.

With `timestep_bands` B > 1 (not in the paper), each label has B embeddings, at knots spread
evenly from timestep 0 to the last, and a UNet call at timestep t adds their linear interpolation
at t (the UNet's timestep argument is read by a forward pre-hook). With one embedding, whatever
the late steps' gradients teach it (detail) also acts at the early steps (colour, layout); with
bands, each part of the sampler is moved by its own gradients and pays its own KL.

With `lora.per_label` (not in the paper), the LoRA holds one block of `rank` per label of every
field and a sample's UNet call uses only the blocks of its own labels (a forward hook masks the
rank components of lora_A's output): the null label uses none. Measured on the embedded default,
the embedding alone carries a trained control's change, a per-channel scale and shift of every
ResNet block that moves every sample of a label alike; per-label blocks let the label act through
weights that see the image's content.

There is no copy of the network: the adapters live inside the backbone's UNet and are OFF by
default, so the UNet is the pre-trained reference unless a block runs inside `conditioned(labels)`.
Inside `mixed(labels, adapter_rows)` one batch holds both: rows with adapter_rows False get their
LoRA output multiplied by 0 and the null label (a zero embedding), which is the pre-trained model
exactly; this lets a rollout run the fine-tuned and the reference branches in one UNet call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..diffusion.backbones import Backbone
from ..rpc.errors import invalid, precondition, shorten
from ..rpc.limits import MAX_CLASSES, MAX_LABEL_FIELDS, MAX_LORA_RANK, MAX_LORA_TARGETS, at_most, count_at_most
from ..rpc.tensors import seeded
from ..rpc.validation import positive, unique

ADAPTER = "ctrl"
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_ADAPTABLE = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class LabelField:
    name: str
    num_classes: int


@dataclass(frozen=True)
class LoraSpec:
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    # One block of `rank` per label of every field, each sample using its own labels' (see Control).
    per_label: bool = False


@dataclass(frozen=True)
class Labels:
    """Per-sample class indices per field, int64 [n] on the model's device; -1 is the null label."""

    values: dict[str, torch.Tensor]

    def rows(self, rows: slice) -> Labels:
        return Labels({name: v[rows] for name, v in self.values.items()})

    def null(self) -> Labels:
        """The same fields, every sample with the null label (-1)."""
        return Labels({name: torch.full_like(v, -1) for name, v in self.values.items()})

    @staticmethod
    def cat(parts: Sequence[Labels]) -> Labels:
        return Labels({name: torch.cat([p.values[name] for p in parts]) for name in parts[0].values})


def validate_fields(fields: Sequence[tuple[str, int]], field: str = "fields") -> list[LabelField]:
    if not fields:
        raise invalid(field, "at least one label field is required")
    count_at_most(fields, MAX_LABEL_FIELDS, field)
    unique([name for name, _ in fields], field, ".name")
    result = []
    for i, (name, num_classes) in enumerate(fields):
        if not _FIELD_NAME.match(name):
            raise invalid(f"{field}[{i}].name", f"use letters, digits, '_' and '-' only, got {shorten(name)}")
        if num_classes < 1:
            raise invalid(f"{field}[{i}].num_classes", f"must be at least 1, got {num_classes}")
        at_most(num_classes, MAX_CLASSES, f"{field}[{i}].num_classes")
        result.append(LabelField(name, int(num_classes)))
    return result


MAX_TIMESTEP_BANDS = 64


def validate_timestep_bands(bands: int, field: str = "timestep_bands") -> int:
    """1: one label embedding for every timestep (the paper's); B > 1: B embeddings per label,
    interpolated over the timestep (see Control)."""
    if isinstance(bands, bool) or not isinstance(bands, int) or not 1 <= bands <= MAX_TIMESTEP_BANDS:
        raise invalid(field, f"must be an integer in [1, {MAX_TIMESTEP_BANDS}], got {shorten(bands)}")
    return bands


def validate_lora(rank: int, alpha: float, target_modules: Sequence[str], per_label: bool = False) -> LoraSpec:
    if rank < 1:
        raise invalid("lora_rank", f"must be at least 1, got {rank}")
    at_most(rank, MAX_LORA_RANK, "lora_rank")
    targets = unique(count_at_most(target_modules, MAX_LORA_TARGETS, "lora_target_modules"), "lora_target_modules")
    if not targets:
        raise invalid("lora_target_modules", "name at least one module, e.g. to_q, to_k, to_v, to_out.0")
    return LoraSpec(int(rank), positive(alpha, "lora_alpha"), tuple(targets), bool(per_label))


def lora_blocks(lora: LoraSpec, fields: Sequence[LabelField]) -> int:
    """The LoRA's blocks of `lora.rank`: one per label of every field with per_label, else one;
    their total rank is checked against the limit."""
    blocks = sum(f.num_classes for f in fields) if lora.per_label else 1
    if lora.rank * blocks > MAX_LORA_RANK:
        raise invalid(
            "lora_rank",
            f"with lora_per_label, lora_rank x labels ({lora.rank} x {blocks} = {lora.rank * blocks}) must be at most {MAX_LORA_RANK}",
        )
    return blocks


def _check_targets(unet: nn.Module, targets: Sequence[str]) -> None:
    """Each target (a module name or name suffix, matched as peft does) must match at least one
    Linear or Conv2d layer."""
    modules = list(unet.named_modules())
    unmatched = []
    for i, target in enumerate(targets):
        matched = [(name, m) for name, m in modules if name == target or name.endswith("." + target)]
        if not matched:
            unmatched.append(target)
        for name, module in matched:
            if not isinstance(module, _ADAPTABLE):
                raise invalid(
                    f"lora_target_modules[{i}]",
                    f"{target!r} matches {name} ({type(module).__name__}), which LoRA cannot adapt; name Linear or "
                    "Conv2d layers (e.g. to_out.0 rather than to_out)",
                )
    if unmatched:
        known = sorted({name.rsplit(".", 1)[-1] for name, m in modules if isinstance(m, _ADAPTABLE)})
        raise invalid(
            "lora_target_modules",
            f"{', '.join(repr(t) for t in unmatched)} match no module of the UNet; its layers include {', '.join(known)}",
        )


class Control:
    def __init__(self, backbone: Backbone, fields: list[LabelField], lora: LoraSpec, seed: int, timestep_bands: int = 1):
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.tuners_utils import BaseTunerLayer

        unet = backbone.unet
        embedding = getattr(unet, "time_embedding", None)
        if embedding is None or not hasattr(embedding, "linear_2"):
            raise precondition("backbone", f"{type(unet).__name__} has no timestep embedding to add labels to")
        _check_targets(unet, lora.target_modules)
        self.backbone = backbone
        self.fields = fields
        self.lora = lora
        self.time_embed_dim = int(embedding.linear_2.out_features)
        self.timestep_bands = validate_timestep_bands(timestep_bands)
        # Bumped whenever the parameters change in place: older rollouts can no longer back-propagate.
        self.version = 0
        self._labels: Labels | None = None
        self._adapter_rows: torch.Tensor | None = None  # [n] 0/1 while inside `mixed`
        self._timesteps: torch.Tensor | None = None  # [n] or [] of the UNet call under way (bands > 1)

        blocks = lora_blocks(lora, fields)
        # Each block keeps the scale alpha / rank that one LoRA of that rank has.
        config = LoraConfig(
            r=lora.rank * blocks, lora_alpha=lora.alpha * blocks, target_modules=list(lora.target_modules), init_lora_weights=True
        )
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        try:
            with seeded(seed, backbone.device):
                inject_adapter_in_model(config, unet, adapter_name=ADAPTER)
            self._tuner_layers = [m for m in unet.modules() if isinstance(m, BaseTunerLayer)]
            self.embeddings = nn.ModuleDict(
                {
                    f.name: nn.Embedding(f.num_classes + 1, self.timestep_bands * self.time_embed_dim, padding_idx=f.num_classes)
                    for f in fields
                }
            ).to(backbone.device)
            for table in self.embeddings.values():
                nn.init.zeros_(table.weight)  # zero: the control starts as the pre-trained model
            if self.timestep_bands > 1:
                self._hooks.append(unet.register_forward_pre_hook(self._note_timesteps, with_kwargs=True))
            self._hooks.append(embedding.register_forward_hook(self._add_label_embeddings))
            for layer in self._tuner_layers:
                self._hooks.append(layer.lora_B[ADAPTER].register_forward_hook(self._mask_adapter_rows))
                if lora.per_label:
                    self._hooks.append(layer.lora_A[ADAPTER].register_forward_hook(self._keep_label_blocks))
            self._set_adapters(False)
        except BaseException:
            self.close()  # never leave half a control in the shared UNet
            raise

    # -- parameters ----------------------------------------------------------------------------------

    def lora_parameters(self) -> list[nn.Parameter]:
        return [p for layer in self._tuner_layers for name, p in layer.named_parameters() if "lora_" in name]

    def embedding_parameters(self) -> list[nn.Parameter]:
        return list(self.embeddings.parameters())

    def parameters(self) -> list[nn.Parameter]:
        return self.lora_parameters() + self.embedding_parameters()

    @property
    def num_lora_modules(self) -> int:
        return len(self._tuner_layers)

    def field(self, name: str) -> LabelField | None:
        return next((f for f in self.fields if f.name == name), None)

    def describe(self) -> str:
        fields = ", ".join(f"{f.name} ({f.num_classes} classes)" for f in self.fields)
        bands = f"; {self.timestep_bands} timestep bands" if self.timestep_bands > 1 else ""
        per_label = " per label" if self.lora.per_label else ""
        return f"labels {fields}; LoRA rank {self.lora.rank}{per_label} on {self.num_lora_modules} layers{bands}"

    # -- running the augmented and the reference model ---------------------------------------------

    def _set_adapters(self, enabled: bool) -> None:
        for layer in self._tuner_layers:
            layer.enable_adapters(enabled)
        # peft also switches requires_grad off with the adapters; a graph built earlier then gets no
        # gradient in its leaves (autograd skips leaves that stopped requiring grad), so turn it back on.
        for p in self.lora_parameters():
            p.requires_grad_(True)

    def _note_timesteps(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Keeps the UNet call's timesteps (its second argument) for the banded label embeddings."""
        timestep = args[1] if len(args) > 1 else kwargs.get("timestep")
        self._timesteps = None if timestep is None else torch.as_tensor(timestep, dtype=torch.float32).flatten()

    def band_weights(self, timesteps: torch.Tensor, n: int) -> torch.Tensor:
        """[n, bands]: each row's linear interpolation weights between the bands' knots, which sit
        evenly from timestep 0 to the last training timestep (they sum to 1)."""
        last = self.backbone.num_train_timesteps - 1
        position = (timesteps.to(self.backbone.device).clamp(0, last) / last * (self.timestep_bands - 1)).expand(n)
        knots = torch.arange(self.timestep_bands, device=position.device, dtype=torch.float32)
        return (1 - (position[:, None] - knots[None, :]).abs()).clamp(min=0)

    def _add_label_embeddings(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        labels = self._labels
        if labels is None:
            return None
        rows = self._adapter_rows
        for f in self.fields:
            values = labels.values[f.name]
            indices = torch.where(values < 0, f.num_classes, values)
            added = self.embeddings[f.name](indices)
            if self.timestep_bands > 1:
                if self._timesteps is None:
                    raise RuntimeError("banded label embeddings need the UNet call's timesteps")
                bands = added.view(added.shape[0], self.timestep_bands, self.time_embed_dim)
                added = torch.einsum("nb,nbd->nd", self.band_weights(self._timesteps, added.shape[0]), bands)
            if rows is not None:  # pre-trained rows get nothing, whatever the null row holds
                added = added * rows.view(-1, 1)
            output = output + added.to(output.dtype)
        return output

    def label_blocks(self, labels: Labels) -> torch.Tensor:
        """[n, blocks] 0/1: the per-label LoRA blocks each sample uses (field by field, class by
        class; a null label uses none of its field's)."""
        return torch.cat(
            [
                (labels.values[f.name][:, None] == torch.arange(f.num_classes, device=labels.values[f.name].device)).float()
                for f in self.fields
            ],
            dim=1,
        )

    def _keep_label_blocks(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """lora_A's output with the rank components of other labels' blocks zeroed, per sample."""
        labels = self._labels
        if labels is None:
            return None
        keep = self.label_blocks(labels).repeat_interleave(self.lora.rank, dim=1).to(device=output.device, dtype=output.dtype)
        if output.shape[0] != keep.shape[0]:
            raise RuntimeError(f"a LoRA layer saw {output.shape[0]} rows inside a batch of {keep.shape[0]}")
        # Conv2d: [n, rank, H, W]; Linear: [n, ..., rank].
        shape = (keep.shape[0], keep.shape[1], 1, 1) if output.dim() == 4 else (keep.shape[0],) + (1,) * (output.dim() - 2) + (keep.shape[1],)
        return output * keep.view(shape)

    def _mask_adapter_rows(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        mask = self._adapter_rows
        if mask is None:
            return None
        if output.shape[0] != mask.shape[0]:
            raise RuntimeError(f"a LoRA layer saw {output.shape[0]} rows inside a batch of {mask.shape[0]}")
        return output * mask.view(-1, *([1] * (output.dim() - 1))).to(output.dtype)

    @contextmanager
    def mixed(self, labels: Labels, adapter_rows: torch.Tensor) -> Iterator[None]:
        """One batch of fine-tuned rows (adapter_rows True, with their labels) and pre-trained rows
        (adapter_rows False; their labels must be null)."""
        self._set_adapters(True)
        self._labels = labels
        self._adapter_rows = adapter_rows.to(device=self.backbone.device, dtype=torch.float32)
        try:
            yield
        finally:
            self._labels = None
            self._adapter_rows = None
            self._set_adapters(False)

    @contextmanager
    def conditioned(self, labels: Labels) -> Iterator[None]:
        """The augmented model: adapters on, label embeddings added to the timestep embedding."""
        self._set_adapters(True)
        self._labels = labels
        try:
            yield
        finally:
            self._labels = None
            self._set_adapters(False)

    @contextmanager
    def reference(self) -> Iterator[None]:
        """The pre-trained model: adapters off, no label embedding (the UNet's default state)."""
        self._labels = None
        self._set_adapters(False)
        yield

    def eps(
        self, x: torch.Tensor, timestep: int, labels: Labels | None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The augmented model's noise prediction with `labels`, or the reference's with None.
        Entering the context here keeps checkpoint recomputation in the backward pass faithful."""
        with self.conditioned(labels) if labels is not None else self.reference():
            return self.backbone.predict_eps(x, timestep, context)

    def eps_mixed(
        self, x: torch.Tensor, timestep: int, labels: Labels, adapter_rows: torch.Tensor, context: torch.Tensor | None
    ) -> torch.Tensor:
        """Fine-tuned and pre-trained rows in one UNet call (see `mixed`)."""
        with self.mixed(labels, adapter_rows):
            return self.backbone.predict_eps(x, timestep, context)

    # -- labels --------------------------------------------------------------------------------------

    def parse_labels(self, messages: Sequence, num_samples: int, field: str = "labels") -> Labels:
        """LabelValues messages -> Labels: every field exactly once, num_samples values in [-1, K)."""
        given: dict[str, torch.Tensor] = {}
        names = ", ".join(f.name for f in self.fields)
        for i, message in enumerate(messages):
            spec = self.field(message.field)
            if spec is None:
                raise invalid(f"{field}[{i}].field", f"no label field {shorten(message.field)}; this control has {names}")
            if message.field in given:
                raise invalid(f"{field}[{i}].field", f"{shorten(message.field)} is given twice")
            if len(message.values) != num_samples:
                raise invalid(f"{field}[{i}].values", f"expected {num_samples} values (num_samples), got {len(message.values)}")
            values = torch.tensor(list(message.values), dtype=torch.long)
            bad = ((values < -1) | (values >= spec.num_classes)).nonzero()
            if bad.numel():
                j = int(bad[0])
                raise invalid(f"{field}[{i}].values[{j}]", f"must be in [-1, {spec.num_classes}), got {int(values[j])}")
            given[message.field] = values.to(self.backbone.device)
        missing = [f.name for f in self.fields if f.name not in given]
        if missing:
            raise invalid(field, f"no values for {', '.join(missing)}; every field of the control ({names}) needs values")
        return Labels({f.name: given[f.name] for f in self.fields})

    # -- release -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Takes the adapters and the hook out of the UNet: the backbone is as it was loaded."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        unet = self.backbone.unet
        with self.backbone.lock:
            for hook in self._hooks:
                hook.remove()
            self._hooks = []
            for name, module in list(unet.named_modules()):
                if isinstance(module, BaseTunerLayer):
                    parent, _, child = name.rpartition(".")
                    setattr(unet.get_submodule(parent), child, module.get_base_layer())
            if hasattr(unet, "peft_config"):
                del unet.peft_config
            self._tuner_layers = []
