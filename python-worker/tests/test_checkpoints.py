import json

import grpc
import pytest
import torch
from safetensors.torch import load_file, save_file

from ctrl_worker.diffusion.backbones import load_backbone
from ctrl_worker.ctrl.checkpoints import fingerprint, load_optimizer_state, read_control, save_control
from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.ctrl.optim import create_optimizer, optimizer_step
from ctrl_worker.ctrl.rewards import backward
from ctrl_worker.tools.testing import make_tiny_backbone
from support import classifier_term, label_messages, perturb, run_rollout, sample, tiny_classifier

CPU = torch.device("cpu")


def load_control(backbone, directory):
    return read_control(backbone, directory).create(backbone)


def _labels(control):
    return control.parse_labels(label_messages(a=[0, 2, -1], b=[1, 0, 1]), 3)


def test_round_trip_gives_the_same_samples(tmp_path, backbone, tiny_backbone_dir, make_control):
    control = make_control(fields={"a": 3, "b": 2})
    perturb(control)
    expected = sample(backbone, control, _labels(control)).x
    files = save_control(control, None, str(tmp_path / "ckpt"), overwrite=False)
    assert files == [
        "control.json", "label_embeddings.safetensors", "pytorch_lora_weights.safetensors",
    ]
    spec = json.loads((tmp_path / "ckpt" / "control.json").read_text())
    assert spec["format"] == "ctrl-control/1" and spec["backbone"]["fingerprint"] == fingerprint(backbone)
    assert spec["lora"] == {"rank": 4, "alpha": 4.0, "target_modules": ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"], "per_label": False}
    lora = load_file(str(tmp_path / "ckpt" / "pytorch_lora_weights.safetensors"))
    assert lora and all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in lora)
    assert load_file(str(tmp_path / "ckpt" / "label_embeddings.safetensors"))["a"].shape == (4, 64)

    other = load_backbone(str(tiny_backbone_dir), "", torch.float32, CPU)  # the same weights, loaded again
    loaded = load_control(other, str(tmp_path / "ckpt"))
    assert torch.equal(sample(other, loaded, _labels(loaded)).x, expected)


def test_banded_embeddings_round_trip_and_older_checkpoints_have_one_band(tmp_path, backbone, tiny_backbone_dir, make_control):
    control = make_control(fields={"a": 3, "b": 2}, bands=4)
    perturb(control)
    expected = sample(backbone, control, _labels(control)).x
    save_control(control, None, str(tmp_path / "ckpt"), overwrite=False)
    control.close()
    spec_file = tmp_path / "ckpt" / "control.json"
    assert json.loads(spec_file.read_text())["timestep_bands"] == 4
    assert load_file(str(tmp_path / "ckpt" / "label_embeddings.safetensors"))["a"].shape == (4, 4 * 64)
    loaded = load_control(backbone, str(tmp_path / "ckpt"))
    assert loaded.timestep_bands == 4
    assert torch.equal(sample(backbone, loaded, _labels(loaded)).x, expected)
    loaded.close()

    old = make_control(fields={"a": 3, "b": 2})
    save_control(old, None, str(tmp_path / "old"), overwrite=False)
    old.close()
    spec = json.loads((tmp_path / "old" / "control.json").read_text())
    del spec["timestep_bands"]  # written before bands existed
    del spec["lora"]["per_label"]  # and before per-label LoRA
    (tmp_path / "old" / "control.json").write_text(json.dumps(spec))
    old_loaded = load_control(backbone, str(tmp_path / "old"))
    assert old_loaded.timestep_bands == 1 and not old_loaded.lora.per_label


def test_a_per_label_lora_round_trips_outside_diffusers_file_name(tmp_path, backbone, make_control):
    control = make_control(fields={"a": 3, "b": 2}, rank=2, per_label=True)
    perturb(control, scale=0.2)
    expected = sample(backbone, control, _labels(control)).x
    files = save_control(control, None, str(tmp_path / "ckpt"), overwrite=False)
    control.close()
    # diffusers would apply every label's block to every sample: not under the name it loads.
    assert files == ["control.json", "label_embeddings.safetensors", "label_lora_weights.safetensors"]
    spec_file = tmp_path / "ckpt" / "control.json"
    spec = json.loads(spec_file.read_text())
    assert spec["lora"]["per_label"] is True and spec["lora"]["rank"] == 2
    loaded = load_control(backbone, str(tmp_path / "ckpt"))
    assert loaded.lora.per_label and torch.equal(sample(backbone, loaded, _labels(loaded)).x, expected)
    loaded.close()
    spec["lora"]["per_label"] = "yes"
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(RequestError, match=r"^directory: .*control\.json: 'per_label' must be true or false, got 'yes'"):
        read_control(backbone, str(tmp_path / "ckpt"))


def test_fingerprint_ignores_the_adapters_and_the_folder(backbone, make_control, tiny_backbone_dir, tmp_path):
    before = fingerprint(backbone)
    make_control()
    from ctrl_worker.ctrl import checkpoints

    checkpoints._fingerprints.clear()
    assert fingerprint(backbone) == before
    copy = make_tiny_backbone(tmp_path / "copy")
    assert fingerprint(load_backbone(str(copy), "", torch.float32, CPU)) == before


def test_a_checkpoint_from_another_backbone_is_refused(tmp_path, make_control):
    control = make_control()
    save_control(control, None, str(tmp_path / "ckpt"), overwrite=False)
    other = load_backbone(str(make_tiny_backbone(tmp_path / "other", seed=1)), "", torch.float32, CPU)
    with pytest.raises(RequestError, match=r"^directory: checkpoint was trained on backbone .* \(fingerprint [0-9a-f]{16}\), this backbone is") as info:
        load_control(other, str(tmp_path / "ckpt"))
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert not hasattr(other.unet, "peft_config")


def test_existing_folders_are_kept_unless_overwrite(tmp_path, make_control, monkeypatch):
    control = make_control()
    target = tmp_path / "ckpt"
    save_control(control, None, str(target), overwrite=False)
    original = (target / "label_embeddings.safetensors").read_bytes()
    perturb(control)
    with pytest.raises(RequestError, match=r"^directory: .* already exists; set overwrite to replace it") as info:
        save_control(control, None, str(target), overwrite=False)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION

    # A save that fails half-way leaves the earlier checkpoint as it was, and no staging folder.
    from ctrl_worker.ctrl import checkpoints

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints, "write_tensors", broken)
    with pytest.raises(RequestError, match=r"^directory: cannot write .*ckpt: disk full"):
        save_control(control, None, str(target), overwrite=True)
    assert (target / "label_embeddings.safetensors").read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    monkeypatch.undo()

    # A save killed mid-write (no finally runs) leaves hidden leftovers: the next save removes them.
    (tmp_path / ".ckpt.staging-0badc0de").mkdir()
    (tmp_path / ".ckpt.staging-0badc0de" / "label_embeddings.safetensors").write_bytes(b"half")
    (tmp_path / ".ckpt.old-0badc0de").mkdir()
    (tmp_path / ".other.staging-0badc0de").mkdir()  # another target's: not this save's business
    save_control(control, None, str(target), overwrite=True)
    assert (target / "label_embeddings.safetensors").read_bytes() != original
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.staging-0badc0de", "ckpt"]


def test_optimizer_state_travels_with_the_control(tmp_path, make_control):
    control = make_control()
    groups = [pb.ParamGroup(name="lora", learning_rate=1e-3), pb.ParamGroup(name="embedding", learning_rate=1e-2)]
    opt = create_optimizer(control, groups, 0, 0, 0, 1.0)
    rollout = run_rollout(control)
    backward(rollout, [classifier_term(tiny_classifier(), "a")(rollout)], 1.0)
    optimizer_step(opt)
    files = save_control(control, opt, str(tmp_path / "ckpt"), overwrite=False)
    assert {"optimizer.json", "optimizer.safetensors"} <= set(files)

    fresh = create_optimizer(control, groups, 0, 0, 0, 1.0)
    load_optimizer_state(fresh, str(tmp_path / "ckpt"))
    assert fresh.steps == 1
    p = control.parameters()[0]
    assert torch.equal(fresh.optimizer.state[p]["exp_avg"], opt.optimizer.state[p]["exp_avg"])
    save_control(control, None, str(tmp_path / "bare"), overwrite=False)
    with pytest.raises(RequestError, match=r"^directory: .* has no optimizer.json: it is not a checkpoint of this kind") as info:
        load_optimizer_state(fresh, str(tmp_path / "bare"))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_damaged_checkpoints_are_refused(tmp_path, backbone, make_control):
    control = make_control()
    folder = tmp_path / "ckpt"
    save_control(control, None, str(folder), overwrite=False)
    control.close()

    embeddings = load_file(str(folder / "label_embeddings.safetensors"))
    save_file({**embeddings, "a": torch.zeros(5, 64)}, str(folder / "label_embeddings.safetensors"))
    with pytest.raises(RequestError, match=r"label_embeddings.safetensors: a is \[5, 64\] torch.float32, the model needs \[4, 64\]"):
        load_control(backbone, str(folder))
    assert not hasattr(backbone.unet, "peft_config")  # the failed load took its adapters out again

    (folder / "pytorch_lora_weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(RequestError, match=r"pytorch_lora_weights.safetensors is not a readable safetensors file"):
        load_control(backbone, str(folder))
    (folder / "control.json").write_text("{")
    with pytest.raises(RequestError, match=r"control.json is not readable JSON"):
        load_control(backbone, str(folder))
    with pytest.raises(RequestError, match=r"^directory: .* has no control.json") as info:
        load_control(backbone, str(tmp_path))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_lora_weights_carry_diffusers_adapter_metadata(tmp_path, make_control):
    from safetensors import safe_open

    save_control(make_control(rank=2), None, str(tmp_path / "ckpt"), overwrite=False)
    with safe_open(str(tmp_path / "ckpt" / "pytorch_lora_weights.safetensors"), "pt") as file:
        metadata = file.metadata()
    adapter = json.loads(metadata["lora_adapter_metadata"])
    assert metadata["format"] == "pt"
    assert adapter["unet.r"] == 2 and adapter["unet.lora_alpha"] == 2.0
    assert sorted(adapter["unet.target_modules"]) == sorted(["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"])


def test_overwrite_replaces_only_a_checkpoint_of_the_same_kind(tmp_path):
    from ctrl_worker.classifiers.classifier import save_classifier

    classifier = tiny_classifier()
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(RequestError, match=r"^directory: .*photos' is not a ctrl-classifier/1 checkpoint") as info:
        save_classifier(classifier, str(precious), overwrite=True)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert [p.name for p in precious.iterdir()] == ["holiday.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]

    # A checkpoint of another kind is not replaced either; one of the same kind is.
    json_only = tmp_path / "other"
    json_only.mkdir()
    (json_only / "classifier.json").write_text(json.dumps({"format": "ctrl-control/1"}))
    with pytest.raises(RequestError, match=r"classifier.json does not say so"):
        save_classifier(classifier, str(json_only), overwrite=True)
    target = tmp_path / "clf"
    save_classifier(classifier, str(target), overwrite=False)
    assert save_classifier(classifier, str(target), overwrite=True) == ["classifier.json", "classifier.safetensors"]


def test_saves_to_paths_the_os_refuses_are_invalid_arguments(tmp_path):
    from ctrl_worker.classifiers.classifier import save_classifier
    from hostile import hostile_paths

    classifier = tiny_classifier()
    for path in hostile_paths(tmp_path):
        with pytest.raises(RequestError, match=r"^directory: ") as info:
            save_classifier(classifier, path, overwrite=False)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT, (path[:40], str(info.value))


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe", b"[" * 100_000, b"[1]", b'{"format": "ctrl-classifier/1", "num_classes": ' + b"9" * 5000 + b"}",
     b'{"format": "ctrl-classifier/1", "input_shape": [3, 4294967296, 16], "num_classes": 3, "architecture": "convnet",'
     b' "width": 4, "learning_rate": 0.001, "weight_decay": 0, "temperature": 1}'],
)
def test_hostile_classifier_json_is_an_invalid_argument(tmp_path, content):
    from ctrl_worker.classifiers.classifier import load_classifier

    (tmp_path / "classifier.json").write_bytes(content)
    with pytest.raises(RequestError, match=r"^directory: .*classifier.json") as info:
        load_classifier(str(tmp_path), CPU)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
