"""Classifier-free guidance fine-tuning: the denoising loss of a control on labelled offline images.

The control (zero-initialised label embeddings + LoRA, exactly CTRL's augmented model) is trained
with the backbone's own objective on dataset rows: x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise, and the
network, conditioned on the rows' labels, regresses the noise (or v, or x0: the backbone's
prediction type). The orchestrator chooses the rows, the timesteps and which labels are dropped to
the null label (-1): label dropout is what trains the unconditional branch of classifier-free
guidance. The loss is back-propagated into the control; gradients accumulate until OptimizerStep.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .backbones import Backbone
from ..ctrl.control import Control, Labels
from ..data.datasets import Dataset
from ..rpc.errors import invalid
from .forward_process import add_noise, alphas_at, draw_noise, row_timesteps
from ..classifiers.noisy_classifier import require_pixel_backbone
from ..rpc.tensors import uint8_to_model_range
from ..rpc.validation import positive


@dataclass(frozen=True)
class DenoisingResult:
    loss: float
    seconds: float


def training_target(backbone: Backbone, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the network regresses: the noise, v = sqrt(a) noise - sqrt(1 - a) x0, or x0 itself."""
    if backbone.prediction_type == "epsilon":
        return noise
    if backbone.prediction_type == "v_prediction":
        alpha = alphas_at(backbone, timesteps, x0.device)
        return alpha.sqrt() * noise - (1 - alpha).sqrt() * x0
    return x0


def check_rows(dataset: Dataset, backbone: Backbone, indices: list[int]) -> torch.Tensor:
    """The rows as an index tensor, after checking that the images are the backbone's samples' shape."""
    require_pixel_backbone(backbone, "control")
    if dataset.image_shape != backbone.sample_shape:
        raise invalid(
            "dataset", f"its images are {list(dataset.image_shape)} but the backbone makes {list(backbone.sample_shape)}"
        )
    return dataset.check_indices(indices, "indices")


def denoising_loss(
    control: Control,
    dataset: Dataset,
    rows: torch.Tensor,
    labels: Labels,
    timesteps: list[int],
    seed: int,
    loss_scale: float,
) -> DenoisingResult:
    """mean((prediction - target)^2) on the rows; back-propagates loss * loss_scale into the control."""
    backbone = control.backbone
    loss_scale = positive(loss_scale, "loss_scale")
    t = row_timesteps(timesteps, int(rows.numel()), backbone.num_train_timesteps)
    started = time.perf_counter()
    x0 = uint8_to_model_range(dataset.images[rows]).to(backbone.device)
    noise = draw_noise(x0.shape, torch.Generator().manual_seed(seed), backbone.device)
    x_t = add_noise(backbone, x0, t, noise)
    target = training_target(backbone, x0, noise, t)
    with backbone.lock, torch.enable_grad(), control.conditioned(labels):
        prediction = backbone.unet(x_t.to(backbone.dtype), t.to(backbone.device)).sample.float()
        loss = F.mse_loss(prediction, target)
        (loss * loss_scale).backward()
    return DenoisingResult(loss=float(loss.detach()), seconds=time.perf_counter() - started)
