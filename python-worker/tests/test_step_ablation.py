import numpy as np
import pytest

from ctrl_worker.ctrl.checkpoints import save_control
from ctrl_worker.tools.step_ablation import OracleClasses, parse_modes, step_ablation, sampler_timesteps
from support import perturb, run_folder


def test_modes_name_the_steps_that_run_fine_tuned():
    assert parse_modes("all;first:2;last:3", 5) == {"all": [0, 1, 2, 3, 4], "first:2": [0, 1], "last:3": [2, 3, 4]}
    assert parse_modes("lora-only;embeddings-only", 3) == {"lora-only": [0, 1, 2], "embeddings-only": [0, 1, 2]}
    for bad in ("first:0", "middle:2", "last:6", "first", "lora-only:2"):
        with pytest.raises(SystemExit, match="--modes"):
            parse_modes(bad, 5)


def test_timesteps_follow_the_runs_sampler():
    assert sampler_timesteps({"sampler": {"steps": 10, "spacing": "trailing"}}, 1000, 1) == list(range(999, 0, -100))
    assert sampler_timesteps({"sampler": {"steps": 4, "spacing": "leading"}}, 1000, 1) == [751, 501, 251, 1]


def test_bands_judge_values_by_the_classes_of_the_offline_samples():
    # Class 0 holds the largest values (as JPEG size's class 0: the largest files).
    classes_by_value = OracleClasses(np.array([90.0, 80, 50, 40, 10, 5]), np.array([0, 0, 1, 1, 2, 2]))
    assert classes_by_value.judge(np.array([100.0, 70, 45, 20, 0])).tolist() == [0, 0, 1, 2, 2]


def test_a_zero_control_changes_no_step_and_a_trained_one_does(tmp_path, tiny_backbone_dir, make_control):
    fresh = make_control(fields={"a": 3})
    run = run_folder(tmp_path, tiny_backbone_dir, fresh)
    fresh.close()
    result = step_ablation(run, None, "all;first:1;last:2", None)
    assert result["timesteps"] == [998, 665, 332] and result["oracle"] == "brightness"
    values = [r["mean_value_per_class"] for r in result["results"]]
    assert values[0] == values[1] == values[2]  # the same pre-trained images whatever the mode
    # A zero control moves nothing: no sample changes, already in its class or not.
    for changes in result["results"][0]["thumbnail_change_already_in_class"] + result["results"][0]["thumbnail_change_others"]:
        assert changes in (None, 0.0)

    trained = make_control(fields={"a": 3})
    perturb(trained, scale=0.5)
    save_control(trained, None, str(run / "checkpoints" / "epoch-0002"), overwrite=False)
    trained.close()
    result = step_ablation(run, None, "all;first:1", 6)
    assert result["checkpoint"].endswith("epoch-0002")
    assert result["results"][0]["mean_value_per_class"] != values[0]
    assert any(c for c in result["results"][0]["thumbnail_change_others"] + result["results"][0]["thumbnail_change_already_in_class"] if c is not None)
    assert result["results"][0]["mean_value_per_class"] != result["results"][1]["mean_value_per_class"]


def test_the_parts_modes_keep_one_part_of_the_control_each(tmp_path, tiny_backbone_dir, make_control):
    control = make_control(fields={"a": 3})
    run = run_folder(tmp_path, tiny_backbone_dir, control)
    perturb(control, scale=0.5)
    save_control(control, None, str(run / "checkpoints" / "epoch-0002"), overwrite=False)
    control.close()
    # "all" runs last, on the control whose LoRA "embeddings-only" zeroed and restored.
    results = step_ablation(run, None, "embeddings-only;lora-only;all", 6)["results"]
    means = {r["mode"]: r["mean_value_per_class"] for r in results}
    # Each part alone moves the samples differently from the whole control and from each other.
    assert means["lora-only"] != means["all"] and means["embeddings-only"] != means["all"]
    assert means["lora-only"] != means["embeddings-only"]
    # The LoRA weights came back: a fresh load of the checkpoint gives the same "all".
    assert step_ablation(run, None, "all", 6)["results"][0]["mean_value_per_class"] == means["all"]
