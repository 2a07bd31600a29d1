"""The worker as a hostile client sees it: malformed requests over every RPC of the contract.

An in-process server (the production one, with its token) gets, from a fixed seed: valid requests
with one to three fields mutated (huge, negative, NaN numbers; long strings, NUL bytes; handles of
the wrong kind or released; tensors of wrong shapes), hostile files on disk (tests/hostile.py),
releases racing running calls, cancellations and short deadlines, and raw garbage bytes. The worker
must never answer INTERNAL or UNKNOWN (a bug of its own), must keep serving health checks, and must
not grow its memory without bound. Counts by status code are printed (pytest -s).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.gen.ctrl.v1 import worker_pb2_grpc as pb_grpc
from ctrl_worker.rpc.server import create_server
from ctrl_worker.rpc.service import Limits, WorkerService
from ctrl_worker.rpc.telemetry import Telemetry
from hostile import hostile_dataset, hostile_paths

SEED = 20261202
MIN_REQUESTS = 1000
BUDGET_S = 40  # the mutation phase stops after this, once MIN_REQUESTS were sent
BATCH = 100  # requests between health checks
DEADLINE_S = 5.0
MAX_RSS_GROWTH = 500 << 20
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
TARGETS = ["to_q", "to_v", "conv1"]
SERVICE = pb.DESCRIPTOR.services_by_name["Worker"]

# Values a hostile client sends, by field type.
INTS = [0, 1, 2, 3, 7, 64, 65, 900, 999, 1000, 4096, 4097, 100_001, 10**7, 2**31 - 1, 2**32 - 1, 2**53, 2**63 - 1, -1, -(2**31), -(2**63)]
FLOATS = [0.0, 1.0, 0.5, -1.0, 1e-12, 1e30, 3.4e38, math.nan, math.inf, -math.inf]
TEXT = ["", "a", "convnet", "detail-convnet", "to_q", "x" * 100_000, "a\0b", "é" * 5000, "../../etc/passwd", "\ud7ff" * 10]
HANDLE_FIELDS = {"model", "control", "backbone", "classifier", "dataset", "optimizer", "trajectory", "rollout", "handle"}
PATH_FIELDS = {"source", "path", "directory", "labels_file"}


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class World:
    """What the fuzzer draws from: live handles, paths (good and hostile) and the random stream."""

    def __init__(self, rng: random.Random, tmp: Path, model_dir: Path):
        self.rng = rng
        self.handles: list[str] = []
        self.tmp = tmp
        self.model_dir = model_dir
        self.paths: list[str] = []
        self.labels_files: list[str] = []
        self.save_dirs = [str(tmp / "saves" / name) for name in ("a", "b", "ckpt-control", "ckpt-classifier", "photos")]

    def handle(self) -> str:
        if self.handles and self.rng.random() < 0.8:
            return self.rng.choice(self.handles)
        return self.rng.choice(["", "backbone/999999", "control/0", "x" * 100_000, "a\0b", "dataset/-1"])

    def path(self, field: str) -> str:
        if field == "labels_file":
            return self.rng.choice(self.labels_files + ["", "labels.csv", "../outside.csv"])
        if field == "directory" and self.rng.random() < 0.5:
            return self.rng.choice(self.save_dirs)
        return self.rng.choice(self.paths)

    def text(self, field: str) -> str:
        if field in HANDLE_FIELDS:
            return self.handle()
        if field in PATH_FIELDS:
            return self.path(field)
        return self.rng.choice(TEXT + ["a", "b", "lora", "embedding", "a" * 300])


def _int_range(field) -> tuple[int, int]:
    t = field.type
    if t in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32, field.TYPE_ENUM):
        return -(2**31), 2**31 - 1
    if t in (field.TYPE_UINT32, field.TYPE_FIXED32):
        return 0, 2**32 - 1
    if t in (field.TYPE_UINT64, field.TYPE_FIXED64):
        return 0, 2**64 - 1
    return -(2**63), 2**63 - 1


def _scalar(field, world: World):
    rng = world.rng
    if field.type == field.TYPE_STRING:
        return world.text(field.name)
    if field.type == field.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 1, 3, 12, 1000, 1 << 16]))
    if field.type == field.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        value = rng.choice(FLOATS)
        return max(min(value, 3.4e38), -3.4e38) if field.type == field.TYPE_FLOAT and math.isfinite(value) else value
    low, high = _int_range(field)
    return min(max(rng.choice(INTS + [rng.randint(-5, 2000)]), low), high)


def _tensor(message: pb.Tensor, world: World) -> None:
    rng = world.rng
    message.Clear()
    dims = rng.choice([0, 1, 2, 4, 4, 4, 9])
    shape = [rng.choice([0, 1, 2, 3, 16, 2**32, -1, 2**62]) for _ in range(dims)]
    if rng.random() < 0.5 and dims == 4:
        shape = [rng.choice([1, 2]), 16, 16, 3]
    message.shape.extend(shape)
    message.dtype = rng.choice([0, 1, 2, 3, 4, 5, 6, 99, -1])
    size = math.prod(shape) if all(0 <= d < 4096 for d in shape) else rng.randint(0, 64)
    message.data = rng.randbytes(max(0, min(size, 1 << 20) + rng.choice([0, 0, 0, 1, -1])))


def mutate(message, world: World, rounds: int, depth: int = 0) -> None:
    """Sets `rounds` randomly chosen fields of `message` (recursively) to hostile values."""
    rng = world.rng
    fields = message.DESCRIPTOR.fields
    if not fields:
        return
    for _ in range(rounds):
        field = rng.choice(fields)
        if field.message_type is not None and field.message_type.name == "Tensor" and not field.is_repeated:
            _tensor(getattr(message, field.name), world)
        elif field.message_type is not None:
            if depth > 3:
                continue
            if field.is_repeated:
                container = getattr(message, field.name)
                if field.message_type.GetOptions().map_entry:
                    continue
                del container[:]
                for _ in range(rng.choice([0, 1, 1, 2, 3, 70])):
                    mutate(container.add(), world, rng.randint(1, 3), depth + 1)
            else:
                child = getattr(message, field.name)
                child.SetInParent()
                mutate(child, world, rng.randint(1, 2), depth + 1)
        elif field.is_repeated:
            container = getattr(message, field.name)
            del container[:]
            count = rng.choice([0, 1, 2, 3, 4, 100, 5000])
            container.extend(_scalar(field, world) for _ in range(count))
        else:
            try:
                setattr(message, field.name, _scalar(field, world))
            except (ValueError, TypeError):
                pass  # a value the field's type cannot hold: the client library refuses it


def bases(world: World, state: dict) -> dict[str, object]:
    """A valid request of every RPC, built on the live handles."""
    labels = [pb.LabelValues(field="a", values=[0, 1])]
    return {
        "GetInfo": pb.GetInfoRequest(),
        "LoadBackbone": pb.LoadBackboneRequest(source=str(world.model_dir)),
        "ListHandles": pb.ListHandlesRequest(),
        "ReleaseHandle": pb.ReleaseHandleRequest(handle=world.handle()),
        "Sample": pb.SampleRequest(model=state["control"], num_samples=2, timesteps=[900, 500, 100], eta=1, labels=labels),
        "StartTrajectory": pb.StartTrajectoryRequest(model=state["backbone"], num_samples=2),
        "StepTrajectory": pb.StepTrajectoryRequest(trajectory=state["trajectory"], timestep=900, prev_timestep=500, eta=1),
        "ReadImages": pb.ReadImagesRequest(trajectory=state["trajectory"]),
        "LoadDataset": pb.LoadDatasetRequest(path=state["dataset_dir"]),
        "SyntheticImages": pb.SyntheticImagesRequest(num_images=2),
        "CreateClassifier": pb.CreateClassifierRequest(input_shape=[3, 16, 16], num_classes=3, architecture="convnet", width=4, learning_rate=1e-3),
        "TrainClassifierStep": pb.ClassifierBatchRequest(classifier=state["classifier"], dataset=state["dataset"], label_column="a", indices=[0, 1]),
        "ClassifierLogits": pb.ClassifierBatchRequest(classifier=state["classifier"], dataset=state["dataset"], indices=[0, 1]),
        "CalibrateClassifier": pb.ClassifierBatchRequest(classifier=state["classifier"], dataset=state["dataset"], label_column="a", indices=[0, 1, 2]),
        "SaveClassifier": pb.SaveRequest(handle=state["classifier"], directory=world.rng.choice(world.save_dirs), overwrite=True),
        "LoadClassifier": pb.LoadClassifierRequest(directory=state["classifier_dir"]),
        "AddControl": _control_request(state["backbone"]),
        "CreateOptimizer": pb.CreateOptimizerRequest(control=state["control"], groups=[pb.ParamGroup(name="lora", learning_rate=1e-3)]),
        "Rollout": pb.RolloutRequest(control=state["control"], num_samples=2, labels=labels, timesteps=[900, 500, 100], eta=1, grad_steps=[False, True, False]),
        "Backward": pb.BackwardRequest(rollout=world.handle(), terms=[pb.RewardTerm(weight=1, kl=pb.KlTerm())]),
        "OptimizerStep": pb.OptimizerStepRequest(optimizer=state["optimizer"]),
        "SaveControl": pb.SaveRequest(handle=state["control"], directory=world.rng.choice(world.save_dirs), overwrite=True),
        "LoadControl": pb.LoadControlRequest(backbone=state["backbone"], directory=state["control_dir"]),
        "LoadOptimizerState": pb.LoadOptimizerStateRequest(optimizer=state["optimizer"], directory=state["control_dir"]),
        "DenoisingLoss": pb.DenoisingLossRequest(control=state["control"], dataset=state["dataset"], indices=[0, 1], labels=labels, timesteps=[10, 500]),
        "TrainNoisyClassifierStep": pb.NoisyClassifierStepRequest(classifier=state["classifier"], backbone=state["backbone"], dataset=state["dataset"], label_column="a", indices=[0, 1], timesteps=[10, 500]),
        "StartGuidedTrajectory": pb.StartGuidedTrajectoryRequest(backbone=state["backbone"], num_samples=2, terms=[pb.GuidanceTerm(scale=1, classifier_free=pb.ClassifierFreeGuidance(control=state["control"], labels=labels))]),
        "ReadTrajectoryKl": pb.ReadImagesRequest(trajectory=state["trajectory"]),
    }


def _control_request(backbone: str) -> pb.AddControlRequest:
    return pb.AddControlRequest(backbone=backbone, fields=[pb.LabelField(name="a", num_classes=3)], lora_rank=2, lora_alpha=2, lora_target_modules=TARGETS)


class Client:
    def __init__(self, channel: grpc.Channel, token: str, counts: Counter, failures: list):
        self.stub = pb_grpc.WorkerStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)
        self.channel = channel
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.counts, self.failures = counts, failures
        self.lock = threading.Lock()

    def call(self, method: str, request, timeout: float = DEADLINE_S):
        """Sends one request; records its status; returns the response (or events) when OK."""
        rpc = getattr(self.stub, method)
        try:
            result = rpc(request, timeout=timeout, metadata=self.metadata)
            if SERVICE.methods_by_name[method].server_streaming:
                result = list(result)
            self._record(method, grpc.StatusCode.OK, "")
            return result
        except grpc.RpcError as error:
            self._record(method, error.code(), error.details() or "")
            return None

    def garbage(self, method: str, data: bytes) -> None:
        streaming = SERVICE.methods_by_name[method].server_streaming
        make = self.channel.unary_stream if streaming else self.channel.unary_unary
        rpc = make(f"/ctrl.v1.Worker/{method}", request_serializer=None, response_deserializer=None)
        try:
            result = rpc(data, timeout=DEADLINE_S, metadata=self.metadata)
            if streaming:
                list(result)
            self._record(method, grpc.StatusCode.OK, "")
        except grpc.RpcError as error:
            self._record(method, error.code(), error.details() or "")

    def _record(self, method: str, code, details: str) -> None:
        with self.lock:
            self.counts[code.name] += 1
            if code in FORBIDDEN:
                self.failures.append(f"{method}: {code.name}: {details[:300]}")

    def serving(self) -> bool:
        reply = self.health.Check(health_pb2.HealthCheckRequest(service="ctrl.v1.Worker"), timeout=10, metadata=self.metadata)
        return reply.status == health_pb2.HealthCheckResponse.SERVING


def _model_folders(tmp: Path, model_dir: Path) -> list[str]:
    """Copies of the tiny backbone with files diffusers rejects or that no one should read."""
    edits = {
        "undecodable": ("unet/config.json", b"\xff\xfe{"),
        "deep": ("unet/config.json", b"[" * 100_000),
        "list": ("scheduler/scheduler_config.json", b"[1]"),
        "schedule": ("scheduler/scheduler_config.json", b'{"beta_schedule": "nonsense", "num_train_timesteps": 1000}'),
        "huge": ("unet/config.json", b'{"_class_name": "UNet2DModel", "sample_size": 4294967296}'),
        "index": ("model_index.json", b"3"),
    }
    folders = []
    for name, (file, content) in edits.items():
        folder = tmp / "models" / name
        shutil.copytree(model_dir, folder)
        (folder / file).write_bytes(content)
        folders.append(str(folder))
    return folders


def _checkpoint_folders(tmp: Path) -> list[str]:
    folders = []
    for i, content in enumerate([b"\xff", b"[" * 100_000, b"[1]", b'{"format": "ctrl-classifier/1", "num_classes": ' + b"9" * 5000 + b"}"]):
        folder = tmp / "checkpoints" / str(i)
        folder.mkdir(parents=True)
        for name in ("classifier.json", "control.json", "optimizer.json"):
            (folder / name).write_bytes(content)
        folders.append(str(folder))
    return folders


def _setup(client: Client, world: World, tmp: Path) -> dict:
    data = tmp / "data"
    data.mkdir()
    # 16x16 images: the shape of the tiny backbone's samples and of the classifier's input.
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (16, 16), (60 * i, 0, 0)).save(data / f"{i}.png")
    (data / "labels.csv").write_text("file,a,b\n0.png,0,0\n1.png,1,1\n2.png,2,0\n3.png,0,1\n")
    hostile = tmp / "hostile"
    hostile.mkdir()
    world.labels_files = list(hostile_dataset(hostile))
    (tmp / "saves").mkdir()
    (tmp / "saves" / "photos").mkdir()
    (tmp / "saves" / "photos" / "holiday.jpg").write_bytes(b"precious")

    state = {"dataset_dir": str(data)}
    state["backbone"] = client.call("LoadBackbone", pb.LoadBackboneRequest(source=str(world.model_dir))).handle
    state["control"] = client.call("AddControl", _control_request(state["backbone"])).handle
    state["optimizer"] = client.call("CreateOptimizer", pb.CreateOptimizerRequest(control=state["control"], groups=[pb.ParamGroup(name="lora", learning_rate=1e-3)])).handle
    state["dataset"] = client.call("LoadDataset", pb.LoadDatasetRequest(path=str(data))).handle
    state["classifier"] = client.call("CreateClassifier", pb.CreateClassifierRequest(input_shape=[3, 16, 16], num_classes=3, architecture="convnet", width=4, learning_rate=1e-3)).handle
    state["trajectory"] = client.call("StartTrajectory", pb.StartTrajectoryRequest(model=state["backbone"], num_samples=2)).handle
    state["classifier_dir"] = str(tmp / "ckpt-classifier")
    state["control_dir"] = str(tmp / "ckpt-control")
    client.call("SaveClassifier", pb.SaveRequest(handle=state["classifier"], directory=state["classifier_dir"]))
    client.call("SaveControl", pb.SaveRequest(handle=state["control"], directory=state["control_dir"], optimizer=state["optimizer"]))
    assert set(client.counts) == {"OK"}, client.failures
    world.handles = [state[k] for k in ("backbone", "control", "optimizer", "dataset", "classifier", "trajectory")]
    world.paths = [
        str(data), str(hostile), str(world.model_dir), state["classifier_dir"], state["control_dir"], "/proc/self", "/dev/null",
        *_model_folders(tmp, world.model_dir), *_checkpoint_folders(tmp), *hostile_paths(tmp),
    ]
    return state


def _fresh_state(client: Client, world: World, state: dict) -> dict:
    """Releases what the fuzzer made (as a client would: the memory check looks for leaks, not for
    live handles) and makes the base handles again, for those it released."""
    base = {state[k] for k in ("backbone", "control", "optimizer", "dataset", "classifier", "trajectory")}
    for info in client.stub.ListHandles(pb.ListHandlesRequest(), metadata=client.metadata).handles:
        if info.handle not in base and info.kind in {"backbone", "dataset", "classifier", "rollout", "trajectory", "control"}:
            client.call("ReleaseHandle", pb.ReleaseHandleRequest(handle=info.handle))
    listed = {h.handle for h in client.stub.ListHandles(pb.ListHandlesRequest(), metadata=client.metadata).handles}
    if state["backbone"] not in listed:
        state["backbone"] = client.call("LoadBackbone", pb.LoadBackboneRequest(source=str(world.model_dir))).handle
    if state["control"] not in listed or state["backbone"] not in listed:
        client.call("ReleaseHandle", pb.ReleaseHandleRequest(handle=state["control"]))
        for child in [h.handle for h in client.stub.ListHandles(pb.ListHandlesRequest(), metadata=client.metadata).handles if h.kind == "control"]:
            client.call("ReleaseHandle", pb.ReleaseHandleRequest(handle=child))
        state["control"] = client.call("AddControl", _control_request(state["backbone"])).handle
    if state["optimizer"] not in listed or state["control"] not in listed:
        state["optimizer"] = client.call("CreateOptimizer", pb.CreateOptimizerRequest(control=state["control"], groups=[pb.ParamGroup(name="lora", learning_rate=1e-3)])).handle
    if state["dataset"] not in listed:
        state["dataset"] = client.call("LoadDataset", pb.LoadDatasetRequest(path=state["dataset_dir"])).handle
    if state["classifier"] not in listed:
        state["classifier"] = client.call("CreateClassifier", pb.CreateClassifierRequest(input_shape=[3, 16, 16], num_classes=3, architecture="convnet", width=4, learning_rate=1e-3)).handle
    if state["trajectory"] not in listed:
        state["trajectory"] = client.call("StartTrajectory", pb.StartTrajectoryRequest(model=state["backbone"], num_samples=2)).handle
    world.handles = [h.handle for h in client.stub.ListHandles(pb.ListHandlesRequest(), metadata=client.metadata).handles]
    return state


def _races(client: Client, state: dict) -> None:
    """Releases racing running calls, and calls that end by deadline or cancellation."""
    rollout = pb.RolloutRequest(control=state["control"], num_samples=8, labels=[pb.LabelValues(field="a", values=[0] * 8)], timesteps=[900, 700, 500, 300, 100], eta=1, grad_steps=[True] * 5)
    future = client.stub.Rollout.future(rollout, timeout=30, metadata=client.metadata)
    time.sleep(0.05)
    for handle in (state["control"], state["backbone"]):
        client.call("ReleaseHandle", pb.ReleaseHandleRequest(handle=handle))
    try:
        future.result()
        client._record("Rollout", grpc.StatusCode.OK, "")
    except grpc.RpcError as error:
        client._record("Rollout", error.code(), error.details() or "")
    # A Sample cancelled after its first event, and creations past a deadline of 1 ms.
    stream = client.stub.Sample(pb.SampleRequest(model=state["backbone"], num_samples=4, timesteps=list(range(990, 0, -30)), eta=1), timeout=30, metadata=client.metadata)
    try:
        next(stream)
        stream.cancel()
        list(stream)
    except grpc.RpcError as error:
        client._record("Sample", error.code(), error.details() or "")
    before = len(client.stub.ListHandles(pb.ListHandlesRequest(), metadata=client.metadata).handles)
    for _ in range(3):
        client.call("CreateClassifier", pb.CreateClassifierRequest(input_shape=[3, 16, 16], num_classes=3, architecture="convnet", width=4, learning_rate=1e-3), timeout=0.001)
    time.sleep(0.5)
    after = len(client.stub.ListHandles(pb.ListHandlesRequest(), metadata=client.metadata).handles)
    assert after <= before + 3  # a call that beat its deadline may keep its handle; a late one never does


def test_fuzz(tmp_path, tiny_backbone_dir):
    torch.set_num_threads(1)
    rng = random.Random(SEED)
    service = WorkerService(torch.device("cpu"), Limits(64 << 20, 64), Telemetry(None, "fuzz"))
    token = "fuzz-token"
    server, health_service = create_server(service, 64 << 20, token)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    health_service.set("ctrl.v1.Worker", health_pb2.HealthCheckResponse.SERVING)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
    counts: Counter[str] = Counter()
    failures: list[str] = []
    client = Client(channel, token, counts, failures)
    world = World(rng, tmp_path, Path(tiny_backbone_dir))
    try:
        state = _setup(client, world, tmp_path)
        rss_before = _rss()
        started = time.monotonic()
        methods = list(SERVICE.methods_by_name)
        sent = 0
        while sent < MIN_REQUESTS or time.monotonic() - started < BUDGET_S and sent < 3 * MIN_REQUESTS:
            for _ in range(BATCH):
                method = methods[sent % len(methods)] if rng.random() < 0.5 else rng.choice(methods)
                template = bases(world, state)[method]
                request = type(template)()
                if rng.random() < 0.85:
                    request.CopyFrom(template)
                mutate(request, world, rng.choice([1, 1, 2, 3]))
                response = client.call(method, request)
                handle = getattr(response, "handle", "") if response is not None and not isinstance(response, list) else ""
                if handle:
                    world.handles.append(handle)
                sent += 1
            for method in methods[sent // BATCH % len(methods) :: 9]:
                client.garbage(method, rng.randbytes(rng.choice([1, 7, 64, 4096])))
                sent += 1
            assert client.serving(), "the worker stopped serving health checks"
            if sent // BATCH % 3 == 0:
                _races(client, state)
            state = _fresh_state(client, world, state)
        rss_growth = _rss() - rss_before
        elapsed = time.monotonic() - started
    finally:
        channel.close()
        server.stop(grace=1).wait()
    print(f"\nfuzz: {sent} requests in {elapsed:.0f} s, RSS growth {rss_growth / 2**20:.0f} MiB; by status: {dict(sorted(counts.items()))}")
    assert not failures, "\n".join(failures[:20])
    assert sent >= MIN_REQUESTS
    assert rss_growth < MAX_RSS_GROWTH
