import grpc
import json

import pytest
import torch
import torch.nn.functional as F

from ctrl_worker.classifiers import classifier as clf
from ctrl_worker.data.datasets import Dataset
from ctrl_worker.rpc.errors import RequestError
from support import bright_dark_dataset, tiny_classifier


_dataset = bright_dark_dataset


def test_same_seed_same_weights_and_a_pooled_feature_vector():
    a, b = tiny_classifier(2, seed=3), tiny_classifier(2, seed=3)
    for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(p, q)
    images = _dataset().images[:5]
    logits, features = clf.score(a, images, with_features=True)
    assert logits.shape == (5, 2) and features.shape == (5, 16)  # 4 * width
    torch.testing.assert_close(logits, a.model.fc(features))


def _trained(dataset: Dataset, steps: int = 15) -> clf.Classifier:
    classifier = tiny_classifier(2, seed=0)
    images, labels = clf.dataset_batch(classifier, dataset, "bright", list(range(dataset.size)))
    classifier.optimizer.param_groups[0]["lr"] = 1e-2
    losses = [clf.train_step(classifier, images, labels, augment=True, seed=step)[0] for step in range(steps)]
    assert losses[-1] < losses[0]
    return classifier


def test_training_learns_an_easy_problem():
    dataset = _dataset()
    classifier = _trained(dataset)
    logits, _ = clf.score(classifier, dataset.images, with_features=False)
    assert (logits.argmax(1) == dataset.labels["bright"]).float().mean() >= 0.9
    assert not classifier.model.training  # back in eval mode after each step


def test_the_adversary_finds_a_worse_point_inside_its_ball():
    dataset = _dataset()
    classifier = _trained(dataset)
    x = dataset.images[:8].float() / 127.5 - 1
    labels = dataset.labels["bright"][:8]
    adversary = clf.Adversary(epsilon=0.05, steps=3)
    classifier.optimizer.zero_grad(set_to_none=True)
    moved = adversary.perturb(classifier.model.eval(), x, labels)
    radius = adversary.radius(x)  # 0.05 * sqrt(3 * 16 * 16)
    assert radius == pytest.approx(0.05 * (3 * 16 * 16) ** 0.5)
    assert float((moved - x).flatten(1).norm(dim=1).max()) <= radius * (1 + 1e-5)
    assert moved.min() >= -1 and moved.max() <= 1
    with torch.no_grad():
        clean_loss = F.cross_entropy(classifier.model(x), labels)
        worse_loss = F.cross_entropy(classifier.model(moved), labels)
    assert worse_loss > clean_loss
    assert all(p.grad is None for p in classifier.model.parameters()), "the attack leaves no gradient on the weights"


def test_adversarial_training_steps_and_refuses_noise_aware_use():
    dataset = _dataset()
    classifier = tiny_classifier(2, seed=0)
    images, labels = clf.dataset_batch(classifier, dataset, "bright", list(range(dataset.size)))
    adversary = clf.check_adversary(0.02, 2)
    loss, accuracy = clf.train_step(classifier, images, labels, augment=True, seed=0, adversary=adversary)
    assert loss > 0 and 0 <= accuracy <= 1
    assert clf.check_adversary(0.0, 0) is None
    noising = lambda x, g: (x, torch.zeros(len(x), dtype=torch.long))
    with pytest.raises(RequestError, match="adversarial_epsilon"):
        clf.train_step(classifier, images, labels, augment=False, seed=0, noising=noising, adversary=adversary)


def test_calibration_cools_an_over_confident_classifier():
    dataset = _dataset(n=64)
    classifier = _trained(dataset)
    # Noisy labels and inflated logits: an over-confident classifier.
    noisy = dataset.labels["bright"].clone()
    noisy[::4] = 1 - noisy[::4]
    with torch.no_grad():
        classifier.model.fc.weight.mul_(20)
    fit, held_out = slice(0, 32), slice(32, 64)
    logits, _ = clf.score(classifier, dataset.images[held_out], with_features=False)
    held_out_before = F.cross_entropy(logits, noisy[held_out])

    temperature, before, after = clf.calibrate(classifier, dataset.images[fit], noisy[fit])
    assert temperature > 1 and classifier.temperature == temperature
    assert after < before
    assert F.cross_entropy(logits / temperature, noisy[held_out]) <= held_out_before


@pytest.mark.parametrize("true_temperature", [0.5, 1.91, 4.0])
def test_the_temperature_fit_recovers_a_known_temperature(true_temperature):
    # Labels drawn from softmax(z); the logits handed to the fit are z * T, so the NLL's minimum
    # is at T up to sampling noise (about 1% with 40 000 rows).
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(40_000, 4, generator=generator, dtype=torch.float64) * 3
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=generator).squeeze(1)
    fitted = clf.fit_temperature((z * true_temperature).float(), labels)
    assert fitted == pytest.approx(true_temperature, rel=0.02)


def test_the_temperature_fit_is_the_minimum_of_the_nll():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 5, generator=generator) * 4
    labels = torch.multinomial(torch.softmax(logits / 2, 1), 1, generator=generator).squeeze(1)  # optimum near T = 2
    fitted = clf.fit_temperature(logits, labels)
    assert clf.TEMPERATURE_RANGE[0] < fitted < clf.TEMPERATURE_RANGE[1]
    nll = lambda t: float(F.cross_entropy(logits.double() / t, labels))  # noqa: E731
    # Bisection to float precision: moving T by 0.1% either way does not lower the NLL.
    assert nll(fitted) <= min(nll(fitted * 1.001), nll(fitted / 1.001)) + 1e-12


def test_the_temperature_fit_stays_in_range_for_degenerate_logits():
    labels = torch.tensor([0, 1, 0, 1])
    perfect = torch.tensor([[5.0, -5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, 5.0]])
    assert clf.fit_temperature(perfect, labels) == clf.TEMPERATURE_RANGE[0]
    assert clf.fit_temperature(-perfect, labels) == clf.TEMPERATURE_RANGE[1]


def test_the_detail_stem_feeds_the_network_the_image_and_its_fine_detail():
    classifier = clf.create_classifier(clf.validate_config([3, 8, 8], 2, "detail-convnet", 4, 1e-3, 0.0), 0, torch.device("cpu"))
    assert classifier.model.layer1.conv1.in_channels == 6
    flat = torch.full((2, 3, 8, 8), 0.3)
    stem = classifier.model.stem
    # A flat image has no detail: its detail band is zero (up to the blur's float rounding) and
    # stays so through the band's normalisation (eval mode: running mean 0, variance 1 at first).
    out = stem.eval()(flat)
    assert out.shape == (2, 6, 8, 8)
    torch.testing.assert_close(out[:, 3:], torch.zeros(2, 3, 8, 8), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, :3], flat / (1 + 1e-5) ** 0.5)


def test_the_stats_network_pools_each_channels_mean_and_spread(tmp_path):
    classifier = clf.create_classifier(clf.validate_config([3, 8, 8], 2, "stats-convnet", 4, 1e-3, 0.0), 0, torch.device("cpu"))
    model = classifier.model
    assert model.layer1.conv1.in_channels == 6, "the detail stem in front"
    images = _dataset().images[:5]
    x = images.float() / 127.5 - 1
    logits, features = clf.score(classifier, images, with_features=True)
    assert features.shape == (5, 32)  # 4 * width means, then 4 * width standard deviations
    with torch.no_grad():
        h = model.layer3(model.layer2(model.layer1(model.stem(x))))
    torch.testing.assert_close(features[:, :16], h.mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features[:, 16:], h.std(dim=(2, 3), unbiased=False), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(logits, model.fc(features))
    # A flat image makes constant feature maps: the spread's gradient stays finite there.
    flat = torch.zeros(2, 3, 8, 8, requires_grad=True)
    model(flat).sum().backward()
    assert torch.isfinite(flat.grad).all()
    clf.save_classifier(classifier, str(tmp_path / "c"), overwrite=False)
    loaded = clf.load_classifier(str(tmp_path / "c"), torch.device("cpu"))
    assert loaded.config.architecture == "stats-convnet"
    assert torch.equal(clf.score(loaded, images, False)[0], logits)


def test_batches_are_checked_against_the_classifier():
    classifier = tiny_classifier(2)
    dataset = _dataset()
    with pytest.raises(RequestError, match=r"^indices\[1\]: must be below the dataset size 48, got 48"):
        clf.dataset_batch(classifier, dataset, "bright", [0, 48])
    with pytest.raises(RequestError, match=r"^indices: at least one row index"):
        clf.dataset_batch(classifier, dataset, "bright", [])
    with pytest.raises(RequestError, match=r"^label_column: no label column 'size' in this dataset; it has bright"):
        clf.dataset_batch(classifier, dataset, "size", [0])
    with pytest.raises(RequestError, match=r"^dataset: its images are \[3, 16, 16\] but the classifier takes \[3, 32, 32\]"):
        clf.dataset_batch(tiny_classifier(2, size=32), dataset, "bright", [0])
    with pytest.raises(RequestError, match=r"^label_column: column 'bright' has 2 classes but the classifier has 1"):
        small = tiny_classifier(2)
        small.config = clf.ClassifierConfig("convnet", 4, (3, 16, 16), 1, 1e-3, 0.0)
        clf.dataset_batch(small, dataset, "bright", [0])


def test_given_images_are_checked():
    classifier = tiny_classifier(2)
    from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
    from ctrl_worker.rpc.tensors import to_proto

    good = torch.zeros(2, 16, 16, 3, dtype=torch.uint8)
    assert clf.decode_images(to_proto(good), classifier, "images").shape == (2, 3, 16, 16)
    with pytest.raises(RequestError, match=r"^images\.dtype: must be DTYPE_UINT8"):
        clf.decode_images(to_proto(good.float()), classifier, "images")
    with pytest.raises(RequestError, match=r"^images\.shape: expected \['n >= 1', 16, 16, 3\], got \[2, 3, 16, 16\]"):
        clf.decode_images(to_proto(good.permute(0, 3, 1, 2).contiguous()), classifier, "images")
    # Shapes are checked before the bytes: a claimed 2^32 rows with no data never reaches numpy.
    with pytest.raises(RequestError, match=r"^images\.shape: expected"):
        clf.decode_images(pb.Tensor(shape=[1, 2**32, 16, 3], dtype=pb.DTYPE_UINT8), classifier, "images")
    with pytest.raises(RequestError, match=r"^images\.data: holds 0 bytes"):
        clf.decode_images(pb.Tensor(shape=[2**32, 16, 16, 3], dtype=pb.DTYPE_UINT8), classifier, "images")


@pytest.mark.parametrize(
    "args, pattern",
    [
        (([3, 16], 2, "convnet", 0, 1e-3, 0.0), r"^input_shape: must be \[channels, height, width\]"),
        (([3, 16, 16], 1, "convnet", 0, 1e-3, 0.0), r"^num_classes: must be at least 2"),
        (([3, 16, 16], 2, "mlp", 0, 1e-3, 0.0), r"^architecture: must be one of \['convnet', 'detail-convnet', 'stats-convnet', 'noise-aware-resnet'\], got 'mlp'"),
        (([3, 16, 16], 2, "convnet", 0, 0.0, 0.0), r"^learning_rate: must be positive"),
        (([3, 16, 16], 2, "convnet", 0, 1e-3, -1.0), r"^weight_decay: must be non-negative"),
    ],
)
def test_settings_are_validated(args, pattern):
    with pytest.raises(RequestError, match=pattern) as info:
        clf.validate_config(*args)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert clf.validate_config([3, 16, 16], 2, "convnet", 0, 1e-3, 0.0).width == 32


def test_save_and_load_round_trip(tmp_path):
    classifier = tiny_classifier(2, seed=0)
    dataset = _dataset()
    images, labels = clf.dataset_batch(classifier, dataset, "bright", list(range(16)))
    clf.train_step(classifier, images, labels, augment=False, seed=0)  # moves the BatchNorm statistics
    classifier.temperature = 1.5
    files = clf.save_classifier(classifier, str(tmp_path / "c"), overwrite=False)
    assert files == ["classifier.json", "classifier.safetensors"]

    loaded = clf.load_classifier(str(tmp_path / "c"), torch.device("cpu"))
    assert loaded.temperature == 1.5 and loaded.config == classifier.config
    assert torch.equal(clf.score(loaded, images, False)[0], clf.score(classifier, images, False)[0])
    assert torch.equal(loaded.model.layer1.bn1.running_mean, classifier.model.layer1.bn1.running_mean)

    with pytest.raises(RequestError, match=r"^directory: .* already exists; set overwrite") as info:
        clf.save_classifier(classifier, str(tmp_path / "c"), overwrite=False)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_load_refuses_bad_folders(tmp_path):
    with pytest.raises(RequestError, match=r"^directory: no folder") as info:
        clf.load_classifier(str(tmp_path / "none"), torch.device("cpu"))
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(RequestError, match=r"^directory: .* has no classifier.json") as info:
        clf.load_classifier(str(tmp_path), torch.device("cpu"))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    folder = tmp_path / "c"
    clf.save_classifier(tiny_classifier(2), str(folder), overwrite=False)
    config = json.loads((folder / "classifier.json").read_text())
    (folder / "classifier.json").write_text(json.dumps({**config, "width": 8}))
    with pytest.raises(RequestError, match=r"^directory: .*classifier.safetensors: fc.weight is \[2, 16\] torch.float32, the model needs \[2, 32\]"):
        clf.load_classifier(str(folder), torch.device("cpu"))
    (folder / "classifier.json").write_text(json.dumps({**config, "format": "other/1"}))
    with pytest.raises(RequestError, match=r"has format 'other/1'; expected 'ctrl-classifier/1'"):
        clf.load_classifier(str(folder), torch.device("cpu"))
    (folder / "classifier.json").write_text(json.dumps({**config, "temperature": -1}))
    with pytest.raises(RequestError, match=r"'temperature' must be positive"):
        clf.load_classifier(str(folder), torch.device("cpu"))
