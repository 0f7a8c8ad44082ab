"""app.reporting.baseline: TF-IDF + logistic regression, fitted and scored as the report shows it."""

from __future__ import annotations

import numpy as np
import pytest

from app.reporting import baseline
from app.training import decision

TRAIN = ["good film", "great story", "bad film", "awful story", "good acting", "terrible acting"] * 5
TRAIN_IDS = np.array([1, 1, 0, 0, 1, 0] * 5)


def test_single_label_accuracy_and_macro_f1_on_the_given_texts():
    texts, true = ["a good story", "an awful film", "great", "bad"], np.array([1, 0, 1, 1])
    out = baseline.score(TRAIN, TRAIN_IDS, texts, true, 2)
    # "bad" is a negative word: 3 of 4 right; F1 neg 2/3 (1 TP, 1 FP), pos 4/5 (2 TP, 1 FN).
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert (out["train_examples"], out["n_examples"]) == (30, 4) and out["name"] == baseline.NAME


def test_multi_label_decides_each_label_by_the_models_threshold_rule():
    train_true = np.array([[("good" in t or "great" in t), ("story" in t)] for t in TRAIN], np.float32)
    true = np.array([[1, 1], [0, 0]])
    out = baseline.score(TRAIN, train_true, ["a great story", "awful acting"], true, 2)
    assert out["micro_f1"] == 1.0 and out["accuracy"] == 1.0 and out["macro_f1"] == 1.0
    assert out["threshold_rule"] in decision.THRESHOLD_RULES


def test_text_pairs_are_compared_side_by_side():
    """Paraphrase-like pairs: `same` when both sides share their content word. Read as one text,
    a bag of words cannot see that; the element-wise product of the two sides' vectors can."""
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(40)]
    first, second, same = [], [], []
    for i in range(400):
        a, b = rng.choice(words, 2, replace=False)
        match = i % 2 == 0
        first.append(f"the {a} was here")
        second.append(f"a {a if match else b} came")
        same.append(int(match))
    true = np.array(same)
    out = baseline.score(first[:300], true[:300], first[300:], true[300:], 2, train_pairs=second[:300],
                         pairs=second[300:])
    assert out["name"] == baseline.PAIR_NAME
    assert out["accuracy"] > 0.9, out


def test_a_baseline_needs_texts_and_two_classes():
    with pytest.raises(ValueError, match="needs training and evaluation texts"):
        baseline.score([], np.array([]), ["x"], np.array([0]), 2)
    with pytest.raises(ValueError, match="two classes"):
        baseline.score(["good film", "bad film"], np.array([1, 1]), ["x"], np.array([0]), 2)
