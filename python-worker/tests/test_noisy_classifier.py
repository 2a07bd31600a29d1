import pytest
import torch

from ctrl_worker.classifiers import classifier as clf
from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.classifiers.noisy_classifier import train_noisy_step
from support import bright_dark_dataset, tiny_classifier


def noise_aware(num_classes=2, seed=0, lr=1e-2):
    config = clf.validate_config([3, 16, 16], num_classes, "noise-aware-resnet", 4, lr, 0.0)
    return clf.create_classifier(config, seed, torch.device("cpu"))


def test_the_noise_aware_network_takes_timesteps_and_the_clean_one_refuses_them():
    plain, aware = tiny_classifier(2, seed=3), noise_aware(seed=3)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in aware.model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in aware.model.modules())  # per-sample statistics at every noise level
    x = torch.zeros(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(aware.model(x), aware.model(x, torch.zeros(2)))  # no timestep: t = 0
        assert not torch.equal(aware.model(x, torch.tensor([0, 900])), aware.model(x, torch.zeros(2)))
        with pytest.raises(ValueError):
            plain.model(x, torch.zeros(2))


def test_training_on_noised_rows_learns_and_is_seeded(backbone):
    dataset = bright_dark_dataset()
    rows = list(range(dataset.size))
    timesteps = [(37 * i) % 400 for i in rows]  # mild noise: brightness survives it
    a, b = noise_aware(), noise_aware()
    first = train_noisy_step(a, backbone, dataset, "bright", rows, timesteps, augment=True, seed=5)
    assert first == train_noisy_step(b, backbone, dataset, "bright", rows, timesteps, augment=True, seed=5)
    losses = [train_noisy_step(a, backbone, dataset, "bright", rows, timesteps, augment=True, seed=s)[0] for s in range(15)]
    assert losses[-1] < first[0]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"classifier": "plain"}, "classifier"),
        ({"timesteps": [0]}, "timesteps"),
        ({"timesteps": [0, 1000, 0, 0]}, "timesteps[1]"),
        ({"label_column": ""}, "label_column"),
        ({"label_column": "colour"}, "label_column"),
    ],
)
def test_bad_requests_name_their_field(backbone, kwargs, field):
    dataset = bright_dark_dataset(n=4)
    args = {"classifier": "aware", "label_column": "bright", "timesteps": [0, 10, 20, 30], **kwargs}
    classifier = noise_aware() if args.pop("classifier") == "aware" else tiny_classifier(2)
    with pytest.raises(RequestError) as error:
        train_noisy_step(classifier, backbone, dataset, args["label_column"], [0, 1, 2, 3], args["timesteps"], False, 0)
    assert error.value.field == field


def test_a_noise_aware_classifier_saves_and_loads(tmp_path):
    classifier = noise_aware(num_classes=3, seed=2)
    clf.save_classifier(classifier, str(tmp_path / "c"), overwrite=False)
    loaded = clf.load_classifier(str(tmp_path / "c"), torch.device("cpu"))
    assert loaded.noise_aware and loaded.config == classifier.config
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 700])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, t), classifier.model(x, t))


def test_the_baselines_refuse_a_latent_text_to_image_backbone(backbone):
    from dataclasses import replace

    from ctrl_worker.classifiers.noisy_classifier import require_pixel_backbone

    assert require_pixel_backbone(backbone, "backbone") is backbone
    with pytest.raises(RequestError) as error:
        require_pixel_backbone(replace(backbone, text_to_image=object()), "backbone")
    assert error.value.field == "backbone" and "pixel-space" in str(error.value)
