"""Sampling: the fused Sample stream, stepwise and guided trajectories, their images and KL."""

from __future__ import annotations

import time

import torch

from ...baselines import guidance
from ...diffusion.backbones import Backbone
from ...diffusion.branches import StepModel
from ...diffusion.sampler import Shard, Trajectory, validate_eta, validate_timesteps
from ...gen.ctrl.v1 import worker_pb2 as pb
from ..errors import invalid, precondition, rpc_method
from ..tensors import from_proto, image_chunks, images_to_uint8
from ..validation import batch_size, validate_seed
from .base import ServiceBase, text_condition


class SamplingCalls(ServiceBase):
    def _trajectory(
        self, request, num_samples: int, seed: int, initial=None, compute_kl: bool = False, shard: Shard | None = None
    ) -> Trajectory:
        """A trajectory of the backbone, or of a control with the request's labels (and, with
        compute_kl, the pre-trained reference beside it), guided by the request's prompts; with a
        shard, these samples are its rows of a larger batch."""
        backbone, control = self._model(request.model, "model")
        condition = text_condition(backbone, request, num_samples)
        if control is None:
            if request.labels:
                raise invalid("labels", f"only a control takes labels; {request.model} is a backbone")
            if compute_kl:
                raise invalid("compute_kl", f"needs a control in model; {request.model} is a backbone")
            model = StepModel(backbone, condition=condition)
        else:
            model = StepModel(backbone, control, control.parse_labels(request.labels, num_samples), condition)
        return Trajectory(backbone, num_samples, seed, initial, predict=model.predict, compute_kl=compute_kl, shard=shard)

    @rpc_method
    def Sample(self, request, context):
        backbone, _ = self._model(request.model, "model")
        num_samples = self._check_num_samples(request.num_samples)
        timesteps = validate_timesteps(list(request.timesteps), backbone.num_train_timesteps, "timesteps")
        eta = validate_eta(request.eta, "eta")
        seed = validate_seed(request.seed, "seed")
        rows = batch_size(request.batch_size)
        shard = self._check_shard(request, num_samples)
        trajectory = self._trajectory(request, num_samples, seed, compute_kl=request.compute_kl, shard=shard)
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
