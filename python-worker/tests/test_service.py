"""The servicer's wiring: the new RPCs called as gRPC would call them, with a stand-in context."""

import grpc
import numpy as np
import pytest
import torch
from PIL import Image

from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.rpc.service import Limits, WorkerService
from ctrl_worker.rpc.telemetry import Telemetry
from ctrl_worker.rpc.tensors import from_proto, to_proto
from support import Aborted, Context, assert_zero_kl, refused
from support import call as _call

TIMESTEPS = [900, 500, 100]
TARGETS = ["to_q", "to_v", "conv1"]


def _refused(method, request, code, pattern):
    got, details = refused(method, request)
    assert got == code
    assert details.startswith(pattern), details


@pytest.fixture
def service():
    return WorkerService(torch.device("cpu"), Limits(64 << 20, 64), Telemetry(None, "test"))


@pytest.fixture
def backbone(service, tiny_backbone_dir):
    return _call(service.LoadBackbone, pb.LoadBackboneRequest(source=str(tiny_backbone_dir))).handle


def _control_request(backbone):
    return pb.AddControlRequest(
        backbone=backbone, fields=[pb.LabelField(name="a", num_classes=3)], lora_rank=2, lora_alpha=2,
        lora_target_modules=TARGETS, seed=0,
    )


def _add_control(service, backbone):
    return _call(service.AddControl, _control_request(backbone))


def _labels(*values):
    return [pb.LabelValues(field="a", values=list(values))]


def test_a_fresh_control_samples_its_backbone_and_reports_zero_kl(service, backbone):
    control = _add_control(service, backbone)
    assert control.num_lora_modules == 4 + 4 + 8 and control.num_embedding_parameters == 4 * 64
    plain = _call(service.Sample, pb.SampleRequest(model=backbone, num_samples=2, timesteps=TIMESTEPS, eta=1, seed=4))
    events = _call(service.Sample, pb.SampleRequest(
        model=control.handle, num_samples=2, timesteps=TIMESTEPS, eta=1, seed=4, labels=_labels(0, -1), compute_kl=True,
    ))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["progress"] * 3 + ["kl", "images"]
    assert_zero_kl(events[3].kl.per_sample)
    # uint8 images: float rounding can move a value across a rounding boundary, by one level at most.
    ours = np.frombuffer(events[-1].images.images.data, np.uint8).astype(int)
    theirs = np.frombuffer(plain[-1].images.images.data, np.uint8).astype(int)
    assert np.abs(ours - theirs).max() <= 1


def test_sampling_requests_are_validated(service, backbone):
    request = pb.SampleRequest(model=backbone, num_samples=1, timesteps=TIMESTEPS, labels=_labels(0))
    _refused(service.Sample, request, grpc.StatusCode.INVALID_ARGUMENT, f"labels: only a control takes labels; {backbone} is a backbone")
    request = pb.SampleRequest(model=backbone, num_samples=1, timesteps=TIMESTEPS, compute_kl=True)
    _refused(service.Sample, request, grpc.StatusCode.INVALID_ARGUMENT, "compute_kl: needs a control in model")
    control = _add_control(service, backbone).handle
    request = pb.SampleRequest(model=control, num_samples=2, timesteps=TIMESTEPS)
    _refused(service.Sample, request, grpc.StatusCode.INVALID_ARGUMENT, "labels: no values for a")
    request = pb.StartTrajectoryRequest(model="", num_samples=1)
    _refused(service.StartTrajectory, request, grpc.StatusCode.INVALID_ARGUMENT, "model: a backbone or control handle is required")


def test_stepwise_conditional_sampling_matches_the_fused_sampler(service, backbone):
    control = _add_control(service, backbone).handle
    with torch.no_grad():  # a trained control: labels matter
        for p in service.handles.get(control, "control", object, "c").parameters():
            p.add_(0.05)
    fused = _call(service.Sample, pb.SampleRequest(model=control, num_samples=2, timesteps=TIMESTEPS, eta=1, seed=9, labels=_labels(2, 1)))
    trajectory = _call(service.StartTrajectory, pb.StartTrajectoryRequest(model=control, num_samples=2, seed=9, labels=_labels(2, 1))).handle
    for i, t in enumerate(TIMESTEPS):
        prev = TIMESTEPS[i + 1] if i + 1 < len(TIMESTEPS) else -1
        _call(service.StepTrajectory, pb.StepTrajectoryRequest(trajectory=trajectory, timestep=t, prev_timestep=prev, eta=1))
    stepwise = _call(service.ReadImages, pb.ReadImagesRequest(trajectory=trajectory))
    assert stepwise[0].images.data == fused[-1].images.images.data


def test_one_control_per_backbone_and_release_cascades(service, backbone, tmp_path):
    control = _add_control(service, backbone).handle
    _refused(service.AddControl, _control_request(backbone), grpc.StatusCode.FAILED_PRECONDITION,
             f"backbone: {backbone} already has a control ({control}); release it first")
    # A load checks its arguments first, then the backbone's state.
    _refused(service.LoadControl, pb.LoadControlRequest(backbone=backbone, directory=str(tmp_path)),
             grpc.StatusCode.INVALID_ARGUMENT, "directory: ")
    _call(service.SaveControl, pb.SaveRequest(handle=control, directory=str(tmp_path / "ckpt")))
    _refused(service.LoadControl, pb.LoadControlRequest(backbone=backbone, directory=str(tmp_path / "ckpt")),
             grpc.StatusCode.FAILED_PRECONDITION, f"backbone: {backbone} already has a control")
    optimizer = _call(service.CreateOptimizer, pb.CreateOptimizerRequest(
        control=control, groups=[pb.ParamGroup(name="embedding", learning_rate=0.1)])).handle
    rollout = _call(service.Rollout, pb.RolloutRequest(
        control=control, num_samples=1, labels=_labels(1), timesteps=TIMESTEPS, eta=1, grad_steps=[False, True, True])).handle
    released = _call(service.ReleaseHandle, pb.ReleaseHandleRequest(handle=control)).released
    assert sorted(released) == sorted([control, optimizer, rollout])
    _add_control(service, backbone)  # the UNet is free again
    assert len(_call(service.ReleaseHandle, pb.ReleaseHandleRequest(handle=backbone)).released) == 2


def test_a_training_round_trip(service, backbone, tmp_path, tiny_backbone_dir):
    control = _add_control(service, backbone).handle
    classifier = _call(service.CreateClassifier, pb.CreateClassifierRequest(
        input_shape=[3, 16, 16], num_classes=3, architecture="convnet", width=4, seed=1, learning_rate=1e-3)).handle
    optimizer = _call(service.CreateOptimizer, pb.CreateOptimizerRequest(control=control, groups=[
        pb.ParamGroup(name="lora", learning_rate=1e-3), pb.ParamGroup(name="embedding", learning_rate=1e-2)], max_grad_norm=1)).handle
    result = _call(service.Rollout, pb.RolloutRequest(
        control=control, num_samples=2, labels=_labels(0, 2), timesteps=TIMESTEPS, eta=1, seed=1,
        grad_steps=[False, True, True], checkpointing=True))
    assert result.grad_steps_kept == 2 and list(result.kl_per_sample) == [0.0, 0.0] and len(result.kl_per_step) == 3
    terms = [
        pb.RewardTerm(weight=1, classifier_log_prob=pb.ClassifierLogProbTerm(classifier=classifier, label_field="a")),
        pb.RewardTerm(weight=-0.1, kl=pb.KlTerm()),
    ]
    response = _call(service.Backward, pb.BackwardRequest(rollout=result.handle, terms=terms, loss_scale=0.5))
    assert response.loss == pytest.approx(-response.terms[0].mean, rel=1e-5)
    assert len(response.terms[0].per_sample) == 2
    assert result.handle not in [h.handle for h in _call(service.ListHandles, pb.ListHandlesRequest()).handles]
    step = _call(service.OptimizerStep, pb.OptimizerStepRequest(optimizer=optimizer))
    assert step.steps == 1 and step.grad_norm > 0
    _refused(service.OptimizerStep, pb.OptimizerStepRequest(optimizer=optimizer), grpc.StatusCode.FAILED_PRECONDITION,
             "optimizer: no gradient was accumulated")

    folder = str(tmp_path / "ckpt")
    files = _call(service.SaveControl, pb.SaveRequest(handle=control, directory=folder, optimizer=optimizer)).files
    assert files == ["control.json", "label_embeddings.safetensors", "optimizer.json", "optimizer.safetensors",
                     "pytorch_lora_weights.safetensors"]
    sample = pb.SampleRequest(model=control, num_samples=2, timesteps=TIMESTEPS, eta=1, seed=2, labels=_labels(1, 2))
    expected = _call(service.Sample, sample)[-1].images.images.data
    other = _call(service.LoadBackbone, pb.LoadBackboneRequest(source=str(tiny_backbone_dir))).handle
    loaded = _call(service.LoadControl, pb.LoadControlRequest(backbone=other, directory=folder))
    sample.model = loaded.handle
    assert _call(service.Sample, sample)[-1].images.images.data == expected
    fresh = _call(service.CreateOptimizer, pb.CreateOptimizerRequest(control=loaded.handle, groups=[
        pb.ParamGroup(name="lora", learning_rate=1e-3), pb.ParamGroup(name="embedding", learning_rate=1e-2)])).handle
    assert _call(service.LoadOptimizerState, pb.LoadOptimizerStateRequest(optimizer=fresh, directory=folder)).steps == 1


def test_a_failed_backward_still_consumes_the_rollout(service, backbone):
    control = _add_control(service, backbone).handle
    rollout = _call(service.Rollout, pb.RolloutRequest(
        control=control, num_samples=1, labels=_labels(-1), timesteps=TIMESTEPS, eta=1, grad_steps=[True] * 3)).handle
    terms = [pb.RewardTerm(weight=1, constant=pb.ConstantTerm(values=[1, 2]))]
    _refused(service.Backward, pb.BackwardRequest(rollout=rollout, terms=terms, loss_scale=1), grpc.StatusCode.INVALID_ARGUMENT,
             "terms[0].constant.values: expected 1 values")
    _refused(service.Backward, pb.BackwardRequest(rollout=rollout, terms=terms, loss_scale=1), grpc.StatusCode.NOT_FOUND, "rollout: no live handle")


def test_classifier_rpcs_on_a_dataset(service, tmp_path):
    rows = ["file,bright"]
    for i in range(8):
        Image.fromarray(np.full((16, 16, 3), 30 + 200 * (i % 2), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    dataset = _call(service.LoadDataset, pb.LoadDatasetRequest(path=str(tmp_path)))
    assert dataset.size == 8 and list(dataset.image_shape) == [3, 16, 16] and list(dataset.columns[0].counts) == [4, 4]
    assert list(dataset.columns[0].labels) == [0, 1] * 4
    classifier = _call(service.CreateClassifier, pb.CreateClassifierRequest(
        input_shape=[3, 16, 16], num_classes=2, architecture="convnet", width=4, learning_rate=1e-2)).handle
    batch = pb.ClassifierBatchRequest(classifier=classifier, dataset=dataset.handle, label_column="bright", indices=range(8))
    step = _call(service.TrainClassifierStep, pb.ClassifierBatchRequest(**{**_fields(batch), "augment": True, "seed": 1}))
    assert step.loss > 0 and 0 <= step.accuracy <= 1
    robust = _call(service.TrainClassifierStep, pb.ClassifierBatchRequest(
        **{**_fields(batch), "seed": 2, "adversarial_epsilon": 0.05, "adversarial_steps": 2}))
    assert robust.loss > 0
    for fields, message in [
        ({"adversarial_epsilon": 2.0, "adversarial_steps": 1}, "adversarial_epsilon: must be in [0, 1]"),
        ({"adversarial_epsilon": float("nan"), "adversarial_steps": 1}, "adversarial_epsilon: must be in [0, 1]"),
        ({"adversarial_epsilon": 0.1}, "adversarial_steps: must be in [1, 20]"),
        ({"adversarial_epsilon": 0.1, "adversarial_steps": 21}, "adversarial_steps: must be in [1, 20]"),
        ({"adversarial_steps": 3}, "adversarial_steps: needs adversarial_epsilon > 0"),
    ]:
        _refused(service.TrainClassifierStep, pb.ClassifierBatchRequest(**{**_fields(batch), **fields}),
                 grpc.StatusCode.INVALID_ARGUMENT, message)
    _refused(service.ClassifierLogits, pb.ClassifierBatchRequest(**{**_fields(batch), "adversarial_epsilon": 0.1}),
             grpc.StatusCode.INVALID_ARGUMENT, "adversarial_epsilon: only TrainClassifierStep trains adversarially")
    logits = _call(service.ClassifierLogits, pb.ClassifierBatchRequest(**{**_fields(batch), "return_features": True}))
    assert list(logits.labels) == [0, 1] * 4 and from_proto(logits.features, "f").shape == (8, 16)
    images = to_proto(torch.zeros(3, 16, 16, 3, dtype=torch.uint8))
    by_image = _call(service.ClassifierLogits, pb.ClassifierBatchRequest(classifier=classifier, images=images))
    assert from_proto(by_image.logits, "l").shape == (3, 2) and not by_image.labels
    _refused(service.ClassifierLogits, pb.ClassifierBatchRequest(**{**_fields(batch), "images": images}),
             grpc.StatusCode.INVALID_ARGUMENT, "images: give either images or dataset rows")
    _refused(service.TrainClassifierStep, pb.ClassifierBatchRequest(classifier=classifier, images=images),
             grpc.StatusCode.INVALID_ARGUMENT, "images: TrainClassifierStep takes dataset rows")
    calibration = _call(service.CalibrateClassifier, batch)
    assert calibration.temperature > 0 and calibration.nll_after <= calibration.nll_before + 1e-6
    saved = _call(service.SaveClassifier, pb.SaveRequest(handle=classifier, directory=str(tmp_path / "clf")))
    assert len(saved.files) == 2
    loaded = _call(service.LoadClassifier, pb.LoadClassifierRequest(directory=str(tmp_path / "clf")))
    assert loaded.temperature == pytest.approx(calibration.temperature) and loaded.num_classes == 2


def test_synthetic_images_stream_in_chunks(service):
    chunks = _call(service.SyntheticImages, pb.SyntheticImagesRequest(num_images=3, seed=7))
    images = torch.cat([from_proto(c.images, "images") for c in chunks])
    from ctrl_worker.data.synthetic import generate_images

    assert np.array_equal(images.numpy(), generate_images(3, 7))
    _refused(service.SyntheticImages, pb.SyntheticImagesRequest(num_images=0), grpc.StatusCode.INVALID_ARGUMENT, "num_images: must be at least 1")


def _fields(message) -> dict:
    return {field.name: value for field, value in message.ListFields()}


def test_get_info_reports_the_limits(service):
    from ctrl_worker.rpc.limits import LIMITS

    info = _call(service.GetInfo, pb.GetInfoRequest())
    assert dict(info.limits) == LIMITS and info.limits["max_classes"] == 100_000


@pytest.mark.parametrize(
    "changes, pattern",
    [
        (dict(num_classes=10**7), "num_classes: must be at most 100,000"),
        (dict(width=2000), "width: must be at most 256"),
        (dict(width=256, num_classes=100_000), "num_classes: the head's size \\(4 or 8 \\* width, times num_classes\\)"),
        (dict(input_shape=[3, 2**32, 16]), "input_shape\\[1\\]: a side must be at most"),
        (dict(input_shape=[2**20, 16, 16]), "input_shape\\[0\\]: channels must be at most"),
    ],
)
def test_sizes_that_allocate_have_upper_limits(service, changes, pattern):
    request = dict(input_shape=[3, 16, 16], num_classes=3, architecture="convnet", width=4, learning_rate=1e-3, **{})
    request.update(changes)
    _refused(service.CreateClassifier, pb.CreateClassifierRequest(**request), grpc.StatusCode.INVALID_ARGUMENT, pattern.replace("\\", ""))


@pytest.mark.parametrize(
    "changes, pattern",
    [
        (dict(lora_rank=10**6), "lora_rank: must be at most 256"),
        (dict(fields=[pb.LabelField(name="a", num_classes=10**7)]), "fields[0].num_classes: must be at most 100,000"),
        (dict(fields=[pb.LabelField(name=f"f{i}", num_classes=2) for i in range(100)]), "fields: at most 64 entries"),
        (dict(lora_target_modules=["x" * 300]), "lora_target_modules[0]: at most 256 characters"),
    ],
)
def test_control_sizes_have_upper_limits(service, backbone, changes, pattern):
    request = _control_request(backbone)
    for key, value in changes.items():
        request.ClearField(key)
        field = getattr(request, key)
        field.extend(value) if isinstance(value, list) else setattr(request, key, value)
    _refused(service.AddControl, request, grpc.StatusCode.INVALID_ARGUMENT, pattern)


def test_batch_sizes_have_upper_limits(service, backbone):
    request = pb.SampleRequest(model=backbone, num_samples=2, timesteps=TIMESTEPS, eta=1, seed=4, batch_size=10**6)
    _refused(service.Sample, request, grpc.StatusCode.INVALID_ARGUMENT, "batch_size: must be at most 4,096")


def test_a_cancelled_call_keeps_no_new_handle(service):
    class Cancelled(Context):
        def is_active(self):
            return False

    context = Cancelled()
    request = pb.CreateClassifierRequest(input_shape=[3, 16, 16], num_classes=3, architecture="convnet", width=4, learning_rate=1e-3)
    with pytest.raises(Aborted):
        service.CreateClassifier(request, context)
    assert context.code == grpc.StatusCode.CANCELLED
    assert list(_call(service.ListHandles, pb.ListHandlesRequest()).handles) == []


def test_releasing_a_control_while_its_rollout_runs_is_refused(service, backbone, monkeypatch):
    import threading

    from ctrl_worker.rpc.service import controls as service_module

    control = _add_control(service, backbone).handle
    started, finish = threading.Event(), threading.Event()
    real_rollout = service_module.rollout

    def slow_rollout(*args, **kwargs):
        started.set()
        finish.wait(30)
        return real_rollout(*args, **kwargs)

    monkeypatch.setattr(service_module, "rollout", slow_rollout)
    results = []
    request = pb.RolloutRequest(
        control=control, num_samples=2, labels=_labels(0, 1), timesteps=TIMESTEPS, eta=1, seed=0, grad_steps=[False, True, False]
    )
    thread = threading.Thread(target=lambda: results.append(_call(service.Rollout, request)))
    thread.start()
    assert started.wait(30)
    for handle in (control, backbone):
        _refused(service.ReleaseHandle, pb.ReleaseHandleRequest(handle=handle), grpc.StatusCode.FAILED_PRECONDITION,
                 f"handle: {handle} is in use by 1 running call")
    finish.set()
    thread.join()
    assert results[0].handle.startswith("rollout/")
    released = _call(service.ReleaseHandle, pb.ReleaseHandleRequest(handle=backbone)).released
    assert sorted(released) == sorted([backbone, control, results[0].handle])
