import json

import numpy as np
import pytest
from PIL import Image

from ctrl_worker.tools.classifier_sweep import held_out_curve, main
from support import bright_dark_dataset


def test_each_setting_learns_an_easy_problem_and_reports_every_epoch():
    dataset = bright_dark_dataset(n=40)
    for architecture in ("detail-convnet", "stats-convnet"):
        curve = held_out_curve(dataset.images, dataset.labels["bright"], 2, architecture, epochs=3, batch_size=8, learning_rate=1e-2)
        assert len(curve) == 3 and all(0 <= a <= 1 for a in curve)
        assert curve[-1] >= 0.75, (architecture, curve)


def test_the_same_seed_gives_the_same_curve():
    dataset = bright_dark_dataset(n=20)
    first = held_out_curve(dataset.images, dataset.labels["bright"], 2, "stats-convnet", epochs=2, batch_size=8)
    assert held_out_curve(dataset.images, dataset.labels["bright"], 2, "stats-convnet", epochs=2, batch_size=8) == first


def _folder(tmp_path, n=20):
    dataset = bright_dark_dataset(n=n, size=8)
    (tmp_path / "images").mkdir()
    lines = ["file,bright"]
    for i in range(n):
        Image.fromarray(dataset.images[i].permute(1, 2, 0).numpy().astype(np.uint8)).save(tmp_path / "images" / f"{i}.png")
        lines.append(f"images/{i}.png,{int(dataset.labels['bright'][i])}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_the_command_prints_one_line_per_setting(tmp_path, capsys):
    main([str(_folder(tmp_path)), "--label-column", "bright", "--architectures", "convnet,stats-convnet", "--epochs", "1,2", "--threads", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["architecture"], r["epochs"], len(r["per_epoch"])) for r in rows] == [("convnet", 1, 1), ("convnet", 2, 2), ("stats-convnet", 1, 1), ("stats-convnet", 2, 2)]
    assert all(r["held_out_accuracy"] == r["per_epoch"][-1] for r in rows)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--architectures", "mlp"], "--architectures"),
        (["--architectures", "noise-aware-resnet"], "--architectures"),
        (["--epochs", "ten"], "--epochs"),
        (["--epochs", "0"], "--epochs"),
        (["--threads", "-1"], "--threads"),
    ],
)
def test_bad_flags_are_refused(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--label-column", "bright", *flags])
    assert message in capsys.readouterr().err
