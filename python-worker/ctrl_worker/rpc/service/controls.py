"""Controls and their training: add, roll out, backward, optimiser steps, checkpoints, the denoising loss."""

from __future__ import annotations

from ...ctrl.checkpoints import load_optimizer_state, read_control, save_control
from ...ctrl.control import Control, validate_fields, validate_lora, validate_timestep_bands
from ...ctrl.optim import create_optimizer, optimizer_step
from ...ctrl.rewards import backward, parse_terms
from ...ctrl.rollout import Rollout, check_grad_steps, rollout
from ...diffusion.branches import StepModel
from ...diffusion.denoising import check_rows, denoising_loss
from ...diffusion.sampler import validate_eta, validate_timesteps
from ...gen.ctrl.v1 import worker_pb2 as pb
from ..errors import RequestError, invalid, precondition, rpc_method
from ..validation import batch_size, rate, validate_seed
from .base import ServiceBase, text_condition


class ControlCalls(ServiceBase):
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
        lora = validate_lora(request.lora_rank, request.lora_alpha, list(request.lora_target_modules), request.lora_per_label)
        seed = validate_seed(request.seed, "seed")
        bands = validate_timestep_bands(request.timestep_bands or 1)
        with backbone.lock:  # check and add as one: two calls must not both add a control
            self._check_no_control(request.backbone)
            return self._add_control(context, request.backbone, Control(backbone, fields, lora, seed, bands))

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
        shard = self._check_shard(request, num_samples)
        model = StepModel(
            backbone,
            control,
            labels,
            text_condition(backbone, request, num_samples),
            fused=not request.separate_unet_calls,
            checkpointing=request.checkpointing,
        )

        def progress(step: int, total: int) -> None:
            self.telemetry.progress("rollout", step, total)

        result = rollout(model, num_samples, timesteps, eta, seed, grad_steps, rows, progress, shard)
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
        outcome = optimizer_step(opt, scale, discard=request.discard, checksum=request.checksum)
        return pb.OptimizerStepResponse(
            grad_norm=outcome.grad_norm, steps=opt.steps, skipped=outcome.skipped, parameter_checksum=outcome.parameter_checksum
        )

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

    @rpc_method
    def DenoisingLoss(self, request, context):
        control = self._control(request.control, "control")
        dataset = self._dataset(request.dataset, "dataset")
        rows = check_rows(dataset, control.backbone, list(request.indices))
        labels = control.parse_labels(request.labels, int(rows.numel()))
        seed = validate_seed(request.seed, "seed")
        result = denoising_loss(control, dataset, rows, labels, list(request.timesteps), seed, request.loss_scale)
        return pb.DenoisingLossResponse(loss=result.loss, seconds=result.seconds)
