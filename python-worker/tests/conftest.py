from __future__ import annotations

import pytest
import torch

from ctrl_worker.backbones import load_backbone
from ctrl_worker.testing import make_tiny_backbone


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory):
    return make_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


@pytest.fixture(scope="session")
def tiny_backbone(tiny_backbone_dir):
    return load_backbone(str(tiny_backbone_dir), "", torch.float32, torch.device("cpu"))
