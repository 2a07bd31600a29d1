import json
import shutil

import grpc
import pytest
import torch

from ctrl_worker.diffusion.backbones import load_backbone
from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.tools.testing import make_tiny_backbone

CPU = torch.device("cpu")


def test_loads_what_save_pretrained_wrote(tiny_backbone):
    assert tiny_backbone.model_class == "UNet2DModel"
    assert tiny_backbone.sample_shape == (3, 16, 16)
    assert tiny_backbone.num_train_timesteps == 1000
    assert tiny_backbone.clip_range == 1.0
    assert tiny_backbone.alpha_cumprod(-1) == 1.0
    assert not any(p.requires_grad for p in tiny_backbone.unet.parameters())


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_other_parameterisations_convert_to_the_same_noise(tmp_path, prediction_type):
    """For a network output o that encodes the true noise eps, predict_eps must recover eps."""
    backbone = load_backbone(str(make_tiny_backbone(tmp_path / "m", prediction_type=prediction_type)), "", torch.float32, CPU)
    x0, eps, t = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), 400
    a = backbone.alpha_cumprod(t)
    x_t = a**0.5 * x0 + (1 - a) ** 0.5 * eps
    target = a**0.5 * eps - (1 - a) ** 0.5 * x0 if prediction_type == "v_prediction" else x0

    class Oracle(torch.nn.Module):
        def forward(self, x, timestep):
            return type("Out", (), {"sample": target})()

    backbone.unet = Oracle()
    torch.testing.assert_close(backbone.predict_eps(x_t, t), eps, rtol=1e-4, atol=1e-4)


def test_bad_sources_are_refused_with_the_right_status(tmp_path, tiny_backbone_dir):
    cases = {
        "missing": (str(tmp_path / "nope"), grpc.StatusCode.NOT_FOUND),
        "a file": (str(tiny_backbone_dir / "model_index.json"), grpc.StatusCode.INVALID_ARGUMENT),
        "not an id": ("has spaces/not an id", grpc.StatusCode.NOT_FOUND),
    }
    for source, code in cases.values():
        with pytest.raises(RequestError) as info:
            load_backbone(source, "", torch.float32, CPU)
        assert info.value.code == code
        assert str(info.value).startswith("source: ")


def test_unsupported_model_classes_are_a_failed_precondition(tmp_path, tiny_backbone_dir):
    folder = tmp_path / "cond"
    shutil.copytree(tiny_backbone_dir, folder)
    config_file = folder / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    config["_class_name"] = "UNet3DConditionModel"
    config_file.write_text(json.dumps(config))
    with pytest.raises(RequestError, match="model class 'UNet3DConditionModel' is not supported") as info:
        load_backbone(str(folder), "", torch.float32, CPU)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_dtype_must_suit_the_device(tiny_backbone_dir):
    with pytest.raises(RequestError, match="^dtype: "):
        load_backbone(str(tiny_backbone_dir), "", torch.float16, CPU)


def _edit_json(path, **changes):
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "file, edit",
    [
        ("unet/config.json", lambda p: p.write_bytes(b"\xff\xfe{")),
        ("unet/config.json", lambda p: p.write_bytes(b"[" * 100_000)),
        ("unet/config.json", lambda p: p.write_text("[1, 2]")),
        ("unet/config.json", lambda p: _edit_json(p, sample_size=4294967296)),
        ("unet/config.json", lambda p: _edit_json(p, block_out_channels="wide")),
        ("scheduler/scheduler_config.json", lambda p: _edit_json(p, beta_schedule="nonsense")),
        ("scheduler/scheduler_config.json", lambda p: _edit_json(p, num_train_timesteps=10**9)),
        ("scheduler/scheduler_config.json", lambda p: _edit_json(p, steps_offset="one")),
        ("model_index.json", lambda p: p.write_text("3")),
    ],
)
def test_model_folders_diffusers_rejects_are_invalid_arguments(tmp_path, tiny_backbone_dir, file, edit):
    folder = tmp_path / "m"
    shutil.copytree(tiny_backbone_dir, folder)
    edit(folder / file)
    with pytest.raises(RequestError, match=r"^source: ") as info:
        load_backbone(str(folder), "", torch.float32, CPU)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT, str(info.value)


@pytest.mark.parametrize("source", ["a\0b", "/" + "x" * 300, "/" + "d/" * 3000])
def test_paths_the_os_refuses_are_invalid_sources(source):
    with pytest.raises(RequestError, match=r"^source: ") as info:
        load_backbone(source, "", torch.float32, CPU)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
