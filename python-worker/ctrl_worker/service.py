"""The `ctrl.v1.Worker` service: validates each request, then calls the tensor primitives."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata

import torch

from . import __version__
from . import classifier as clf
from . import guidance
from .backbones import Backbone, load_backbone, supported_dtypes
from .branches import StepModel
from .checkpoints import load_optimizer_state, read_control, save_control
from .conditioning import TextCondition, parse_condition
from .control import Control, validate_fields, validate_lora
from .datasets import Dataset, load_dataset
from .denoising import check_rows, denoising_loss
from .errors import RequestError, cancelled, exhausted, invalid, precondition, rpc_method, shorten
from .limits import LIMITS, MAX_SYNTHETIC_IMAGES
from .gen.ctrl.v1 import worker_pb2 as pb
from .gen.ctrl.v1 import worker_pb2_grpc as pb_grpc
from .handles import HandleRegistry
from .noisy_classifier import train_noisy_step
from .optim import ControlOptimizer, create_optimizer, optimizer_step
from .rewards import backward, parse_terms
from .rollout import Rollout, check_grad_steps, rollout
from .sampler import Trajectory, validate_eta, validate_timesteps
from .telemetry import Telemetry, memory_snapshot
from .tensors import dtype_enum, from_proto, image_chunks, images_to_uint8, to_proto, torch_dtype
from .validation import batch_size, rate, validate_seed

PROTOCOL = "ctrl.v1"
_PACKAGES = ("torch", "diffusers", "peft", "transformers", "safetensors", "grpcio", "protobuf", "pyzmq", "msgpack", "numpy")


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
        memory = memory_snapshot()
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
        autocast = None if request.autocast == pb.DTYPE_UNSPECIFIED else torch_dtype(request.autocast, "autocast")
        backbone = load_backbone(request.source, request.revision, dtype, self.device, autocast)
        description = f"{backbone.model_class} from {shorten(request.source, quote=False)}, {backbone.num_parameters():,} parameters"
        handle = self._register(context, "backbone", backbone, description)
        return pb.Backbone(
            handle=handle,
            source=request.source,
            model_class=backbone.model_class,
            sample_shape=list(backbone.sample_shape),
            num_train_timesteps=backbone.num_train_timesteps,
            prediction_type=backbone.prediction_type,
            num_parameters=backbone.num_parameters(),
            dtype=dtype_enum(dtype),
            image_shape=list(backbone.image_shape),
            text_to_image=backbone.text_to_image is not None,
            autocast=pb.DTYPE_UNSPECIFIED if autocast is None else dtype_enum(autocast),
            steps_offset=backbone.steps_offset,
            content_hash=backbone.content_hash,
        )

    def _register(self, context, kind: str, value: object, description: str, parent: str | None = None) -> str:
        """Registers a new handle, unless the client is gone (cancelled, or past its deadline): no
        one would ever learn its name, so what the call made is closed instead."""
        try:
            if not context.is_active():
                raise cancelled(f"the call was cancelled or its deadline passed; the new {kind} was not kept")
            return self.handles.add(kind, value, description, parent=parent)
        except BaseException:
            close = getattr(value, "close", None)
            if callable(close):
                close()
            raise

    def _backbone(self, name: str, field: str) -> Backbone:
        return self.handles.get(name, "backbone", Backbone, field)

    def _control(self, name: str, field: str) -> Control:
        return self.handles.get(name, "control", Control, field)

    def _classifier(self, name: str, field: str) -> clf.Classifier:
        return self.handles.get(name, "classifier", clf.Classifier, field)

    def _dataset(self, name: str, field: str) -> Dataset:
        return self.handles.get(name, "dataset", Dataset, field)

    def _optimizer(self, name: str, field: str) -> ControlOptimizer:
        return self.handles.get(name, "optimizer", ControlOptimizer, field)

    def _model(self, name: str, field: str) -> tuple[Backbone, Control | None]:
        """A backbone, or a control with the backbone it lives on."""
        kind, value = self.handles.get_one_of(name, {"backbone": Backbone, "control": Control}, field)
        if kind == "control":
            return value.backbone, value
        return value, None

    def _check_num_samples(self, num_samples: int) -> int:
        if num_samples < 1:
            raise invalid("num_samples", f"must be at least 1, got {num_samples}")
        if num_samples > self.limits.max_samples:
            raise exhausted("num_samples", f"at most {self.limits.max_samples} samples per request, got {num_samples}")
        return num_samples

    # -- sampling --------------------------------------------------------------------------------

    def _trajectory(self, request, num_samples: int, seed: int, initial=None, compute_kl: bool = False) -> Trajectory:
        """A trajectory of the backbone, or of a control with the request's labels (and, with
        compute_kl, the pre-trained reference beside it), guided by the request's prompts."""
        backbone, control = self._model(request.model, "model")
        condition = _condition(backbone, request, num_samples)
        if control is None:
            if request.labels:
                raise invalid("labels", f"only a control takes labels; {request.model} is a backbone")
            if compute_kl:
                raise invalid("compute_kl", f"needs a control in model; {request.model} is a backbone")
            model = StepModel(backbone, condition=condition)
        else:
            model = StepModel(backbone, control, control.parse_labels(request.labels, num_samples), condition)
        return Trajectory(backbone, num_samples, seed, initial, predict=model.predict, compute_kl=compute_kl)

    @rpc_method
    def Sample(self, request, context):
        backbone, _ = self._model(request.model, "model")
        num_samples = self._check_num_samples(request.num_samples)
        timesteps = validate_timesteps(list(request.timesteps), backbone.num_train_timesteps, "timesteps")
        eta = validate_eta(request.eta, "eta")
        seed = validate_seed(request.seed, "seed")
        rows = batch_size(request.batch_size)
        trajectory = self._trajectory(request, num_samples, seed, compute_kl=request.compute_kl)
        started = time.perf_counter()
        for i, t in enumerate(timesteps):
            if not context.is_active():
                return  # the client went away: stop computing
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            trajectory.step(t, prev, eta, rows)
            elapsed = time.perf_counter() - started
            self.telemetry.progress("sample", i + 1, len(timesteps), timestep=t)
            yield pb.SampleEvent(
                progress=pb.SampleProgress(step=i + 1, total_steps=len(timesteps), timestep=t, elapsed_seconds=elapsed)
            )
        if request.compute_kl:
            yield pb.SampleEvent(kl=pb.SampleKl(per_sample=trajectory.kl.tolist()))
        for chunk in image_chunks(self._images(backbone, trajectory, rows)):
            yield pb.SampleEvent(images=chunk)

    @staticmethod
    def _images(backbone: Backbone, trajectory: Trajectory, batch_size: int = 0) -> torch.Tensor:
        """The trajectory's current samples as uint8 images (VAE-decoded for latent backbones)."""
        with backbone.lock, torch.no_grad():
            return images_to_uint8(backbone.to_images(trajectory.x, batch_size))

    @rpc_method
    def StartTrajectory(self, request, context):
        backbone, _ = self._model(request.model, "model")
        num_samples = self._check_num_samples(request.num_samples)
        seed = validate_seed(request.seed, "seed")
        initial = None
        if request.HasField("initial_noise"):
            initial = from_proto(request.initial_noise, "initial_noise", (num_samples, *backbone.sample_shape), torch.float32)
        trajectory = self._trajectory(request, num_samples, seed, initial)
        handle = self._register(
            context, "trajectory", trajectory, f"{num_samples} samples of {list(backbone.sample_shape)}", parent=request.model
        )
        return pb.Trajectory(handle=handle, shape=list(trajectory.shape))

    @rpc_method
    def StepTrajectory(self, request, context):
        trajectory = self.handles.get(request.trajectory, "trajectory", Trajectory, "trajectory")
        trajectory.step(request.timestep, request.prev_timestep, request.eta, batch_size(request.batch_size))
        return pb.StepTrajectoryResponse(steps_taken=trajectory.steps_taken, seconds=trajectory.seconds)

    @rpc_method
    def ReadImages(self, request, context):
        trajectory = self.handles.get(request.trajectory, "trajectory", Trajectory, "trajectory")
        yield from image_chunks(self._images(trajectory.backbone, trajectory))

    # -- offline data ----------------------------------------------------------------------------

    @rpc_method
    def LoadDataset(self, request, context):
        dataset = load_dataset(request.path, request.labels_file, list(request.label_columns))
        columns = ", ".join(f"{c.name} ({c.num_classes})" for c in dataset.columns)
        handle = self._register(context, "dataset", dataset, f"{dataset.size} images {list(dataset.image_shape)} from {shorten(request.path, quote=False)}; {columns}")
        return pb.Dataset(
            handle=handle,
            size=dataset.size,
            image_shape=list(dataset.image_shape),
            columns=[pb.LabelColumn(name=c.name, num_classes=c.num_classes, counts=c.counts, labels=dataset.labels[c.name].tolist())
                for c in dataset.columns
            ],
        )

    @rpc_method
    def SyntheticImages(self, request, context):
        from .synthetic import generate_images

        if request.num_images < 1:
            raise invalid("num_images", f"must be at least 1, got {request.num_images}")
        if request.num_images > MAX_SYNTHETIC_IMAGES:
            raise exhausted("num_images", f"at most {MAX_SYNTHETIC_IMAGES} per request, got {request.num_images}")
        seed = validate_seed(request.seed, "seed")
        yield from image_chunks(torch.from_numpy(generate_images(request.num_images, seed)))

    # -- classifiers -----------------------------------------------------------------------------

    @rpc_method
    def CreateClassifier(self, request, context):
        config = clf.validate_config(
            list(request.input_shape), request.num_classes, request.architecture, request.width,
            request.learning_rate, request.weight_decay,
        )
        classifier = clf.create_classifier(config, validate_seed(request.seed, "seed"), self.device)
        return self._add_classifier(context, classifier)

    def _add_classifier(self, context, classifier: clf.Classifier) -> pb.Classifier:
        handle = self._register(context, "classifier", classifier, classifier.describe())
        return pb.Classifier(
            handle=handle,
            num_parameters=classifier.num_parameters(),
            num_classes=classifier.num_classes,
            temperature=classifier.temperature,
        )

    def _labelled_rows(self, request, rpc: str) -> tuple[clf.Classifier, torch.Tensor, torch.Tensor]:
        """The classifier and the dataset rows' images and labels of a training/calibration batch."""
        classifier = self._classifier(request.classifier, "classifier")
        if request.HasField("images"):
            raise invalid("images", f"{rpc} takes dataset rows; only ClassifierLogits scores given images")
        if request.return_features:
            raise invalid("return_features", f"only ClassifierLogits returns features, not {rpc}")
        if not request.label_column:
            raise invalid("label_column", f"{rpc} needs the label column of the rows")
        dataset = self._dataset(request.dataset, "dataset")
        images, labels = clf.dataset_batch(classifier, dataset, request.label_column, list(request.indices))
        assert labels is not None
        return classifier, images, labels

    @rpc_method
    def TrainClassifierStep(self, request, context):
        classifier, images, labels = self._labelled_rows(request, "TrainClassifierStep")
        learning_rate = clf.check_learning_rate(request.learning_rate)
        adversary = clf.check_adversary(request.adversarial_epsilon, request.adversarial_steps)
        loss, accuracy = clf.train_step(
            classifier, images, labels, request.augment, validate_seed(request.seed, "seed"), learning_rate=learning_rate,
            adversary=adversary,
        )
        return pb.ClassifierStepResponse(loss=loss, accuracy=accuracy)

    @rpc_method
    def ClassifierLogits(self, request, context):
        classifier = self._classifier(request.classifier, "classifier")
        _reject_training_fields(request)
        labels = None
        if request.HasField("images"):
            if request.dataset or request.label_column or request.indices:
                raise invalid("images", "give either images or dataset rows (dataset, label_column, indices), not both")
            images = clf.decode_images(request.images, classifier, "images")
        else:
            dataset = self._dataset(request.dataset, "dataset")
            images, labels = clf.dataset_batch(classifier, dataset, request.label_column, list(request.indices))
        logits, features = clf.score(classifier, images, request.return_features)
        return pb.Logits(
            logits=to_proto(logits),
            labels=[] if labels is None else labels.tolist(),
            temperature=classifier.temperature,
            features=to_proto(features) if features is not None else None,
        )

    @rpc_method
    def CalibrateClassifier(self, request, context):
        _reject_training_fields(request)
        classifier, images, labels = self._labelled_rows(request, "CalibrateClassifier")
        temperature, before, after = clf.calibrate(classifier, images, labels)
        return pb.Calibration(temperature=temperature, nll_before=before, nll_after=after)

    @rpc_method
    def SaveClassifier(self, request, context):
        classifier = self._classifier(request.handle, "handle")
        if request.optimizer:
            raise invalid("optimizer", "only a control is saved with an optimizer")
        return pb.SaveResponse(files=clf.save_classifier(classifier, request.directory, request.overwrite))

    @rpc_method
    def LoadClassifier(self, request, context):
        return self._add_classifier(context, clf.load_classifier(request.directory, self.device))

    # -- controls --------------------------------------------------------------------------------

    def _check_no_control(self, backbone: str) -> None:
        existing = self.handles.children(backbone, "control")
        if existing:
            raise precondition("backbone", f"{backbone} already has a control ({existing[0]}); release it first")

    def _add_control(self, context, backbone: str, control: Control) -> pb.Control:
        handle = self._register(context, "control", control, control.describe(), parent=backbone)
        return pb.Control(
            handle=handle,
            backbone=backbone,
            fields=[pb.LabelField(name=f.name, num_classes=f.num_classes) for f in control.fields],
            num_lora_parameters=sum(p.numel() for p in control.lora_parameters()),
            num_embedding_parameters=sum(p.numel() for p in control.embedding_parameters()),
            num_lora_modules=control.num_lora_modules,
        )

    @rpc_method
    def AddControl(self, request, context):
        backbone = self._backbone(request.backbone, "backbone")
        fields = validate_fields([(f.name, f.num_classes) for f in request.fields])
        lora = validate_lora(request.lora_rank, request.lora_alpha, list(request.lora_target_modules))
        seed = validate_seed(request.seed, "seed")
        with backbone.lock:  # check and add as one: two calls must not both add a control
            self._check_no_control(request.backbone)
            return self._add_control(context, request.backbone, Control(backbone, fields, lora, seed))

    @rpc_method
    def CreateOptimizer(self, request, context):
        control = self._control(request.control, "control")
        opt = create_optimizer(control, request.groups, request.beta1, request.beta2, request.eps, request.max_grad_norm)
        handle = self._register(context, "optimizer", opt, opt.describe(), parent=request.control)
        return pb.Optimizer(handle=handle, steps=opt.steps)

    @rpc_method
    def Rollout(self, request, context):
        control = self._control(request.control, "control")
        backbone = control.backbone
        num_samples = self._check_num_samples(request.num_samples)
        labels = control.parse_labels(request.labels, num_samples)
        timesteps = validate_timesteps(list(request.timesteps), backbone.num_train_timesteps, "timesteps")
        eta = validate_eta(request.eta, "eta")
        seed = validate_seed(request.seed, "seed")
        grad_steps = check_grad_steps(list(request.grad_steps), len(timesteps))
        rows = batch_size(request.batch_size)
        model = StepModel(
            backbone,
            control,
            labels,
            _condition(backbone, request, num_samples),
            fused=not request.separate_unet_calls,
            checkpointing=request.checkpointing,
        )

        def progress(step: int, total: int) -> None:
            self.telemetry.progress("rollout", step, total)

        result = rollout(model, num_samples, timesteps, eta, seed, grad_steps, rows, progress)
        description = f"{num_samples} samples, {len(timesteps)} steps, {result.grad_steps_kept} with gradients"
        handle = self._register(context, "rollout", result, description, parent=request.control)
        return pb.RolloutResult(
            handle=handle,
            kl_per_step=result.kl_per_step,
            kl_per_sample=result.kl.detach().cpu().tolist(),
            grad_steps_kept=result.grad_steps_kept,
            seconds=result.seconds,
            unet_calls=result.unet_calls,
        )

    @rpc_method
    def Backward(self, request, context):
        result = self.handles.get(request.rollout, "rollout", Rollout, "rollout")
        try:
            terms = parse_terms(request.terms, result, self._classifier)
            outcome = backward(result, terms, request.loss_scale)
        finally:
            self._release_quietly(request.rollout)  # a rollout is consumed, even by a failed call
        return pb.BackwardResponse(
            loss=outcome.loss,
            terms=[pb.TermValue(mean=float(v.mean()), per_sample=v.tolist()) for v in outcome.terms],
            seconds=outcome.seconds,
            non_finite=outcome.non_finite,
        )

    def _release_quietly(self, name: str) -> None:
        try:
            self.handles.release(name, "rollout")
        except RequestError:
            pass  # already gone with its control or backbone

    @rpc_method
    def OptimizerStep(self, request, context):
        opt = self._optimizer(request.optimizer, "optimizer")
        scale = 1.0 if request.learning_rate_scale == 0 else rate(request.learning_rate_scale, "learning_rate_scale")
        outcome = optimizer_step(opt, scale, discard=request.discard)
        return pb.OptimizerStepResponse(grad_norm=outcome.grad_norm, steps=opt.steps, skipped=outcome.skipped)

    @rpc_method
    def SaveControl(self, request, context):
        control = self._control(request.handle, "handle")
        opt = None
        if request.optimizer:
            opt = self._optimizer(request.optimizer, "optimizer")
            if opt.control is not control:
                raise invalid("optimizer", f"{request.optimizer} belongs to another control, not {request.handle}")
        return pb.SaveResponse(files=save_control(control, opt, request.directory, request.overwrite))

    @rpc_method
    def LoadControl(self, request, context):
        backbone = self._backbone(request.backbone, "backbone")
        checkpoint = read_control(backbone, request.directory)  # the arguments first, then the state
        with backbone.lock:
            self._check_no_control(request.backbone)
            return self._add_control(context, request.backbone, checkpoint.create(backbone))

    @rpc_method
    def LoadOptimizerState(self, request, context):
        opt = self._optimizer(request.optimizer, "optimizer")
        load_optimizer_state(opt, request.directory)
        return pb.Optimizer(handle=request.optimizer, steps=opt.steps)


    # -- baselines -------------------------------------------------------------------------------

    @rpc_method
    def DenoisingLoss(self, request, context):
        control = self._control(request.control, "control")
        dataset = self._dataset(request.dataset, "dataset")
        rows = check_rows(dataset, control.backbone, list(request.indices))
        labels = control.parse_labels(request.labels, int(rows.numel()))
        seed = validate_seed(request.seed, "seed")
        result = denoising_loss(control, dataset, rows, labels, list(request.timesteps), seed, request.loss_scale)
        return pb.DenoisingLossResponse(loss=result.loss, seconds=result.seconds)

    @rpc_method
    def TrainNoisyClassifierStep(self, request, context):
        classifier = self._classifier(request.classifier, "classifier")
        backbone = self._backbone(request.backbone, "backbone")
        dataset = self._dataset(request.dataset, "dataset")
        seed = validate_seed(request.seed, "seed")
        learning_rate = clf.check_learning_rate(request.learning_rate)
        loss, accuracy = train_noisy_step(
            classifier, backbone, dataset, request.label_column, list(request.indices), list(request.timesteps), request.augment, seed,
            learning_rate,
        )
        return pb.ClassifierStepResponse(loss=loss, accuracy=accuracy)

    @rpc_method
    def StartGuidedTrajectory(self, request, context):
        backbone = self._backbone(request.backbone, "backbone")
        num_samples = self._check_num_samples(request.num_samples)
        seed = validate_seed(request.seed, "seed")
        terms = guidance.parse_terms(request.terms, backbone, num_samples, self._control, self._classifier)
        denoiser = guidance.GuidedDenoiser(backbone, terms)
        trajectory = Trajectory(backbone, num_samples, seed, predict=denoiser, compute_kl=request.compute_kl)
        # A trajectory guided by a control goes with it when the control is released.
        controls = [t.classifier_free.control for t in request.terms if t.WhichOneof("kind") == "classifier_free"]
        description = f"{num_samples} guided samples of {list(backbone.sample_shape)} ({len(terms)} guidance terms)"
        handle = self._register(context, "trajectory", trajectory, description, parent=controls[0] if controls else request.backbone)
        return pb.Trajectory(handle=handle, shape=list(trajectory.shape))

    @rpc_method
    def ReadTrajectoryKl(self, request, context):
        trajectory = self.handles.get(request.trajectory, "trajectory", Trajectory, "trajectory")
        if not trajectory.compute_kl:
            raise precondition("trajectory", f"{request.trajectory} was not started with compute_kl")
        return pb.SampleKl(per_sample=trajectory.kl.tolist())


def _reject_training_fields(request) -> None:
    """Scoring and calibration take a ClassifierBatchRequest too; its training-only fields must be unset."""
    if request.augment:
        raise invalid("augment", "only TrainClassifierStep augments its batch")
    if request.learning_rate:
        raise invalid("learning_rate", "only TrainClassifierStep takes a learning rate")
    if request.adversarial_epsilon or request.adversarial_steps:
        raise invalid("adversarial_epsilon", "only TrainClassifierStep trains adversarially")


def _condition(backbone: Backbone, request, num_samples: int) -> TextCondition | None:
    text = request.text
    scale = text.guidance_scale if text.HasField("guidance_scale") else None
    return parse_condition(backbone, list(text.prompts), scale, num_samples, field="text")


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
