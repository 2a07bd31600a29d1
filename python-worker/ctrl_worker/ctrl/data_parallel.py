"""Data-parallel training over torch.distributed: the process group and its two collective uses.

A worker started with `--distributed` (under torchrun, one worker a rank) joins the group named
by torchrun's environment before it serves. The orchestrator gives each rank a shard of every
batch (SampleRequest/RolloutRequest.shard_offset), scales each rank's Backward loss by its share
of the batch, and calls OptimizerStep on every rank: `all_reduce_gradients` then sums the
gradients over the ranks in one collective, so every rank steps from the same sums and the
parameters stay bit-identical (`parameter_checksum` lets the orchestrator check that).

Without a group every function here behaves as for one lone rank.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger("ctrl_worker")

DEFAULT_TIMEOUT_S = 600.0


class CollectiveError(dist.DistError):
    """A collective failed: the group is broken for good (the worker exits; see rpc/errors.py)."""


@dataclass(frozen=True)
class DistributedInfo:
    """What WorkerInfo.distributed reports: backend "" for a lone worker."""

    rank: int = 0
    world_size: int = 1
    backend: str = ""
    local_rank: int = 0


@dataclass(frozen=True)
class RendezvousEnv:
    """torchrun's variables, checked."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


_local_rank = 0  # LOCAL_RANK of the group this process joined


def _integer(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = environ.get(name)
    if value is None or value.strip() == "":
        if default is not None:
            return default
        raise SystemExit(f"--distributed: environment variable {name} is not set (expected an integer; start the workers with torchrun)")
    try:
        return int(value.strip())
    except ValueError:
        raise SystemExit(f"--distributed: environment variable {name} must be an integer, got {value!r}") from None


def read_env(environ: Mapping[str, str] | None = None) -> RendezvousEnv:
    """RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (LOCAL_RANK optional, 0 by default), checked; a
    SystemExit naming the variable and what was expected otherwise."""
    environ = os.environ if environ is None else environ
    world_size = _integer(environ, "WORLD_SIZE")
    if world_size < 1:
        raise SystemExit(f"--distributed: environment variable WORLD_SIZE must be at least 1, got {world_size}")
    rank = _integer(environ, "RANK")
    if not 0 <= rank < world_size:
        raise SystemExit(f"--distributed: environment variable RANK must satisfy 0 <= RANK < WORLD_SIZE={world_size}, got {rank}")
    local_rank = _integer(environ, "LOCAL_RANK", default=0)
    if not 0 <= local_rank < world_size:
        raise SystemExit(f"--distributed: environment variable LOCAL_RANK must satisfy 0 <= LOCAL_RANK < WORLD_SIZE={world_size}, got {local_rank}")
    master_addr = environ.get("MASTER_ADDR", "").strip()
    if not master_addr:
        raise SystemExit("--distributed: environment variable MASTER_ADDR is not set (expected the rank-0 host, e.g. 127.0.0.1)")
    master_port = _integer(environ, "MASTER_PORT")
    if not 1 <= master_port <= 65535:
        raise SystemExit(f"--distributed: environment variable MASTER_PORT must be a port in 1..65535, got {master_port}")
    return RendezvousEnv(rank, world_size, local_rank, master_addr, master_port)


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S, environ: Mapping[str, str] | None = None) -> DistributedInfo:
    """Joins the group torchrun's environment describes (blocks until every rank has joined, at
    most `timeout_s`, which also bounds each collective later). nccl for a CUDA device, gloo for
    the CPU."""
    global _local_rank
    env = read_env(environ)
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(device)
    # env:// reads MASTER_ADDR/MASTER_PORT from os.environ; a given mapping (tests) is put there.
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = env.master_addr, str(env.master_port)
    dist.init_process_group(
        backend, init_method="env://", rank=env.rank, world_size=env.world_size, timeout=datetime.timedelta(seconds=timeout_s)
    )
    _local_rank = env.local_rank
    return info()


def info() -> DistributedInfo:
    """This process's place in its group; a lone worker's without one."""
    if not is_initialized():
        return DistributedInfo()
    return DistributedInfo(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()), _local_rank)


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Ranks in the group; 1 when not in one."""
    return dist.get_world_size() if is_initialized() else 1


def close() -> None:
    """Leaves the group, if in one."""
    global _local_rank
    if is_initialized():
        dist.destroy_process_group()
    _local_rank = 0


def all_reduce_gradients(params: Sequence[torch.Tensor]) -> int:
    """Sums every parameter's gradient over the ranks in one flattened SUM all-reduce, written back
    into p.grad; returns how many ranks had any gradient. Every rank must call this with the same
    parameters in the same order, gradient or not (a missing one counts as zeros), so that a rank
    with no gradient never leaves the others waiting in the collective. Per parameter, the buffer
    also counts the ranks that had its gradient: a parameter no rank has a gradient for keeps
    None (the optimiser skips it, as a lone worker's would), and one some rank has gets the sum.
    """
    if not params:
        return 0
    device = params[0].device
    dtype = torch.float32
    for p in params:
        dtype = torch.promote_types(dtype, p.dtype)
    pieces = [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).to(device, dtype) for p in params]
    had = torch.tensor([float(p.grad is not None) for p in params], dtype=dtype)
    any_grad = torch.tensor([float(bool(had.any()))], dtype=dtype)
    flat = torch.cat(pieces + [had.to(device), any_grad.to(device)])
    try:
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    except RuntimeError as error:
        raise CollectiveError(f"the gradient all-reduce failed (a rank is gone, or timed out): {error}") from error
    counts = flat[-len(params) - 1 :].cpu()
    offset = 0
    for i, p in enumerate(params):
        n = p.numel()
        if counts[i] > 0:
            p.grad = flat[offset : offset + n].view_as(p).to(p.dtype).clone()
        else:
            p.grad = None
        offset += n
    return int(round(float(counts[-1])))


def parameter_checksum(params: Sequence[torch.Tensor]) -> str:
    """SHA-256 (hex) of the parameters' bytes, one after the other in the given order (detached,
    on the CPU, contiguous); ranks that stepped from the same sums agree bit for bit."""
    digest = hashlib.sha256()
    for p in params:
        data = p.detach().to("cpu").contiguous().reshape(-1)
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
