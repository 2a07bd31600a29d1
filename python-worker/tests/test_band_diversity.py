import csv

import numpy as np
from PIL import Image

from ctrl_worker.tools.band_diversity import band_diversity


def write_dataset(folder, values, images):
    (folder / "images").mkdir()
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "size", "size_value"])
        for i, (value, image) in enumerate(zip(values, images)):
            Image.fromarray(image).save(folder / "images" / f"{i}.png")
            writer.writerow([f"images/{i}.png", 0 if value < 50 else 1, value])


def test_members_near_the_median_that_look_alike_score_low(tmp_path):
    rng = np.random.default_rng(0)
    values = list(range(100))
    # Class 1's members nearest its median (75) are one flat grey; the others are noise.
    images = [
        np.full((16, 16, 3), 128, np.uint8) if 65 <= v <= 85 else rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        for v in values
    ]
    write_dataset(tmp_path, values, images)
    result = band_diversity(tmp_path, k=10)
    assert result["column"] == "size"
    one = result["classes"][1]
    assert one["members"] == 50 and one["band"] == [50.0, 99.0]
    assert one["nearest_vs_all"] < 0.05  # ten identical images
    assert 0.8 < one["random_vs_all"] < 1.2
    zero = result["classes"][0]
    assert 0.8 < zero["nearest_vs_all"] < 1.2  # noise everywhere in class 0
