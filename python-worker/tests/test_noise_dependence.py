import pytest

from ctrl_worker.tools.noise_dependence import main, noise_dependence
from support import run_folder


def test_without_step_noise_x_T_decides_everything(tmp_path, tiny_backbone_dir):
    run = run_folder(tmp_path, tiny_backbone_dir)
    result = noise_dependence(run, starts=4, paths=3, eta=0.0)
    # eta 0: every path from one x_T is the same deterministic trajectory.
    assert result["class_entropy_given_x_T"] == 0.0
    assert result["mean_top_class_share_given_x_T"] == 1.0
    assert result["thumbnail_distance_same_x_T"] == 0.0
    assert result["thumbnail_distance_different_x_T"] > 0


def test_with_step_noise_the_paths_differ(tmp_path, tiny_backbone_dir):
    run = run_folder(tmp_path, tiny_backbone_dir)
    result = noise_dependence(run, starts=4, paths=3, eta=1.0)
    assert result["thumbnail_distance_same_x_T"] > 0
    # The marginal mixes the per-x_T class distributions: its entropy is at least their mean.
    assert result["class_entropy"] >= result["class_entropy_given_x_T"] - 1e-12
    assert sum(result["class_share"]) == pytest.approx(1.0)


def test_bad_flags_are_refused(tmp_path, tiny_backbone_dir, capsys):
    run = run_folder(tmp_path, tiny_backbone_dir)
    for bad in (["--paths", "1"], ["--eta", "1.5"]):
        with pytest.raises(SystemExit):
            main([str(run), *bad])
        assert "--" in capsys.readouterr().err
