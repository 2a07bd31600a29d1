"""What these run-record scripts share: a finished run's sampler, thresholds and trained control,
and the image measures (mean luma as the brightness oracle computes it, grain as the evaluation does)."""
import json, os
from dataclasses import dataclass
import torch
from ctrl_worker.diffusion.backbones import Backbone, load_backbone
from ctrl_worker.ctrl.checkpoints import read_control
from ctrl_worker.ctrl.control import Control, Labels
from ctrl_worker.diffusion.branches import StepModel
from ctrl_worker.diffusion.sampler import Trajectory
from ctrl_worker.tools.step_ablation import sampler_timesteps

BACKBONE = os.path.join(os.path.dirname(__file__), "../../../models/default")


def use_threads() -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))


def load_default_backbone() -> Backbone:
    return load_backbone(BACKBONE, "", torch.float32, torch.device("cpu"), None)




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
               sampler_timesteps(config, backbone.num_train_timesteps, backbone.steps_offset), config["sampler"]["eta"],
               backbone, control)


def sample_class(run: Run, k: int, n: int, seed: int, pretrained: bool = False) -> torch.Tensor:
    """n images asked for class k with the run's sampler: the control's, or with `pretrained` the
    pre-trained model's from the same noise."""
    model = StepModel(run.backbone, run.control, Labels({run.column: torch.full((n,), k)}), None, fused=True)
    trajectory = Trajectory(run.backbone, n, seed)
    with torch.no_grad():
        for i, t in enumerate(run.timesteps):
            prev = run.timesteps[i + 1] if i + 1 < len(run.timesteps) else -1
            eps, eps_ref = model.predict(trajectory.x, t, pretrained)
            trajectory.advance(t, prev, run.eta, eps_ref if pretrained else eps, None)
    return trajectory.x


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
