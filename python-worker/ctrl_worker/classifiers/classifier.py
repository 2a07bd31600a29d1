"""Classifiers p(y | x) on clean images, trained step by step and calibrated by temperature scaling.

The network is the official code's `ThreeLayerConvNet`: three residual blocks (widths w, 2w, 4w,
strides 1/2/2, BatchNorm, ReLU), global average pooling and a linear head. Its inputs live in
[-1, 1], the range of the diffusion model's samples, so the CTRL reward can feed it model samples
differentiably; uint8 images are mapped there first.

"detail-convnet" (the default in ctrl's configs) puts an input stem in front of that network: it
sees each image and the image's fine detail (the image minus its 3x3 box blur), each band
standardised by its own BatchNorm. Fine detail (grain, edges: what a JPEG's size, sharpness or
noise depend on) is one or two orders of magnitude weaker than the colours it sits on; measured on
the embedded model's samples, the plain network stays at chance on 4-class JPEG size for 10 epochs
(0.31 held-out) and the stem reaches 0.81. Global attributes (brightness, colour) still reach the
network through the image band.

"stats-convnet" (the default) is "detail-convnet" whose last feature map is pooled into its mean
and its standard deviation per channel, not the mean alone. Attributes defined by a spread
(colourfulness: the spread of the opponent colours; contrast; how much grain a JPEG must encode)
are a second moment, which a mean of ReLU features only approximates. Held-out accuracy on 2000
samples of the embedded model, 10 / 20 epochs (tools/classifier_sweep.py): colourfulness 0.77 /
0.82 with the mean alone, 0.83 / 0.86 with both; JPEG size 0.895 / 0.90 and 0.90 / 0.91;
brightness 0.97 / 0.98 and 0.965 / 0.98.

"noise-aware-resnet" is the noise-aware classifier p(y | x_t, t) of classifier guidance, built as
guided-diffusion's (noise_aware_net.py); it is trained on noised images x_t (noisy_classifier.py)
and, without a timestep, sees t = 0, a clean image.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import Dataset
from ..rpc.errors import RequestError, invalid, precondition, shorten
from ..rpc.limits import MAX_ADVERSARIAL_STEPS, MAX_BATCH_SIZE, MAX_CLASSES, MAX_CLASSIFIER_HEAD, MAX_CLASSIFIER_WIDTH, at_most, count_at_most, shape_within
from .noise_aware_net import NoiseAwareResNet
from ..ctrl.storage import Marker, check_tensors, checkpoint_folder, json_field, read_json, read_tensors, save_folder, write_json, write_tensors
from ..rpc.tensors import from_proto, seeded, uint8_to_model_range
from ..rpc.validation import rate

ARCHITECTURES = ("convnet", "detail-convnet", "stats-convnet", "noise-aware-resnet")
DETAIL = "detail-convnet"
STATS = "stats-convnet"
NOISE_AWARE = "noise-aware-resnet"
DEFAULT_WIDTH = 32
FORMAT = "ctrl-classifier/1"
CONFIG_FILE, WEIGHTS_FILE = "classifier.json", "classifier.safetensors"
# Rows per forward pass when scoring many images in eval mode (bounds activation memory).
_EVAL_CHUNK = 256


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class DetailStem(nn.Module):
    """[x, x - blur3(x)], each band standardised (BatchNorm without affine parameters): 2C channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.image_norm = nn.BatchNorm2d(channels, affine=False)
        self.detail_norm = nn.BatchNorm2d(channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return torch.cat([self.image_norm(x), self.detail_norm(x - blur)], dim=1)


class ConvNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int, detail: bool = False, spread: bool = False):
        super().__init__()
        self.stem = DetailStem(in_channels) if detail else nn.Identity()
        self.layer1 = ResidualBlock(2 * in_channels if detail else in_channels, width, stride=1)
        self.layer2 = ResidualBlock(width, 2 * width, stride=2)
        self.layer3 = ResidualBlock(2 * width, 4 * width, stride=2)
        self.spread = spread
        self.fc = nn.Linear(head_inputs(width, spread), num_classes)

    def features(self, x: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled penultimate-layer vector, [n, head_inputs(width, spread)]: each channel's mean,
        then (spread) its standard deviation. A clean classifier takes no timesteps."""
        if timesteps is not None:
            raise ValueError("this classifier has no timestep input")
        h = self.layer3(self.layer2(self.layer1(self.stem(x))))
        if not self.spread:
            return h.mean(dim=(2, 3))
        # The epsilon keeps the square root's gradient finite on a constant feature map.
        return torch.cat([h.mean(dim=(2, 3)), (h.var(dim=(2, 3), unbiased=False) + 1e-6).sqrt()], dim=1)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.features(x, timesteps))


def head_inputs(width: int, spread: bool) -> int:
    """The linear head's input size: 4 * width channels, pooled by their mean (and standard deviation)."""
    return (8 if spread else 4) * width


@dataclass(frozen=True)
class ClassifierConfig:
    architecture: str
    width: int
    input_shape: tuple[int, int, int]
    num_classes: int
    learning_rate: float
    weight_decay: float


@dataclass
class Classifier:
    config: ClassifierConfig
    model: ConvNet | NoiseAwareResNet
    optimizer: torch.optim.AdamW
    device: torch.device
    temperature: float = 1.0
    # Train/eval mode and requires_grad are switched per call: one call at a time.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def noise_aware(self) -> bool:
        return self.config.architecture == NOISE_AWARE

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def describe(self) -> str:
        c = self.config
        return f"{c.architecture} (width {c.width}) on {list(c.input_shape)} images, {c.num_classes} classes"


def validate_config(
    input_shape: list[int], num_classes: int, architecture: str, width: int, learning_rate: float, weight_decay: float
) -> ClassifierConfig:
    shape = shape_within(input_shape, "input_shape")
    if num_classes < 2:
        raise invalid("num_classes", f"must be at least 2, got {num_classes}")
    at_most(num_classes, MAX_CLASSES, "num_classes")
    if architecture not in ARCHITECTURES:
        raise invalid("architecture", f"must be one of {list(ARCHITECTURES)}, got {shorten(architecture)}")
    if width < 0:
        raise invalid("width", f"must be non-negative (0 means {DEFAULT_WIDTH}), got {width}")
    width = at_most(width or DEFAULT_WIDTH, MAX_CLASSIFIER_WIDTH, "width")
    # The head is [4 or 8 * width, num_classes]: each is within its limit, their product may not be.
    head = head_inputs(width, architecture == STATS) * num_classes
    at_most(head, MAX_CLASSIFIER_HEAD, "num_classes", "the head's size (4 or 8 * width, times num_classes) must be")
    return ClassifierConfig(
        architecture=architecture,
        width=width,
        input_shape=shape,
        num_classes=int(num_classes),
        learning_rate=rate(learning_rate, "learning_rate"),
        weight_decay=rate(weight_decay, "weight_decay", allow_zero=True),
    )


def create_classifier(config: ClassifierConfig, seed: int, device: torch.device) -> Classifier:
    with seeded(seed, torch.device("cpu")):  # the same seed gives the same weights on any device
        if config.architecture == NOISE_AWARE:
            model = NoiseAwareResNet(config.input_shape[0], config.num_classes, config.width)
        else:
            model = ConvNet(
                config.input_shape[0],
                config.num_classes,
                config.width,
                detail=config.architecture in (DETAIL, STATS),
                spread=config.architecture == STATS,
            )
    model.to(device).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    return Classifier(config=config, model=model, optimizer=optimizer, device=device)


# -- batches -------------------------------------------------------------------------------------


def dataset_batch(
    classifier: Classifier, dataset: Dataset, label_column: str, indices: list[int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images [n, C, H, W] and their labels (None without a label column) of dataset rows."""
    if dataset.image_shape != classifier.config.input_shape:
        raise invalid(
            "dataset",
            f"its images are {list(dataset.image_shape)} but the classifier takes {list(classifier.config.input_shape)}",
        )
    rows = dataset.check_indices(indices, "indices")
    if not label_column:
        return dataset.images[rows], None
    column = dataset.column(label_column, "label_column")
    if column.num_classes > classifier.num_classes:
        raise invalid(
            "label_column",
            f"column {label_column!r} has {column.num_classes} classes but the classifier has {classifier.num_classes} outputs",
        )
    return dataset.images[rows], dataset.labels[label_column][rows]


def decode_images(message, classifier: Classifier, field_name: str) -> torch.Tensor:
    """A Tensor message of uint8 images [n, H, W, C] -> [n, C, H, W], its dtype and shape checked
    against the classifier's input before it is decoded."""
    channels, height, width = classifier.config.input_shape
    images = from_proto(message, field_name, (None, height, width, channels), dtype=torch.uint8)
    count_at_most(images, MAX_BATCH_SIZE, f"{field_name}.shape[0]")
    return images.permute(0, 3, 1, 2)


# -- training, scoring, calibration ----------------------------------------------------------------


# (clean images in [-1, 1], the batch's generator) -> (noised images, their timesteps).
Noising = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]



@dataclass(frozen=True)
class Adversary:
    """Adversarial training (Madry et al. 2018): each batch is replaced by its worst case within an
    L2 ball, found by `steps` steps of projected gradient ascent on the cross-entropy.

    Why: the CTRL reward back-propagates the classifier's input gradient into the diffusion model.
    A plain classifier's gradient points along directions that fool it (the brightness control
    learnt high-contrast blobs that the classifier called bright: 0.95 classifier-judged hits,
    0.75 by the oracle); a robust classifier's gradient follows the attribute itself.

    `epsilon` is the ball's radius per element (root mean square, in the model's [-1, 1] units), so
    one setting means the same for any image size: the L2 radius is epsilon * sqrt(C * H * W)."""

    epsilon: float
    steps: int

    def radius(self, x: torch.Tensor) -> float:
        return self.epsilon * math.sqrt(x[0].numel())

    def perturb(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x moved to (about) the worst point of its ball, kept in [-1, 1]; no gradient to the model."""
        radius = self.radius(x)
        step_size = 2.5 * radius / self.steps  # Madry et al.'s rule: the ascent can cross the ball
        delta = torch.zeros_like(x)
        for _ in range(self.steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(x + delta), labels)
            (gradient,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = delta + step_size * gradient / _norms(gradient).clamp_min(1e-12)
                delta = delta * (radius / _norms(delta).clamp_min(1e-12)).clamp(max=1.0)
                delta = (x + delta).clamp(-1, 1) - x
        return (x + delta).detach()


def _norms(t: torch.Tensor) -> torch.Tensor:
    """Per-row L2 norms, shaped to broadcast against t."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def check_adversary(epsilon: float, steps: int) -> Adversary | None:
    """An adversary from a request's fields: None when epsilon is 0 (plain training)."""
    if not math.isfinite(epsilon) or not 0 <= epsilon <= 1:
        raise invalid("adversarial_epsilon", f"must be in [0, 1] (a per-element radius in [-1, 1] units; 0: off), got {epsilon}")
    if epsilon == 0:
        if steps:
            raise invalid("adversarial_steps", f"needs adversarial_epsilon > 0, got {steps} steps with epsilon 0")
        return None
    if not 1 <= steps <= MAX_ADVERSARIAL_STEPS:
        raise invalid("adversarial_steps", f"must be in [1, {MAX_ADVERSARIAL_STEPS}] with adversarial_epsilon > 0, got {steps}")
    return Adversary(epsilon=float(epsilon), steps=int(steps))


def check_learning_rate(learning_rate: float, field: str = "learning_rate") -> float | None:
    """A step's learning rate: None (0: keep the current one) or a positive finite number."""
    return None if learning_rate == 0 else rate(learning_rate, field)


def train_step(
    classifier: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    augment: bool,
    seed: int,
    noising: Noising | None = None,
    learning_rate: float | None = None,
    adversary: Adversary | None = None,
) -> tuple[float, float]:
    """One AdamW step on cross-entropy (at `learning_rate`, if given, from now on); returns the
    batch's loss and accuracy. With `noising` (a noise-aware classifier), the rows are noised after
    the flips and the network sees their timesteps. With `adversary`, the step trains on the
    flipped rows' adversarial versions (loss and accuracy are theirs)."""
    if adversary is not None and (noising is not None or classifier.noise_aware):
        raise invalid("adversarial_epsilon", "adversarial training is for clean classifiers, not noise-aware ones")
    x = uint8_to_model_range(images).to(classifier.device)
    generator = torch.Generator().manual_seed(seed)
    if augment:
        flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(classifier.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    timesteps = None
    if noising is not None:
        x, timesteps = noising(x, generator)
    labels = labels.to(classifier.device)
    with classifier.lock:
        if learning_rate is not None:
            for group in classifier.optimizer.param_groups:
                group["lr"] = learning_rate
        classifier.model.train()
        try:
            if adversary is not None:
                x = adversary.perturb(classifier.model, x, labels)
            logits = classifier.model(x, timesteps)
            loss = F.cross_entropy(logits, labels)
            classifier.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            classifier.optimizer.step()
        finally:
            classifier.model.eval()
    accuracy = (logits.argmax(1) == labels).float().mean()
    return float(loss.detach()), float(accuracy)


@torch.no_grad()
def score(classifier: Classifier, images: torch.Tensor, with_features: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Uncalibrated logits [n, K] (and features) of uint8 images in eval mode."""
    logits, features = [], []
    with classifier.lock:
        for chunk in images.split(_EVAL_CHUNK):
            pooled = classifier.model.features(uint8_to_model_range(chunk).to(classifier.device))
            logits.append(classifier.model.fc(pooled).float().cpu())
            features.append(pooled.float().cpu())
    return torch.cat(logits), torch.cat(features) if with_features else None


# Temperatures searched for the calibration; a fit at either end means the logits carry (almost)
# no information (T large) or separate the held-out rows perfectly (T small).
TEMPERATURE_RANGE = (1e-2, 1e2)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T minimising the cross-entropy of softmax(logits / T), found exactly.

    The NLL is convex in beta = 1 / T (a log-sum-exp of functions linear in beta, minus one of
    them), so its derivative mean(E_softmax[z] - z_y) increases with beta and has one root:
    bisection in log beta finds it to float precision. The official code's LBFGS (lr 0.01, 50
    iterations from T = 1) moves log T by at most about 0.5 and stopped at T = 1.23 on a run whose
    optimum was 1.91."""
    z = logits.double()
    y = labels.long()
    true_logit = z.gather(1, y[:, None]).squeeze(1)

    def slope(log_beta: float) -> float:
        p = torch.softmax(z * math.exp(log_beta), dim=1)
        return float(((p * z).sum(1) - true_logit).mean())

    low, high = -math.log(TEMPERATURE_RANGE[1]), -math.log(TEMPERATURE_RANGE[0])
    if slope(low) >= 0:
        return TEMPERATURE_RANGE[1]
    if slope(high) <= 0:
        return TEMPERATURE_RANGE[0]
    for _ in range(60):
        middle = (low + high) / 2
        if slope(middle) < 0:
            low = middle
        else:
            high = middle
    return math.exp(-(low + high) / 2)


def calibrate(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, float]:
    """Temperature scaling: one scalar T minimising the held-out cross-entropy of logits / T (the
    official code's objective, solved exactly: see fit_temperature). Returns (T, NLL at the
    previous temperature, NLL at T)."""
    logits, _ = score(classifier, images, with_features=False)
    labels = labels.long()

    def nll(temperature: float) -> float:
        return float(F.cross_entropy(logits / temperature, labels))

    before = nll(classifier.temperature)
    temperature = fit_temperature(logits, labels)
    if not math.isfinite(temperature) or temperature <= 0:
        raise precondition("classifier", f"calibration diverged (T = {temperature}); check the logits")
    classifier.temperature = temperature
    return temperature, before, nll(temperature)


def log_prob(
    classifier: Classifier, x: torch.Tensor, labels: torch.Tensor, timesteps: torch.Tensor | None = None
) -> torch.Tensor:
    """log softmax(classifier(x) / T)[label] per sample, for x in [-1, 1] (or x_t at `timesteps`,
    for a noise-aware classifier); differentiable in x. The classifier is in eval mode and gets no
    gradient: the caller holds `frozen(classifier)`."""
    logits = classifier.model(x.to(classifier.device).float(), timesteps)
    return F.log_softmax(logits / classifier.temperature, dim=1).gather(1, labels[:, None].to(x.device)).squeeze(1)


@contextmanager
def frozen(classifier: Classifier) -> Iterator[Classifier]:
    """Holds the classifier's lock with its parameters out of autograd (restored on exit), so a
    reward back-propagates into the samples only, never into the classifier."""
    with classifier.lock:
        classifier.model.eval().requires_grad_(False)
        try:
            yield classifier
        finally:
            classifier.model.requires_grad_(True)


# -- persistence ---------------------------------------------------------------------------------


def save_classifier(classifier: Classifier, directory: str, overwrite: bool) -> list[str]:
    def write(folder: Path) -> None:
        config = {**asdict(classifier.config), "input_shape": list(classifier.config.input_shape)}
        write_json(folder / CONFIG_FILE, {"format": FORMAT, **config, "temperature": classifier.temperature})
        with classifier.lock:
            write_tensors(folder / WEIGHTS_FILE, classifier.model.state_dict())

    return save_folder(directory, overwrite, write, Marker(CONFIG_FILE, FORMAT))


def load_classifier(directory: str, device: torch.device) -> Classifier:
    folder = checkpoint_folder(directory)
    raw = read_json(folder, CONFIG_FILE, FORMAT)
    where = str(folder / CONFIG_FILE)
    shape = json_field(raw, "input_shape", list, where)
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise invalid("directory", f"{where}: 'input_shape' must be three positive integers, got {shape!r}")
    try:
        config = validate_config(
            shape,
            json_field(raw, "num_classes", int, where),
            json_field(raw, "architecture", str, where),
            json_field(raw, "width", int, where),
            json_field(raw, "learning_rate", float, where),
            json_field(raw, "weight_decay", float, where),
        )
    except RequestError as error:
        raise invalid("directory", f"{where}: {error}") from error
    temperature = json_field(raw, "temperature", float, where)
    if not math.isfinite(temperature) or temperature <= 0:
        raise invalid("directory", f"{where}: 'temperature' must be positive and finite, got {temperature}")
    classifier = create_classifier(config, seed=0, device=device)
    weights = read_tensors(folder, WEIGHTS_FILE)
    check_tensors(weights, classifier.model.state_dict(), str(folder / WEIGHTS_FILE))
    classifier.model.load_state_dict(weights)
    classifier.temperature = temperature
    return classifier
