"""The `ctrl.v1.Worker` service: validates each request, then calls the tensor primitives."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata

import torch

from . import __version__
from .backbones import Backbone, load_backbone, supported_dtypes
from .errors import exhausted, invalid, rpc_method
from .gen.ctrl.v1 import worker_pb2 as pb
from .gen.ctrl.v1 import worker_pb2_grpc as pb_grpc
from .handles import HandleRegistry
from .sampler import Trajectory, validate_eta, validate_seed, validate_timesteps
from .telemetry import Telemetry
from .tensors import dtype_enum, from_proto, images_to_uint8, to_proto, torch_dtype

PROTOCOL = "ctrl.v1"
_PACKAGES = ("torch", "diffusers", "peft", "transformers", "safetensors", "grpcio", "protobuf", "pyzmq", "msgpack", "numpy")
# Image chunks stay well under any message limit.
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int
    max_samples: int


class WorkerService(pb_grpc.WorkerServicer):
    def __init__(self, device: torch.device, limits: Limits, telemetry: Telemetry):
        self.device = device
        self.limits = limits
        self.telemetry = telemetry
        self.handles = HandleRegistry()

    # -- info and handles ------------------------------------------------------------------------

    @rpc_method
    def GetInfo(self, request, context):
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

    # -- backbones -------------------------------------------------------------------------------

    @rpc_method
    def LoadBackbone(self, request, context):
        dtype = torch_dtype(request.dtype, "dtype", default=torch.float32)
        backbone = load_backbone(request.source, request.revision, dtype, self.device)
        description = f"{backbone.model_class} from {request.source}, {backbone.num_parameters():,} parameters"
        handle = self.handles.add("backbone", backbone, description)
        return pb.Backbone(
            handle=handle,
            source=request.source,
            model_class=backbone.model_class,
            sample_shape=list(backbone.sample_shape),
            num_train_timesteps=backbone.num_train_timesteps,
            prediction_type=backbone.prediction_type,
            num_parameters=backbone.num_parameters(),
            dtype=dtype_enum(dtype),
        )

    def _backbone(self, name: str, field: str) -> Backbone:
        return self.handles.get(name, "backbone", Backbone, field)

    def _check_num_samples(self, num_samples: int) -> int:
        if num_samples < 1:
            raise invalid("num_samples", f"must be at least 1, got {num_samples}")
        if num_samples > self.limits.max_samples:
            raise exhausted("num_samples", f"at most {self.limits.max_samples} samples per request, got {num_samples}")
        return num_samples

    # -- sampling --------------------------------------------------------------------------------

    @rpc_method
    def Sample(self, request, context):
        backbone = self._backbone(request.model, "model")
        num_samples = self._check_num_samples(request.num_samples)
        timesteps = validate_timesteps(list(request.timesteps), backbone.num_train_timesteps, "timesteps")
        eta = validate_eta(request.eta, "eta")
        seed = validate_seed(request.seed, "seed")
        trajectory = Trajectory(backbone, num_samples, seed)
        started = time.perf_counter()
        for i, t in enumerate(timesteps):
            if not context.is_active():
                return  # the client went away: stop computing
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            trajectory.step(t, prev, eta, request.batch_size)
            elapsed = time.perf_counter() - started
            self.telemetry.progress("sample", i + 1, len(timesteps), timestep=t)
            yield pb.SampleEvent(
                progress=pb.SampleProgress(step=i + 1, total_steps=len(timesteps), timestep=t, elapsed_seconds=elapsed)
            )
        for chunk in _image_chunks(trajectory.x):
            yield pb.SampleEvent(images=chunk)

    @rpc_method
    def StartTrajectory(self, request, context):
        backbone = self._backbone(request.model, "model")
        num_samples = self._check_num_samples(request.num_samples)
        seed = validate_seed(request.seed, "seed")
        initial = None
        if request.HasField("initial_noise"):
            initial = from_proto(request.initial_noise, "initial_noise", (num_samples, *backbone.sample_shape))
            if initial.dtype != torch.float32:
                raise invalid("initial_noise.dtype", "must be DTYPE_FLOAT32")
        trajectory = Trajectory(backbone, num_samples, seed, initial)
        handle = self.handles.add(
            "trajectory", trajectory, f"{num_samples} samples of {list(backbone.sample_shape)}", parent=request.model
        )
        return pb.Trajectory(handle=handle, shape=list(trajectory.shape))

    @rpc_method
    def StepTrajectory(self, request, context):
        trajectory = self.handles.get(request.trajectory, "trajectory", Trajectory, "trajectory")
        trajectory.step(request.timestep, request.prev_timestep, request.eta, request.batch_size)
        return pb.StepTrajectoryResponse(steps_taken=trajectory.steps_taken, seconds=trajectory.seconds)

    @rpc_method
    def ReadImages(self, request, context):
        trajectory = self.handles.get(request.trajectory, "trajectory", Trajectory, "trajectory")
        yield from _image_chunks(trajectory.x)


def _image_chunks(samples: torch.Tensor):
    images = images_to_uint8(samples)
    per_image = images[0].numel()
    per_chunk = max(1, _CHUNK_BYTES // per_image)
    for first in range(0, images.shape[0], per_chunk):
        yield pb.ImageChunk(first_index=first, images=to_proto(images[first : first + per_chunk]))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


__all__ = ["Limits", "PROTOCOL", "WorkerService"]
