"""Control checkpoints: LoRA in the diffusers format, label embeddings, optionally the optimiser.

A folder holds
- control.json: format "ctrl-control/1", the backbone's source and fingerprint, the label fields
  the LoRA settings and the number of timestep bands (1 when absent: older checkpoints);
- pytorch_lora_weights.safetensors: peft's LoRA state dict with keys prefixed "unet.", the
  layout diffusers' `load_lora_weights` reads; a per-label LoRA (control.json's lora.per_label)
  goes to label_lora_weights.safetensors instead, since diffusers would apply every label's block
  to every sample;
- label_embeddings.safetensors: one [num_classes + 1, timestep_bands * time_embed_dim] tensor per
  field (each row: its label's embedding per band, band 0 first);
- optimizer.safetensors + optimizer.json, when an optimiser is saved with it.
The fingerprint (sha256 over the UNet's config and its base weights) makes a load onto another
backbone fail loudly instead of producing silently wrong samples.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from ..diffusion.backbones import Backbone
from .control import ADAPTER, Control, LabelField, LoraSpec, lora_blocks, validate_fields, validate_lora, validate_timestep_bands
from ..rpc.errors import RequestError, invalid, precondition
from .optim import ControlOptimizer, load_state_tensors, state_tensors
from .storage import Marker, check_tensors, checkpoint_folder, json_field, read_json, read_tensors, save_folder, write_json, write_tensors

FORMAT = "ctrl-control/1"
OPTIMIZER_FORMAT = "ctrl-optimizer/1"
CONTROL_FILE = "control.json"
LORA_FILE = "pytorch_lora_weights.safetensors"
LABEL_LORA_FILE = "label_lora_weights.safetensors"
EMBEDDINGS_FILE = "label_embeddings.safetensors"
OPTIMIZER_TENSORS, OPTIMIZER_FILE = "optimizer.safetensors", "optimizer.json"
_LORA_PREFIX = "unet."
# Config entries that say where or with what a model was saved, not what it is.
_VOLATILE_CONFIG = {"_name_or_path", "_diffusers_version"}

# Base weights are frozen, so a UNet's fingerprint never changes: hash it once.
_fingerprints: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


def fingerprint(backbone: Backbone) -> str:
    """sha256 over the UNet config (sorted keys) and its base (non-LoRA) parameters' bytes, under
    their names without peft's ".base_layer", so it is the same with or without a control."""
    unet = backbone.unet
    cached = _fingerprints.get(unet)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    config = {k: v for k, v in dict(unet.config).items() if k not in _VOLATILE_CONFIG}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    with backbone.lock:
        named = sorted(
            (name.replace(".base_layer", ""), p) for name, p in unet.named_parameters() if "lora_" not in name
        )
        for name, p in named:
            digest.update(f"{name}:{p.dtype}:{list(p.shape)}".encode())
            digest.update(p.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    _fingerprints[unet] = value = digest.hexdigest()
    return value


def _lora_state(control: Control) -> dict[str, torch.Tensor]:
    """peft's state dict of the adapter (tensors alias the live parameters), diffusers' key names."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(control.backbone.unet, adapter_name=ADAPTER)
    return {_LORA_PREFIX + name: tensor for name, tensor in state.items()}


def _lora_metadata(control: Control) -> dict[str, str]:
    """The safetensors metadata diffusers writes beside LoRA weights: the adapter's peft config
    under "unet."-prefixed keys, so that diffusers loads it with the right alpha."""
    config = control.backbone.unet.peft_config[ADAPTER].to_dict()
    packed = {f"{_LORA_PREFIX}{key}": sorted(value) if isinstance(value, set) else value for key, value in config.items()}
    return {"format": "pt", "lora_adapter_metadata": json.dumps(packed, indent=2, sort_keys=True, default=str)}


def lora_file(lora: LoraSpec) -> str:
    return LABEL_LORA_FILE if lora.per_label else LORA_FILE


def _embedding_state(control: Control) -> dict[str, torch.Tensor]:
    return {f.name: control.embeddings[f.name].weight.detach() for f in control.fields}


def save_control(control: Control, optimizer: ControlOptimizer | None, directory: str, overwrite: bool) -> list[str]:
    backbone = control.backbone
    spec = {
        "format": FORMAT,
        "backbone": {"source": backbone.source, "fingerprint": fingerprint(backbone)},
        "fields": [{"name": f.name, "num_classes": f.num_classes} for f in control.fields],
        "lora": {
            "rank": control.lora.rank,
            "alpha": control.lora.alpha,
            "target_modules": list(control.lora.target_modules),
            "per_label": control.lora.per_label,
        },
        "time_embed_dim": control.time_embed_dim,
        "timestep_bands": control.timestep_bands,
    }

    def write(folder: Path) -> None:
        write_json(folder / CONTROL_FILE, spec)
        with backbone.lock:  # a consistent snapshot, not one taken mid optimizer step
            write_tensors(folder / lora_file(control.lora), _lora_state(control), _lora_metadata(control))
            write_tensors(folder / EMBEDDINGS_FILE, _embedding_state(control))
            if optimizer is not None:
                tensors, description = state_tensors(optimizer)
                write_tensors(folder / OPTIMIZER_TENSORS, tensors)
                write_json(folder / OPTIMIZER_FILE, {"format": OPTIMIZER_FORMAT, **description})

    return save_folder(directory, overwrite, write, Marker(CONTROL_FILE, FORMAT))


@dataclass(frozen=True)
class ControlCheckpoint:
    """A control checkpoint read and checked against a backbone, not yet put into its UNet."""

    folder: Path
    fields: list[LabelField]
    lora: LoraSpec
    lora_weights: dict[str, torch.Tensor]
    embeddings: dict[str, torch.Tensor]
    timestep_bands: int = 1

    def create(self, backbone: Backbone) -> Control:
        """Adds the control to the backbone's UNet and loads the weights (checking their shapes)."""
        control = Control(backbone, self.fields, self.lora, seed=0, timestep_bands=self.timestep_bands)
        try:
            check_tensors(self.embeddings, _embedding_state(control), str(self.folder / EMBEDDINGS_FILE))
            live_lora = _lora_state(control)
            check_tensors(self.lora_weights, live_lora, str(self.folder / lora_file(self.lora)))
            with torch.no_grad():
                for name, tensor in self.embeddings.items():
                    control.embeddings[name].weight.copy_(tensor)
                for name, tensor in self.lora_weights.items():
                    live_lora[name].copy_(tensor)
        except BaseException:
            control.close()  # leave the backbone as it was
            raise
        return control


def read_control(backbone: Backbone, directory: str) -> ControlCheckpoint:
    """Reads a control checkpoint and checks its files, its JSON and that it was trained on this
    backbone (same fingerprint)."""
    folder = checkpoint_folder(directory)
    spec = read_json(folder, CONTROL_FILE, FORMAT)
    where = str(folder / CONTROL_FILE)
    saved_backbone = json_field(spec, "backbone", dict, where)
    saved_print = json_field(saved_backbone, "fingerprint", str, where)
    fields = [_field_entry(entry, where) for entry in json_field(spec, "fields", list, where)]
    lora = json_field(spec, "lora", dict, where)
    rank, alpha = json_field(lora, "rank", int, where), json_field(lora, "alpha", float, where)
    targets = json_field(lora, "target_modules", list, where)
    per_label = lora.get("per_label", False)  # absent: written before per-label LoRA existed
    if not isinstance(per_label, bool):
        raise invalid("directory", f"{where}: 'per_label' must be true or false, got {per_label!r}")
    if not all(isinstance(t, str) for t in targets):
        raise invalid("directory", f"{where}: 'target_modules' must be a list of module names, got {targets!r}")
    bands = spec.get("timestep_bands", 1)
    try:
        label_fields, lora_spec = validate_fields(fields), validate_lora(rank, alpha, targets, per_label)
        lora_blocks(lora_spec, label_fields)
        bands = validate_timestep_bands(bands)
    except RequestError as error:
        raise invalid("directory", f"{where} describes no valid control: {error}") from error
    current = fingerprint(backbone)
    if saved_print != current:
        raise precondition(
            "directory",
            f"checkpoint was trained on backbone {saved_backbone.get('source')!r} (fingerprint {saved_print[:16]}), "
            f"this backbone is {backbone.source!r} (fingerprint {current[:16]})",
        )
    return ControlCheckpoint(
        folder, label_fields, lora_spec, read_tensors(folder, lora_file(lora_spec)), read_tensors(folder, EMBEDDINGS_FILE), bands
    )


def _field_entry(entry: object, where: str) -> tuple[str, int]:
    if not isinstance(entry, dict):
        raise invalid("directory", f"{where}: each of 'fields' must be an object, got {entry!r}")
    return json_field(entry, "name", str, where), json_field(entry, "num_classes", int, where)


def load_optimizer_state(optimizer: ControlOptimizer, directory: str) -> None:
    folder = checkpoint_folder(directory)
    description = read_json(folder, OPTIMIZER_FILE, OPTIMIZER_FORMAT)
    tensors = read_tensors(folder, OPTIMIZER_TENSORS)
    load_state_tensors(optimizer, tensors, description, str(folder / OPTIMIZER_FILE))
