"""GetInfo, ListHandles, ReleaseHandle: the worker and its handles."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

from ... import __version__
from ...ctrl import data_parallel
from ...diffusion.backbones import supported_dtypes
from ...gen.ctrl.v1 import worker_pb2 as pb
from ..errors import rpc_method
from ..limits import LIMITS
from ..telemetry import memory_snapshot
from ..tensors import dtype_enum
from .base import ServiceBase

PROTOCOL = "ctrl.v1"
_PACKAGES = ("torch", "diffusers", "peft", "transformers", "safetensors", "grpcio", "protobuf", "pyzmq", "msgpack", "numpy")


class InfoCalls(ServiceBase):
    @rpc_method
    def GetInfo(self, request, context):
        memory = memory_snapshot()
        group = data_parallel.info()
        return pb.WorkerInfo(
            worker_version=__version__,
            protocol=PROTOCOL,
            python_version=platform.python_version(),
            packages={name: _version(name) for name in _PACKAGES},
            device=str(self.device),
            device_name=_device_name(self.device),
            supported_dtypes=[dtype_enum(d) for d in supported_dtypes(self.device)],
            pid=os.getpid(),
            max_message_bytes=self.limits.max_message_bytes,
            max_samples=self.limits.max_samples,
            limits=LIMITS,
            max_rss_bytes=memory["max_rss_bytes"],
            accelerator_peak_bytes=memory.get("cuda_peak_bytes", 0),
            distributed=pb.DistributedInfo(
                rank=group.rank, world_size=group.world_size, backend=group.backend, local_rank=group.local_rank
            ),
        )

    @rpc_method
    def ListHandles(self, request, context):
        return pb.ListHandlesResponse(
            handles=[pb.HandleInfo(handle=name, kind=e.kind, description=e.description) for name, e in self.handles.list()]
        )

    @rpc_method
    def ReleaseHandle(self, request, context):
        released = self.handles.release(request.handle, "handle")
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return pb.ReleaseHandleResponse(released=released)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
