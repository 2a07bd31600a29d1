"""The `ctrl.v1.Worker` service: validates each request, then calls the tensor primitives.

One class composed of a mixin per group of calls; each module beside this one holds one group and
ServiceBase (base.py) the state they share: the handle registry, the limits, the device.
"""

from __future__ import annotations

from ...gen.ctrl.v1 import worker_pb2_grpc as pb_grpc
from .base import Limits
from .classifiers import ClassifierCalls
from .controls import ControlCalls
from .data import DataCalls
from .info import PROTOCOL, InfoCalls
from .models import BackboneCalls
from .sampling import SamplingCalls


class WorkerService(InfoCalls, BackboneCalls, SamplingCalls, DataCalls, ClassifierCalls, ControlCalls, pb_grpc.WorkerServicer):
    pass


__all__ = ["Limits", "PROTOCOL", "WorkerService"]
