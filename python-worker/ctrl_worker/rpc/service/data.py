"""Offline data: image-folder datasets and the synthetic generator's images."""

from __future__ import annotations

import torch

from ...data.datasets import load_dataset
from ...gen.ctrl.v1 import worker_pb2 as pb
from ..errors import exhausted, invalid, rpc_method, shorten
from ..limits import MAX_SYNTHETIC_IMAGES
from ..tensors import image_chunks
from ..validation import validate_seed
from .base import ServiceBase


class DataCalls(ServiceBase):
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
        from ...data.synthetic import generate_images

        if request.num_images < 1:
            raise invalid("num_images", f"must be at least 1, got {request.num_images}")
        if request.num_images > MAX_SYNTHETIC_IMAGES:
            raise exhausted("num_images", f"at most {MAX_SYNTHETIC_IMAGES} per request, got {request.num_images}")
        seed = validate_seed(request.seed, "seed")
        yield from image_chunks(torch.from_numpy(generate_images(request.num_images, seed)))
