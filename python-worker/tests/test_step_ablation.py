import csv
import json

import numpy as np
import pytest
from PIL import Image

from ctrl_worker.ctrl.checkpoints import save_control
from ctrl_worker.tools.step_ablation import OracleClasses, parse_modes, step_ablation, sampler_timesteps
from support import perturb


def test_modes_name_the_steps_that_run_fine_tuned():
    assert parse_modes("all;first:2;last:3", 5) == {"all": [0, 1, 2, 3, 4], "first:2": [0, 1], "last:3": [2, 3, 4]}
    for bad in ("first:0", "middle:2", "last:6", "first"):
        with pytest.raises(SystemExit, match="--modes"):
            parse_modes(bad, 5)


def test_timesteps_follow_the_runs_sampler():
    assert sampler_timesteps({"sampler": {"steps": 10, "spacing": "trailing"}}, 1000, 1) == list(range(999, 0, -100))
    assert sampler_timesteps({"sampler": {"steps": 4, "spacing": "leading"}}, 1000, 1) == [751, 501, 251, 1]


def test_bands_judge_values_by_the_classes_of_the_offline_samples():
    # Class 0 holds the largest values (as JPEG size's class 0: the largest files).
    classes_by_value = OracleClasses(np.array([90.0, 80, 50, 40, 10, 5]), np.array([0, 0, 1, 1, 2, 2]))
    assert classes_by_value.judge(np.array([100.0, 70, 45, 20, 0])).tolist() == [0, 0, 1, 2, 2]


def _run(tmp_path, backbone_dir, control):
    run = tmp_path / "run"
    (run / "dataset" / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(run / "dataset" / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "a", "a_value"])
        for i in range(12):
            level = [40, 128, 220][i % 3]
            image = np.clip(level + rng.normal(0, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(run / "dataset" / "images" / f"{i}.png")
            writer.writerow([f"images/{i}.png", 2 - i % 3, level])  # class 0: brightest
    config = {
        "backbone": str(backbone_dir),
        "dataset": {"oracle": "brightness"},
        "sampler": {"steps": 3, "eta": 0.5, "spacing": "trailing"},
        "evaluation": {"seed": 42, "numSamples": 6},
    }
    (run / "config.json").write_text(json.dumps(config))
    save_control(control, None, str(run / "checkpoints" / "epoch-0001"), overwrite=False)
    return run


def test_a_zero_control_changes_no_step_and_a_trained_one_does(tmp_path, tiny_backbone_dir, make_control):
    fresh = make_control(fields={"a": 3})
    run = _run(tmp_path, tiny_backbone_dir, fresh)
    fresh.close()
    result = step_ablation(run, None, "all;first:1;last:2", None)
    assert result["timesteps"] == [998, 665, 332] and result["oracle"] == "brightness"
    values = [r["mean_value_per_class"] for r in result["results"]]
    assert values[0] == values[1] == values[2]  # the same pre-trained images whatever the mode

    trained = make_control(fields={"a": 3})
    perturb(trained, scale=0.5)
    save_control(trained, None, str(run / "checkpoints" / "epoch-0002"), overwrite=False)
    trained.close()
    result = step_ablation(run, None, "all;first:1", 6)
    assert result["checkpoint"].endswith("epoch-0002")
    assert result["results"][0]["mean_value_per_class"] != values[0]
    assert result["results"][0]["mean_value_per_class"] != result["results"][1]["mean_value_per_class"]
