"""Health checks and GetInfo answer at once while every heavy thread runs a long call.

The bound, 0.5 s: answered from memory, a health check takes about a millisecond. Under load it
waits for the GIL behind the eight sampling threads (a switch interval of 5 ms each) and for two
shared CPU cores, tens of milliseconds; 0.5 s leaves a tenfold margin for a loaded CI machine and
is still far below a starved check, which waits until a heavy call ends (4 s and more).
"""

from __future__ import annotations

import statistics
import time

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.gen.ctrl.v1 import worker_pb2_grpc as pb_grpc
from ctrl_worker.rpc.server import HEAVY_THREADS, create_server
from ctrl_worker.rpc.service import Limits, WorkerService
from ctrl_worker.rpc.telemetry import Telemetry

BOUND_S = 0.5
PROBES = 7


def _median_seconds(call) -> float:
    times = []
    for _ in range(PROBES):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_health_and_info_answer_while_every_heavy_thread_is_busy(tiny_backbone_dir):
    torch.set_num_threads(1)
    service = WorkerService(torch.device("cpu"), Limits(64 << 20, 64), Telemetry(None, "control-plane"))
    server, health_service = create_server(service, 64 << 20, None)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    health_service.set("", health_pb2.HealthCheckResponse.SERVING)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub, health_stub = pb_grpc.WorkerStub(channel), health_pb2_grpc.HealthStub(channel)
    streams = []
    try:
        backbone = stub.LoadBackbone(pb.LoadBackboneRequest(source=str(tiny_backbone_dir)))
        # 1000 steps each: minutes of work, far longer than the probes below.
        request = pb.SampleRequest(model=backbone.handle, num_samples=1, timesteps=list(range(999, -1, -1)), eta=1.0)
        streams = [stub.Sample(request) for _ in range(HEAVY_THREADS)]
        for stream in streams:
            assert next(stream).WhichOneof("event") == "progress"  # running on a heavy thread
        # The premise: a heavy-pool call now waits (any quick call that is not a control call).
        with pytest.raises(grpc.RpcError) as queued:
            stub.ReadTrajectoryKl(pb.ReadImagesRequest(trajectory="trajectory/1"), timeout=0.3)
        assert queued.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        check = lambda: health_stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # noqa: E731
        info = lambda: stub.GetInfo(pb.GetInfoRequest(), timeout=5)  # noqa: E731
        assert check().status == health_pb2.HealthCheckResponse.SERVING
        health_s, info_s = _median_seconds(check), _median_seconds(info)
        assert all(not stream.done() for stream in streams), "a sampling call ended: the threads were not all busy"
        assert health_s < BOUND_S, f"health check: median {health_s:.3f} s"
        assert info_s < BOUND_S, f"GetInfo: median {info_s:.3f} s"
    finally:
        for stream in streams:
            stream.cancel()
        channel.close()
        server.stop(grace=1).wait()
