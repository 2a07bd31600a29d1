"""AdamW over a control's parameters, in the official code's two groups: LoRA and label embeddings.

OptimizerStep clips the global gradient norm over all the control's parameters (LoRA and
embedding, as the official code does), steps and zeroes the gradients. In a data-parallel group
(data_parallel.py) it first sums the gradients over the ranks, and can return a checksum of the
parameters so that the ranks can be checked to agree. Its state travels as plain
tensors (safetensors) plus JSON, never as a pickle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import data_parallel
from .control import Control
from ..rpc.errors import invalid, precondition
from ..rpc.validation import non_negative, positive, rate, unique, unit_interval

GROUPS = ("lora", "embedding")
DEFAULT_BETAS = (0.9, 0.999)
DEFAULT_EPS = 1e-8
_STATE_KEYS = ("exp_avg", "exp_avg_sq", "step")


@dataclass
class ControlOptimizer:
    control: Control
    optimizer: torch.optim.AdamW
    group_names: list[str]
    max_grad_norm: float
    steps: int = 0

    def params(self) -> list[torch.nn.Parameter]:
        """The optimiser's parameters in a fixed order: group by group."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def describe(self) -> str:
        groups = ", ".join(f"{g['name']} lr {g['lr']:g}" for g in self.optimizer.param_groups)
        return f"AdamW ({groups}), clip {self.max_grad_norm:g}"


def create_optimizer(control: Control, groups, beta1: float, beta2: float, eps: float, max_grad_norm: float) -> ControlOptimizer:
    """groups: ParamGroup messages (name, learning_rate, weight_decay); zero betas/eps take the defaults."""
    if not groups:
        raise invalid("groups", f"at least one parameter group ({' or '.join(GROUPS)}) is required")
    names = unique([g.name for g in groups], "groups", ".name")
    params = {"lora": control.lora_parameters(), "embedding": control.embedding_parameters()}
    param_groups = []
    for i, (name, group) in enumerate(zip(names, groups)):
        if name not in GROUPS:
            raise invalid(f"groups[{i}].name", f"must be one of {', '.join(GROUPS)}, got {name!r}")
        param_groups.append(
            {
                "name": name,
                "params": params[name],
                "lr": rate(group.learning_rate, f"groups[{i}].learning_rate"),
                "weight_decay": rate(group.weight_decay, f"groups[{i}].weight_decay", allow_zero=True),
            }
        )
    betas = (
        unit_interval(beta1, "beta1") or DEFAULT_BETAS[0],
        unit_interval(beta2, "beta2") or DEFAULT_BETAS[1],
    )
    eps = DEFAULT_EPS if eps == 0 else positive(eps, "eps")
    optimizer = torch.optim.AdamW(param_groups, betas=betas, eps=eps)
    return ControlOptimizer(control, optimizer, names, non_negative(max_grad_norm, "max_grad_norm"))


@dataclass(frozen=True)
class StepOutcome:
    grad_norm: float  # before clipping
    skipped: bool  # no step: discarded, or a non-finite norm
    parameter_checksum: str = ""  # when asked: data_parallel.parameter_checksum of params() after the step


def optimizer_step(opt: ControlOptimizer, learning_rate_scale: float = 1.0, discard: bool = False, checksum: bool = False) -> StepOutcome:
    """Clip, step (every group at its learning rate times `learning_rate_scale`), zero the
    gradients. A non-finite norm skips the step (as a gradient scaler would) but still zeroes the
    gradients; `discard` only zeroes them. In a group of several ranks the gradients are first
    summed over the ranks (every rank must call this, with the same `discard`; a discard makes no
    collective). `checksum`: also hash the parameters after the step (or the skip)."""
    params = opt.control.parameters()
    if discard:
        grads = [p.grad for p in params if p.grad is not None]
        norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
        for p in params:
            p.grad = None
        return _outcome(opt, norm, True, checksum)
    if data_parallel.world_size() > 1:
        # Before any check that could raise on this rank alone: the others would wait in the
        # collective. No gradient on any rank leaves every rank without one, so all raise below.
        data_parallel.all_reduce_gradients(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        raise precondition(
            "optimizer", "no gradient was accumulated since the last step: call Backward on a rollout that kept gradients"
            + (f" (none on any of the group's {data_parallel.world_size()} ranks)" if data_parallel.world_size() > 1 else "")
        )
    norm = torch.nn.utils.get_total_norm(grads)
    if opt.max_grad_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, opt.max_grad_norm, norm)
    norm = float(norm)
    if math.isfinite(norm):
        base = [group["lr"] for group in opt.optimizer.param_groups]
        with opt.control.backbone.lock:
            for group in opt.optimizer.param_groups:
                group["lr"] *= learning_rate_scale
            try:
                opt.optimizer.step()
            finally:
                for group, lr in zip(opt.optimizer.param_groups, base):
                    group["lr"] = lr
            opt.control.version += 1  # rollouts made before this step can no longer back-propagate
        opt.steps += 1
    for p in params:
        p.grad = None
    return _outcome(opt, norm, not math.isfinite(norm), checksum)


def _outcome(opt: ControlOptimizer, norm: float, skipped: bool, checksum: bool) -> StepOutcome:
    return StepOutcome(norm, skipped, data_parallel.parameter_checksum(opt.params()) if checksum else "")


# -- state as tensors ----------------------------------------------------------------------------


def state_tensors(opt: ControlOptimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """The AdamW state flattened to tensors ("state.<i>.exp_avg", ... for parameter i in params()
    order) and the JSON description that goes with it."""
    tensors = {}
    for i, p in enumerate(opt.params()):
        state = opt.optimizer.state.get(p, {})
        for key in _STATE_KEYS:
            if key in state:
                value = state[key]
                tensors[f"state.{i}.{key}"] = value if torch.is_tensor(value) else torch.tensor(float(value))
    groups = [
        {
            "name": g["name"],
            "lr": g["lr"],
            "weight_decay": g["weight_decay"],
            "betas": list(g["betas"]),
            "eps": g["eps"],
            "shapes": [list(p.shape) for p in g["params"]],
        }
        for g in opt.optimizer.param_groups
    ]
    return tensors, {"groups": groups, "max_grad_norm": opt.max_grad_norm, "steps": opt.steps}


def load_state_tensors(opt: ControlOptimizer, tensors: dict[str, torch.Tensor], description: dict, where: str) -> None:
    """Loads moments and step counts saved by `state_tensors` after checking that the groups,
    parameter count and shapes match. The hyperparameters stay those this optimiser was created
    with: the orchestrator owns them."""
    saved_groups = description.get("groups")
    if not isinstance(saved_groups, list) or [g.get("name") if isinstance(g, dict) else None for g in saved_groups] != opt.group_names:
        raise invalid("directory", f"{where}: its groups do not match this optimizer's ({', '.join(opt.group_names)})")
    for saved, group in zip(saved_groups, opt.optimizer.param_groups):
        shapes = [list(p.shape) for p in group["params"]]
        if saved.get("shapes") != shapes:
            raise invalid(
                "directory",
                f"{where}: group {group['name']!r} holds {len(saved.get('shapes') or [])} parameters of other shapes "
                f"than this optimizer's {len(shapes)}",
            )
    steps = description.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise invalid("directory", f"{where}: 'steps' must be a non-negative integer, got {steps!r}")
    params = opt.params()
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit() or parts[2] not in _STATE_KEYS:
            raise invalid("directory", f"{where}: unexpected tensor {name!r}")
        index = int(parts[1])
        if index >= len(params):
            raise invalid("directory", f"{where}: {name!r} refers to parameter {index}, but there are {len(params)}")
        expected = () if parts[2] == "step" else tuple(params[index].shape)
        if tuple(tensor.shape) != expected:
            raise invalid("directory", f"{where}: {name} is {list(tensor.shape)}, expected {list(expected)}")
        by_index.setdefault(index, {})[parts[2]] = tensor.float() if parts[2] == "step" else tensor.to(params[index])
    for index, entry in by_index.items():
        if set(entry) != set(_STATE_KEYS):
            raise invalid("directory", f"{where}: parameter {index} lacks some of {', '.join(_STATE_KEYS)}")
    state = {params[index]: entry for index, entry in by_index.items()}
    opt.optimizer.state.clear()
    opt.optimizer.state.update(state)
    opt.steps = steps
