"""LoadBackbone: diffusers backbones from a folder or a Hugging Face id."""

from __future__ import annotations

import torch

from ...diffusion.backbones import load_backbone
from ...gen.ctrl.v1 import worker_pb2 as pb
from ..errors import rpc_method, shorten
from ..tensors import dtype_enum, torch_dtype
from .base import ServiceBase


class BackboneCalls(ServiceBase):
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
