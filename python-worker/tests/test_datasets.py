import json

import grpc
import numpy as np
import pytest
from PIL import Image

from ctrl_worker.data.datasets import load_dataset
from ctrl_worker.rpc.errors import RequestError


def _image(path, size=(8, 6), value=0, mode="RGB"):
    array = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)


def _folder(tmp_path, rows, header="file,bright,kind", files=None, suffix=".png"):
    """A dataset folder: one image per named file, and labels.csv with `rows`."""
    for name in files if files is not None else [row.split(",")[0] for row in rows]:
        _image(tmp_path / name, value=40)
    (tmp_path / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return tmp_path


ROWS = ["a.png,0,1", "b.png,1,0", "c.png,1,2", "d.png,0,2"]


def test_loads_images_and_label_columns(tmp_path):
    _folder(tmp_path, ROWS)
    _image(tmp_path / "a.png", value=200, mode="L")  # greyscale is converted to RGB
    dataset = load_dataset(str(tmp_path), "", [])
    assert dataset.size == 4 and dataset.image_shape == (3, 6, 8)
    assert dataset.images.dtype.is_floating_point is False and dataset.images[0].float().mean() == 200
    assert [(c.name, c.num_classes, c.counts) for c in dataset.columns] == [("bright", 2, [2, 2]), ("kind", 3, [1, 1, 2])]
    assert dataset.labels["kind"].tolist() == [1, 0, 2, 2]
    only = load_dataset(str(tmp_path), "labels.csv", ["kind"])
    assert [c.name for c in only.columns] == ["kind"]


def test_loads_jsonl(tmp_path):
    for name in ("x.jpg", "y.jpg"):
        _image(tmp_path / name)
    lines = [{"file": "x.jpg", "label": 1}, {"file": "y.jpg", "label": 0}]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    dataset = load_dataset(str(tmp_path), "", [])
    assert dataset.size == 2 and dataset.labels["label"].tolist() == [1, 0]


@pytest.mark.parametrize(
    "rows, header, label_columns, code, pattern",
    [
        ([], "file,bright", [], grpc.StatusCode.INVALID_ARGUMENT, r"^path: labels.csv has no rows: the dataset is empty"),
        (["a.png,0"], "image,bright", [], grpc.StatusCode.INVALID_ARGUMENT, r"^path: labels.csv has no 'file' column \(columns: image, bright\)"),
        (["a.png,0", "b.png,x"], "file,bright", [], grpc.StatusCode.INVALID_ARGUMENT, r"^path: labels.csv line 3, column 'bright': expected a class index 0, 1, 2, \.\.\., got 'x'"),
        (["a.png,0", "b.png,-1"], "file,bright", [], grpc.StatusCode.INVALID_ARGUMENT, r"line 3, column 'bright': expected a class index .* got '-1'"),
        (["a.png,0", "b.png,1.5"], "file,bright", [], grpc.StatusCode.INVALID_ARGUMENT, r"got '1.5'"),
        (["a.png,0", "b.png,0"], "file,bright", [], grpc.StatusCode.INVALID_ARGUMENT, r"^path: labels.csv, column 'bright': every row has class 0; a label needs at least two classes"),
        (["a.png,0", "b.png,2"], "file,bright", [], grpc.StatusCode.INVALID_ARGUMENT, r"^path: labels.csv, column 'bright': class 1 has no rows; classes must be 0..K-1 \(K = 3"),
        (["a.png,0", "b.png,1"], "file,bright", ["bright", "size"], grpc.StatusCode.INVALID_ARGUMENT, r"^label_columns\[1\]: no column 'size' in labels.csv; its label columns: bright"),
        (["a.png,0", "b.png,1"], "file,bright", ["bright", "bright"], grpc.StatusCode.INVALID_ARGUMENT, r"^label_columns\[1\]: 'bright' is given twice"),
        (["a.png,0", "b.png"], "file,bright", [], grpc.StatusCode.INVALID_ARGUMENT, r"^path: labels.csv line 3: 1 cells, but the header has 2 columns"),
        (["a.png", "b.png"], "file", [], grpc.StatusCode.INVALID_ARGUMENT, r"^path: labels.csv has no label columns besides 'file'"),
    ],
)
def test_bad_labels_are_refused_with_their_line_and_column(tmp_path, rows, header, label_columns, code, pattern):
    _folder(tmp_path, rows, header, files=["a.png", "b.png"])
    with pytest.raises(RequestError, match=pattern) as info:
        load_dataset(str(tmp_path), "", label_columns)
    assert info.value.code == code


def test_missing_folder_labels_and_images(tmp_path):
    with pytest.raises(RequestError, match=r"^path: no folder") as info:
        load_dataset(str(tmp_path / "nope"), "", [])
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(RequestError, match=r"^path: .* has no labels file \(expected labels.csv or labels.jsonl\)") as info:
        load_dataset(str(tmp_path), "", [])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(RequestError, match=r"^labels_file: no file 'other.csv'") as info:
        load_dataset(str(tmp_path), "other.csv", [])
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(RequestError, match=r"^labels_file: '../x.csv' is outside the dataset folder"):
        load_dataset(str(tmp_path), "../x.csv", [])
    _folder(tmp_path, ["a.png,0", "missing.png,1"], "file,bright", files=["a.png"])
    with pytest.raises(RequestError, match=r"^path: labels.csv line 3: image 'missing.png' does not exist") as info:
        load_dataset(str(tmp_path), "", [])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_unreadable_and_mixed_size_images(tmp_path):
    _folder(tmp_path, ["a.png,0", "b.png,1"], "file,bright")
    (tmp_path / "b.png").write_bytes(b"not an image")
    with pytest.raises(RequestError, match=r"^path: labels.csv line 3: 'b.png' is not a readable image"):
        load_dataset(str(tmp_path), "", [])
    _image(tmp_path / "b.png", size=(4, 4))
    with pytest.raises(RequestError, match=r"^path: labels.csv line 3: 'b.png' is 4x4 but 'a.png' is 8x6; all images must have the same size"):
        load_dataset(str(tmp_path), "", [])


def test_bad_jsonl_lines(tmp_path):
    _image(tmp_path / "a.png")
    (tmp_path / "labels.jsonl").write_text('{"file": "a.png", "y": 0}\n[1, 2]\n')
    with pytest.raises(RequestError, match=r"^path: labels.jsonl line 2: expected a JSON object, got list"):
        load_dataset(str(tmp_path), "", [])
    (tmp_path / "labels.jsonl").write_text('{"file": "a.png", "y": 0}\n{"file": "a.png", "y": true}\n')
    with pytest.raises(RequestError, match=r"line 2, column 'y': expected a class index .* got True"):
        load_dataset(str(tmp_path), "", [])
    (tmp_path / "labels.jsonl").write_text('{"file": "a.png", "y": 0}\n{"file": "a.png"}\n')
    with pytest.raises(RequestError, match=r"line 2: no value for column 'y'"):
        load_dataset(str(tmp_path), "", [])


def test_hostile_files_are_invalid_arguments_naming_the_file(tmp_path):
    from hostile import hostile_dataset

    folder = tmp_path / "data"
    folder.mkdir()
    for labels_file in hostile_dataset(folder):
        with pytest.raises(RequestError) as info:
            load_dataset(str(folder), labels_file, [])
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT, (labels_file, str(info.value))
        assert labels_file.split(".")[0] in str(info.value) or "outside" in str(info.value), str(info.value)
        assert len(str(info.value)) < 1000


def test_the_default_labels_file_must_not_link_outside_the_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _image(folder / "a.png")
    (tmp_path / "secret.csv").write_text("file,a\na.png,0\na.png,1\n")
    (folder / "labels.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(RequestError, match=r"^path: labels.csv: 'labels.csv' is outside the dataset folder"):
        load_dataset(str(folder), "", [])


@pytest.mark.parametrize("path", ["a\0b", "x" * 300, "/" + "d/" * 3000])
def test_paths_the_os_refuses_are_invalid_arguments(path):
    with pytest.raises(RequestError, match=r"^path: ") as info:
        load_dataset(path, "", [])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
