"""The synthetic pre-training images and the pretraining script (a tiny model, a few steps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ctrl_worker.tools import pretrain
from ctrl_worker.data.synthetic import generate_images, jpeg_size


def test_images_are_deterministic_by_seed():
    a, b = generate_images(40, seed=3), generate_images(40, seed=3)
    assert a.tobytes() == b.tobytes()
    assert generate_images(40, seed=4).tobytes() != a.tobytes()
    # Image i depends only on (seed, i): a shorter set is a prefix of a longer one.
    assert generate_images(10, seed=3).tobytes() == a[:10].tobytes()


def test_shape_and_dtype():
    images = generate_images(5, seed=0)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    assert generate_images(0, seed=0).shape == (0, 32, 32, 3)


def test_jpeg_sizes_and_brightness_spread_widely():
    images = generate_images(200, seed=0)
    sizes = np.array([jpeg_size(image) for image in images])
    p10, p90 = np.percentile(sizes, [10, 90])
    assert p90 >= 2 * p10, (p10, p90)
    brightness = images.mean(axis=(1, 2, 3))
    assert brightness.min() < 30 and brightness.max() > 220
    assert np.percentile(brightness, 90) - np.percentile(brightness, 10) > 100


def test_jpeg_size_grows_with_detail():
    flat = np.full((32, 32, 3), 128, dtype=np.uint8)
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert jpeg_size(noisy) > 2 * jpeg_size(flat)


def _tiny_args(out, *extra):
    return ["--out", str(out), "--size", "tiny", "--steps", "3", "--batch-size", "4", "--train-images", "16",
            "--warmup-steps", "1", *extra]


def test_pretrain_smoke_saves_a_loadable_pipeline_and_refuses_to_overwrite(tmp_path, capsys):
    from diffusers import UNet2DModel

    out = tmp_path / "model"
    assert pretrain.main(_tiny_args(out)) == 0
    for name in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json", "training.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.bin"))
    unet = UNet2DModel.from_pretrained(out, subfolder="unet", use_safetensors=True)
    info = json.loads((out / "training.json").read_text())
    assert info["steps"] == 3 and info["parameters"] == sum(p.numel() for p in unet.parameters())
    assert np.isfinite(info["final_loss"])

    weights = (out / "unet/diffusion_pytorch_model.safetensors").read_bytes()
    assert pretrain.main(_tiny_args(out, "--seed", "1")) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "unet/diffusion_pytorch_model.safetensors").read_bytes() == weights  # nothing lost

    assert pretrain.main(_tiny_args(out, "--seed", "1", "--overwrite")) == 0
    assert (out / "unet/diffusion_pytorch_model.safetensors").read_bytes() != weights
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left


def test_pretrain_can_stop_part_way_through_its_schedule(tmp_path, capsys):
    out = tmp_path / "model"
    assert pretrain.main(_tiny_args(out, "--stop-after", "2")) == 0
    info = json.loads((out / "training.json").read_text())
    assert (info["steps"], info["planned_steps"]) == (2, 3)
    with pytest.raises(SystemExit):
        pretrain.main(_tiny_args(tmp_path / "other", "--stop-after", "4"))
    assert "--stop-after 4: must be at most --steps (3)" in capsys.readouterr().err


def test_pretrain_is_reproducible(tmp_path):
    for name in ("a", "b"):
        assert pretrain.main(_tiny_args(tmp_path / name)) == 0
    a, b = ((tmp_path / n / "unet/diffusion_pytorch_model.safetensors").read_bytes() for n in ("a", "b"))
    assert a == b


def test_pretrain_refuses_a_folder_without_a_model_even_with_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    assert pretrain.main(_tiny_args(tmp_path, "--overwrite")) == 2
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--threads", "-1"], ["--train-images", "x"], ["--seed", "-2"]])
def test_pretrain_rejects_bad_arguments(tmp_path, bad):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.parse_args(["--out", str(tmp_path / "m"), *bad])
    assert exit_info.value.code == 2


def test_image_grid_layout():
    images = generate_images(10, seed=0)
    grid = np.asarray(pretrain.image_grid(images, columns=8, scale=3))
    assert grid.shape == (2 * 32 * 3, 8 * 32 * 3, 3)
    assert (grid[:3, :3] == images[0, 0, 0]).all()


def test_learning_rate_warms_up_then_decays():
    config = pretrain.PretrainConfig(out=Path("unused"), steps=100, lr=1e-3, warmup_steps=10)
    rates = [pretrain.learning_rate(step, config) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(1e-4, rel=0.01) and all(a >= b for a, b in zip(rates[10:], rates[11:]))


def test_label_gradient_is_the_slope_of_luma_along_the_label_embedding(tmp_path):
    """The published steerability figure: a central difference along the gradient's own direction
    matches its norm (float32 through 10 sampler steps: 5% relative)."""
    import torch

    out = tmp_path / "model"
    assert pretrain.main(_tiny_args(out)) == 0
    gradient = pretrain.label_gradient(out, n=4)
    assert gradient.norm() > 0
    unet, scheduler = pretrain.load_for_sampling(out)
    h = 1e-2
    with torch.no_grad():
        up, down = (pretrain.luma_with_label_offset(unet, scheduler, s * h * gradient / gradient.norm(), n=4) for s in (1, -1))
    assert float((up - down) / (2 * h)) == pytest.approx(float(gradient.norm()), rel=0.05)
