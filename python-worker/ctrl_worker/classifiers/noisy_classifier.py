"""Training a noise-aware classifier p(y | x_t, t) for classifier guidance (Dhariwal & Nichol).

The rows are noised by the backbone's forward process to timesteps chosen by the orchestrator,
then the classifier ("noise-aware-resnet") takes one AdamW step on cross-entropy, as a clean
classifier does in TrainClassifierStep.
"""

from __future__ import annotations

import torch

from ..diffusion.backbones import Backbone
from .classifier import Classifier, Noising, dataset_batch, train_step
from ..data.datasets import Dataset
from ..rpc.errors import invalid, precondition
from ..diffusion.forward_process import add_noise, draw_noise, row_timesteps


def require_noise_aware(classifier: Classifier, field: str) -> Classifier:
    if not classifier.noise_aware:
        raise invalid(
            field, f"is a {classifier.config.architecture} classifier; this needs one created with architecture noise-aware-resnet"
        )
    return classifier


def require_pixel_backbone(backbone: Backbone, field: str) -> Backbone:
    """The baselines work on pixel-space backbones: their classifiers and data see the samples themselves."""
    if backbone.text_to_image is not None:
        raise precondition(
            field, f"{backbone.model_class} is a latent text-to-image backbone; the baselines need a pixel-space one (UNet2DModel)"
        )
    return backbone


def noising(backbone: Backbone, timesteps: torch.Tensor) -> Noising:
    """x0 -> (x_t, t) with noise drawn from the batch's generator."""

    def noise(x0: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        t = timesteps.to(x0.device)
        return add_noise(backbone, x0, t, draw_noise(x0.shape, generator, x0.device)), t

    return noise


def train_noisy_step(
    classifier: Classifier,
    backbone: Backbone,
    dataset: Dataset,
    label_column: str,
    indices: list[int],
    timesteps: list[int],
    augment: bool,
    seed: int,
    learning_rate: float | None = None,
) -> tuple[float, float]:
    """One step on noised rows (at `learning_rate`, if given); returns the batch's loss and accuracy."""
    require_noise_aware(classifier, "classifier")
    require_pixel_backbone(backbone, "backbone")
    if classifier.config.input_shape != backbone.sample_shape:
        raise invalid(
            "backbone",
            f"makes {list(backbone.sample_shape)} samples but the classifier takes {list(classifier.config.input_shape)}",
        )
    if not label_column:
        raise invalid("label_column", "TrainNoisyClassifierStep needs the label column of the rows")
    images, labels = dataset_batch(classifier, dataset, label_column, indices)
    assert labels is not None
    t = row_timesteps(timesteps, len(indices), backbone.num_train_timesteps)
    return train_step(classifier, images, labels, augment, seed, noising(backbone, t), learning_rate)
