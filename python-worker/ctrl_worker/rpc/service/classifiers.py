"""Reward classifiers: create, train (plain and noise-aware), score, calibrate, save, load."""

from __future__ import annotations

import torch

from ...classifiers import classifier as clf
from ...classifiers.noisy_classifier import train_noisy_step
from ...gen.ctrl.v1 import worker_pb2 as pb
from ..errors import invalid, rpc_method
from ..tensors import to_proto
from ..validation import rate, validate_seed
from .base import ServiceBase


class ClassifierCalls(ServiceBase):
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


def _reject_training_fields(request) -> None:
    """Scoring and calibration take a ClassifierBatchRequest too; its training-only fields must be unset."""
    if request.augment:
        raise invalid("augment", "only TrainClassifierStep augments its batch")
    if request.learning_rate:
        raise invalid("learning_rate", "only TrainClassifierStep takes a learning rate")
    if request.adversarial_epsilon or request.adversarial_steps:
        raise invalid("adversarial_epsilon", "only TrainClassifierStep trains adversarially")
