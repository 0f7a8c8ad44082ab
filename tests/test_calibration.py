"""app.training.calibration: temperature scaling undoes over-confidence and keeps every decision."""

from __future__ import annotations

import numpy as np
import pytest

from app.training import calibration


def _overconfident(n=400, seed=0):
    """Right 75 % of the time, always saying 0.99."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 2, n)
    right = rng.random(n) < 0.75
    predicted = np.where(right, true, 1 - true)
    p = np.where(predicted == 1, 0.99, 0.01)
    return np.stack([1 - p, p], axis=1), true


def test_an_overconfident_model_is_cooled_to_its_accuracy_and_keeps_its_decisions():
    probabilities, true = _overconfident()
    t = calibration.fit_temperature(probabilities, true)
    assert t > 1
    calibrated = calibration.apply_temperature(probabilities, t)
    np.testing.assert_array_equal(calibrated.argmax(1), probabilities.argmax(1))
    accuracy = (probabilities.argmax(1) == true).mean()
    assert calibrated.max(1).mean() == pytest.approx(accuracy, abs=0.02)  # the log loss optimum
    np.testing.assert_allclose(calibration.apply_temperature(calibrated, 1 / t), probabilities, atol=1e-5)


def test_by_hand_and_per_label_for_multi_label():
    # softmax(log [0.8, 0.2] / 2) = [2, 1] / 3
    np.testing.assert_allclose(calibration.apply_temperature(np.array([[0.8, 0.2]]), 2.0), [[2 / 3, 1 / 3]],
                               rtol=1e-6)
    # sigmoid(logit 0.8 / 2) = 2 / 3; a label whose validation values are all 0 keeps T = 1.
    np.testing.assert_allclose(calibration.apply_temperature(np.array([[0.8, 0.8]]), [2.0, 1.0], True),
                               [[2 / 3, 0.8]], rtol=1e-6)
    probabilities, true = _overconfident()
    multi_p = np.stack([probabilities[:, 1], np.full(len(true), 0.3)], axis=1)
    multi_true = np.stack([true, np.zeros(len(true))], axis=1)
    temperature = calibration.fit_temperature(multi_p, multi_true, multi_label=True)
    assert temperature.shape == (2,) and temperature[0] > 1 and temperature[1] == 1.0
    with pytest.raises(ValueError, match="needs validation examples"):
        calibration.fit_temperature(np.zeros((0, 2)), np.zeros(0, int))


def test_a_validation_split_without_mistakes_never_sharpens():
    """All right: the log loss would fall forever as T shrinks; T stays at 1 at least."""
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert calibration.fit_temperature(probabilities, np.array([0, 1, 0])) == 1.0
    multi = calibration.fit_temperature(np.array([[0.8], [0.3]]), np.array([[1], [0]]), multi_label=True)
    assert multi[0] == 1.0


def test_a_run_with_too_few_validation_texts_keeps_its_probabilities_and_says_why():
    from types import SimpleNamespace

    from app import train
    from app.record import RunRecord

    rng = np.random.default_rng(0)
    sure = np.eye(2)[rng.integers(0, 2, 200)] * 0.98 + 0.01  # overconfident: half of them wrong
    labels = rng.integers(0, 2, 200)
    resolved = SimpleNamespace(settings=SimpleNamespace(calibration="temperature"))

    def run(n):
        dataset = SimpleNamespace(classes=["neg", "pos"], multi_label=False,
                                  label_ids=lambda split: labels[:n])
        record = RunRecord()
        return train.calibrate(resolved, dataset, sure[:n], record), record.calibration

    few = calibration.MIN_EXAMPLES - 1
    kept, why = run(few)
    np.testing.assert_allclose(kept, sure[:few], atol=1e-6)
    assert why["temperature"] == 1.0 and why["validation_examples"] == few
    assert why["why"] == f"fewer than {calibration.MIN_EXAMPLES} validation texts to fit a temperature on"
    cooled, fitted = run(200)
    assert fitted["temperature"] > 2 and "why" not in fitted  # fitted: the model is cooled
    assert cooled.max() < 0.9
