import numpy as np
import pytest

from ctrl_worker.tools.target_tilt import _confidence_cap, _kl_weights, expected_distance, pairwise_distances, tilted_targets


def test_expected_distance_of_uniform_weights_is_the_mean_pairwise_distance():
    points = np.random.default_rng(0).normal(size=(6, 3))
    d = pairwise_distances(points)
    brute = np.mean([np.linalg.norm(points[i] - points[j]) for i in range(6) for j in range(6) if i != j])
    assert expected_distance(d, np.full(6, 1 / 6)) == pytest.approx(brute, rel=1e-9)


def test_a_large_kl_weight_keeps_the_data_and_a_small_one_keeps_the_most_confident_sample():
    # Four samples; class 0 = samples 0 and 1, class 1 = samples 2 and 3; sample 0 is the most
    # confident for class 0, sample 3 is misjudged (p(0 | x) = 0.6).
    p0 = np.array([0.9, 0.7, 0.2, 0.6])
    log_p = np.log(np.stack([p0, 1 - p0], 1))
    labels = np.array([0, 0, 1, 1])
    d = pairwise_distances(np.arange(4, dtype=float)[:, None])
    weak, sharp = tilted_targets(log_p, labels, {"line": d}, dims=10, kl_weights=(1e9, 1e-3))
    zero = weak["classes"][0]
    assert zero["accuracy"] == pytest.approx(0.5, abs=1e-6)  # exponent ~0: the data as they are
    assert zero["ess"] == pytest.approx(4, abs=1e-4)
    assert zero["line_vs_class"] == pytest.approx(expected_distance(d, np.full(4, 0.25)) / 1.0, rel=1e-6)
    assert sharp["classes"][0]["accuracy"] == pytest.approx(1, abs=1e-9)  # all weight on sample 0
    assert sharp["classes"][0]["ess"] == pytest.approx(1, abs=1e-6)
    # g = D / klWeight = 1: weights p(0 | x) / sum = [0.9, 0.7, 0.2, 0.6] / 2.4
    (exact,) = tilted_targets(log_p, labels, {"line": d}, dims=10, kl_weights=(10.0,))
    assert exact["classes"][0]["accuracy"] == pytest.approx(1.6 / 2.4)


def test_a_confidence_cap_spreads_the_sharp_target_over_every_sample_past_the_cap():
    # Class 0: samples 0 (p = 0.9) and 1 (p = 0.7) are past a cap of 0.6, sample 3 (0.6) at it:
    # the sharp target weighs the three alike, and the misjudged sample 3 costs accuracy.
    p0 = np.array([0.9, 0.7, 0.2, 0.6])
    log_p = np.log(np.stack([p0, 1 - p0], 1))
    labels = np.array([0, 0, 1, 1])
    d = pairwise_distances(np.arange(4, dtype=float)[:, None])
    (capped,) = tilted_targets(log_p, labels, {"line": d}, dims=10, kl_weights=(1e-3,), confidence_cap=0.6)
    zero = capped["classes"][0]
    assert zero["ess"] == pytest.approx(3, rel=1e-3)
    assert zero["accuracy"] == pytest.approx(2 / 3, rel=1e-3)
    (uncapped,) = tilted_targets(log_p, labels, {"line": d}, dims=10, kl_weights=(1e-3,), confidence_cap=1.0)
    assert uncapped["classes"][0]["ess"] == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("text", ["0", "1.5", "-0.2", "x", "nan"])
def test_the_confidence_cap_must_be_in_zero_one(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a number in \(0, 1\]"):
        _confidence_cap(text)


@pytest.mark.parametrize("text", ["", "1,x", "0", "-1,2", "nan"])
def test_kl_weights_must_be_positive_numbers(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated positive numbers"):
        _kl_weights(text)
