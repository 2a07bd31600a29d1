"""What these run-record scripts share: a finished run's sampler, thresholds and trained control,
and the image measures (mean luma as the brightness oracle computes it, grain as the evaluation does)."""
import json, os
from dataclasses import dataclass
import torch
from ctrl_worker.diffusion.backbones import Backbone, load_backbone
from ctrl_worker.ctrl.checkpoints import read_control
from ctrl_worker.ctrl.control import Control

BACKBONE = os.path.join(os.path.dirname(__file__), "../../../models/default")


def use_threads() -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))


def load_default_backbone() -> Backbone:
    return load_backbone(BACKBONE, "", torch.float32, torch.device("cpu"), None)


def sampler_timesteps(steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """The runs' DDIM timesteps (trailing spacing)."""
    return [round(num_train_timesteps - 1 - i * num_train_timesteps / steps) for i in range(steps)]


@dataclass
class Run:
    folder: str
    state: dict
    config: dict
    thresholds: list[float]
    column: str
    timesteps: list[int]
    eta: float
    backbone: Backbone
    control: Control


def load_run(folder: str, checkpoint: str | None = None) -> Run:
    """A finished run and its control at `checkpoint` (default: the last one)."""
    state = json.load(open(f"{folder}/state.json"))
    config = json.load(open(f"{folder}/config.json"))
    backbone = load_default_backbone()
    name = checkpoint or sorted(os.listdir(f"{folder}/checkpoints"))[-1]
    control = read_control(backbone, f"{folder}/checkpoints/{name}").create(backbone)
    return Run(folder, state, config, state["thresholds"], state["labelColumn"],
               sampler_timesteps(config["sampler"]["steps"]), config["sampler"]["eta"], backbone, control)


def luma(x: torch.Tensor) -> torch.Tensor:
    """Per image mean luma of x in [-1, 1] rendered to 0-255, as the brightness oracle computes it."""
    u = ((x.clamp(-1, 1) + 1) * 127.5).round()
    return (0.299 * u[:, 0] + 0.587 * u[:, 1] + 0.114 * u[:, 2]).mean((1, 2))


def brightness_class(x: torch.Tensor, thresholds: list[float]) -> torch.Tensor:
    return sum((luma(x) >= t).long() for t in thresholds)


def grain(x: torch.Tensor) -> torch.Tensor:
    """Per image mean |horizontal neighbouring pixel difference| (0-255); the evaluation's
    grain_per_label averages both directions."""
    u = (x.clamp(-1, 1) + 1) * 127.5
    return (u[:, :, :, 1:] - u[:, :, :, :-1]).abs().mean((1, 2, 3))
