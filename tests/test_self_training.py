"""app.training.self_training: pseudo-labels, the n-gram model fitted again with them, the figures."""

from __future__ import annotations

import numpy as np
import pytest

from app.model import ngram
from app.training import self_training


def test_each_unlabelled_text_gets_the_ensembles_most_probable_class():
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5], [0.1, 0.3]])
    labels = self_training.pseudo_labels(probabilities)
    assert labels.tolist() == [1, 0, 0, 1] and labels.dtype == np.int32
    for bad in (np.zeros((0, 2)), np.zeros(3)):
        with pytest.raises(ValueError, match="probabilities must be \\[texts, classes\\], got shape"):
            self_training.pseudo_labels(bad)


def test_the_ngram_model_learns_words_only_the_unlabelled_texts_have():
    """Two labelled texts a class; the unlabelled ones carry a word of their class that no labelled
    text has, and labels the trained model gave them: the refitted model reads that word."""
    labelled = ["good film", "great plot", "bad film", "awful plot"]
    label_ids = np.array([1, 1, 0, 0])
    unlabeled = [f"good splendid story {i}" for i in range(10)] + [f"bad dismal story {i}" for i in range(10)]
    pseudo = np.array([1] * 10 + [0] * 10, np.int32)
    before = ngram.fit(labelled, label_ids, 2)
    assert ngram.known(before.model, ["splendid", "dismal"]).tolist() == [False, False]
    after = self_training.refit_ngram(labelled, label_ids, unlabeled, pseudo, 2, seed=0)
    p = ngram.predict(after.model, ["splendid", "dismal"])
    assert p[0, 1] > 0.5 > p[1, 1]
    assert after.record["labelled_examples"] == 4 and after.record["pseudo_labelled_examples"] == 20
    assert after.record["train_examples"] == 24
    with pytest.raises(ValueError, match="20 unlabelled texts but 3 pseudo-labels"):
        self_training.refit_ngram(labelled, label_ids, unlabeled, pseudo[:3], 2, seed=0)


def test_the_figures_count_the_labels_by_class_beside_validation_before_and_after():
    figures = self_training.summary(["neg", "pos", "mixed"], np.array([1, 1, 0, 1]),
                                    {"ensemble": 0.8, "ngram": 0.7}, {"ensemble": 0.85, "ngram": 0.82})
    assert figures == {"pseudo_labels": {"neg": 1, "pos": 3, "mixed": 0},
                       "validation_accuracy": {"before": {"ensemble": 0.8, "ngram": 0.7},
                                               "after": {"ensemble": 0.85, "ngram": 0.82}}}
