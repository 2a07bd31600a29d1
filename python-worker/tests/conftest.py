from __future__ import annotations

import os

import pytest
import torch

from ctrl_worker.diffusion.backbones import load_backbone
from ctrl_worker.tools.testing import make_tiny_backbone

# The hub is out of reach here: without this, diffusers' LoRA loader waits on network timeouts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory):
    return make_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


@pytest.fixture(scope="session")
def tiny_backbone(tiny_backbone_dir):
    return load_backbone(str(tiny_backbone_dir), "", torch.float32, torch.device("cpu"))


@pytest.fixture
def backbone(tiny_backbone_dir):
    """A backbone of its own: controls change its UNet in place."""
    return load_backbone(str(tiny_backbone_dir), "", torch.float32, torch.device("cpu"))


@pytest.fixture
def make_control(backbone):
    """make_control(fields={"a": 3}, targets=(...), rank=4, bands=1, per_label=False) -> a control on `backbone`."""
    from ctrl_worker.ctrl.control import Control, LabelField, LoraSpec

    def make(fields=None, targets=("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"), rank=4, seed=0, bands=1, per_label=False):
        fields = fields or {"a": 3, "b": 2}
        specs = [LabelField(name, k) for name, k in fields.items()]
        return Control(backbone, specs, LoraSpec(rank, float(rank), tuple(targets), per_label), seed, timestep_bands=bands)

    return make
