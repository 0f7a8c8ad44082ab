"""app.reporting.metrics: the report's figures, checked by hand on tiny predictions."""

from __future__ import annotations

import numpy as np
import pytest

from app.reporting.metrics import compute_metrics, expected_calibration_error

BINARY_P1 = np.array([0.1, 0.42, 0.62, 0.35, 0.78, 0.93])
BINARY_TRUE = np.array([0, 0, 0, 1, 1, 1])
THREE = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
THREE_TRUE = np.array([0, 1, 2, 2])


def binary_probs():
    return np.stack([1 - BINARY_P1, BINARY_P1], axis=1)


def test_binary_metrics_by_hand():
    m = compute_metrics(BINARY_TRUE, binary_probs(), ["neg", "pos"])
    # predictions: [0, 0, 1, 0, 1, 1] -> 4 of 6 right; each class 2 TP, 1 FP, 1 FN.
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["pos"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3,
                                                   "support": 3})
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    # Positive/negative score pairs ranked right: 0.35>0.1; 0.78 and 0.93 beat all three.
    assert m["roc_auc"] == pytest.approx(7 / 9)
    # Ranked: P P N N P N -> (1/1 + 2/2 + 3/5) / 3
    assert m["average_precision"] == pytest.approx((1 + 1 + 0.6) / 3)
    expected_log_loss = -np.mean(np.log([0.9, 0.58, 0.38, 0.35, 0.78, 0.93]))
    assert m["log_loss"] == pytest.approx(expected_log_loss)
    assert m["brier"] == pytest.approx(np.mean((BINARY_P1 - BINARY_TRUE) ** 2))
    # Confidence bins (15): {0.9, 0.93} right, {0.58} right, {0.62, 0.65} wrong, {0.78} right.
    expected_ece = (2 * abs(1 - 0.915) + abs(1 - 0.58) + 2 * abs(0 - 0.635) + abs(1 - 0.78)) / 6
    assert m["ece"] == pytest.approx(expected_ece)
    assert m["notes"] == []


def test_three_class_metrics_by_hand():
    m = compute_metrics(THREE_TRUE, THREE, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["brier"] == pytest.approx(np.mean(((THREE - np.eye(3)[THREE_TRUE]) ** 2).sum(1)))
    # One-vs-rest AUC, averaged over classes. a: its one positive (0.7) outranks every negative;
    # b: likewise (0.5); c: positives {0.5, 0.1} vs negatives {0.1, 0.4}: 2 wins and a tie of 4.
    assert m["roc_auc_per_class"]["a"] == pytest.approx(1.0)
    assert m["roc_auc_per_class"]["b"] == pytest.approx(1.0)
    assert m["roc_auc_per_class"]["c"] == pytest.approx((2 + 0.5) / 4)
    assert m["roc_auc"] == pytest.approx((1 + 1 + 0.625) / 3)


def test_ece_is_zero_when_confidence_equals_accuracy():
    conf = np.array([0.75] * 4)
    assert expected_calibration_error(conf, np.array([1, 1, 1, 0.0])) == pytest.approx(0.0)
