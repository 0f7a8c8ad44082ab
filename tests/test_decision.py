"""app.training.decision: each label's threshold is the one with the best validation F1."""

from __future__ import annotations

import numpy as np
import pytest

from app.training import decision


def test_each_label_gets_its_best_f1_threshold_halfway_to_the_next_score():
    probabilities = np.array([[0.9, 0.30, 0.2], [0.6, 0.25, 0.1], [0.4, 0.20, 0.3], [0.1, 0.05, 0.4]])
    true = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]])
    thresholds = decision.choose_thresholds(probabilities, true)
    # Label 0: keeping the scores from 0.6 up catches both positives and nothing else (F1 1);
    # halfway between 0.6 and the next score below, 0.4.
    # Label 1: every example but the third is positive; keeping all (>= 0.05) gives F1 6/7,
    # better than >= 0.25 (4/5): halfway between 0.05 and 0.
    # Label 2: no positives in validation: the default.
    np.testing.assert_allclose(thresholds, [0.5, 0.025, decision.DEFAULT_THRESHOLD], rtol=1e-6)
    np.testing.assert_array_equal(decision.label_sets(probabilities, thresholds),
                                  [[1, 1, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0]])


def test_equal_f1_prefers_the_threshold_nearest_one_half():
    # Keeping >= 0.9 (P 1, R 1/2) and >= 0.2 (P 1/2, R 1) both give F1 2/3; >= 0.8 and >= 0.3 less
    # or more: true [1, 0, 0, 1] ranks P N N P.
    probabilities = np.array([[0.9], [0.8], [0.3], [0.2]])
    true = np.array([[1], [0], [0], [1]])
    thresholds = decision.choose_thresholds(probabilities, true)
    # F1 by rule: >=0.9: 2/3; >=0.8: 1/2; >=0.3: 2/5; >=0.2: 2/3. Midpoints 0.85 and 0.1: 0.85.
    assert thresholds[0] == pytest.approx(0.85)


def test_one_global_threshold_has_the_best_micro_f1_over_every_label():
    probabilities = np.array([[0.9, 0.2], [0.7, 0.6], [0.4, 0.1], [0.3, 0.35]])
    true = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    # All scores, descending: .9 P, .7 P, .6 P, .4 N, .35 P, .3 N, .2 N, .1 N: keeping the top three
    # gives micro F1 6/7, the top five 8/9 (best): halfway between 0.35 and 0.3.
    assert decision.global_threshold(probabilities, true) == pytest.approx(0.325)
    assert decision.global_threshold(probabilities, np.zeros_like(true)) == decision.DEFAULT_THRESHOLD


def test_shrunk_thresholds_sit_between_the_global_and_each_labels_own_by_its_positives():
    rng = np.random.default_rng(0)
    true = (rng.random((200, 2)) < [0.5, 0.02]).astype(int)
    probabilities = np.clip(true * 0.4 + rng.random((200, 2)) * 0.6, 0, 1)
    shared = decision.global_threshold(probabilities, true)
    own = decision.rule_thresholds("per-label", probabilities, true)
    shrunk = decision.rule_thresholds("shrunk", probabilities, true)
    positives = true.sum(0)
    weight = positives / (positives + decision.SHRINK_POSITIVES)
    np.testing.assert_allclose(shrunk, weight * own + (1 - weight) * shared, rtol=1e-5)
    assert np.all(decision.rule_thresholds("global", probabilities, true) == np.float32(shared))
    with pytest.raises(ValueError, match="threshold rule must be one of"):
        decision.rule_thresholds("median", probabilities, true)


def test_the_rule_is_chosen_by_cross_validated_micro_f1_not_by_fitting_its_own_examples():
    """Many rare labels with one noisy score scale: per-label thresholds fit each label's two or
    three validation positives (in-sample micro F1 high) and generalise worse than one shared
    threshold, which cross-validation sees."""
    rng = np.random.default_rng(1)
    n, labels = 400, 20
    true = (rng.random((n, labels)) < 0.03).astype(int)
    probabilities = np.clip(0.35 * true + 0.5 * rng.random((n, labels)), 0, 1)
    thresholds, record = decision.threshold_rule(probabilities, true, seed=0)
    figures = record["rules"]
    assert figures["per-label"]["in_sample_micro_f1"] >= figures["global"]["in_sample_micro_f1"]
    assert record["rule"] == max(figures, key=lambda r: figures[r]["cross_validated_micro_f1"])
    assert record["rule"] != "per-label"
    np.testing.assert_allclose(thresholds, decision.rule_thresholds(record["rule"], probabilities, true))
    # Labels that differ in scale: each label's own threshold wins.
    scale = np.where(np.arange(4) % 2, 0.1, 0.8)
    true = (rng.random((600, 4)) < 0.4).astype(int)
    probabilities = scale * (0.6 * true + 0.4 * rng.random((600, 4)))
    _, record = decision.threshold_rule(probabilities, true, seed=0)
    assert record["rule"] in ("per-label", "shrunk")
    assert record["rules"]["global"]["cross_validated_micro_f1"] < record["rules"][record["rule"]][
        "cross_validated_micro_f1"]


def test_shapes_must_agree():
    with pytest.raises(ValueError, match=r"probabilities \(2, 3\) and labels \(2, 2\)"):
        decision.choose_thresholds(np.zeros((2, 3)), np.zeros((2, 2)))


def test_operating_points_by_hand():
    true = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.42, 0.62, 0.35, 0.78, 0.93])
    o = decision.operating_points(true, scores)
    # From 0.78 up: the two top scores, both positive (P 1, R 2/3, F1 0.8), the best F1.
    assert o["best_f1"] == pytest.approx({"threshold": 0.78, "precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                          "positives": 2})
    assert o["precision"]["0.9"]["threshold"] == 0.78  # the lowest threshold that precise
    # Recall 0.9 needs all three positives: up to 0.35, where 5 are predicted positive (P 3/5).
    assert o["recall"]["0.9"] == pytest.approx({"threshold": 0.35, "precision": 0.6, "recall": 1.0,
                                                "f1": 0.75, "positives": 5})
    grid = {r["threshold"]: r for r in o["grid"]}
    assert list(grid) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert grid[0.5]["positives"] == 3 and grid[0.5]["precision"] == pytest.approx(2 / 3)
    assert grid[0.9] == pytest.approx({"threshold": 0.9, "precision": 1.0, "recall": 1 / 3, "f1": 0.5,
                                       "positives": 1})
