"""Self-training on the user's unlabelled texts (`--unlabeled-data`): the trained model labels
them, and the n-gram model learns again from those labels.

After fit, the served ensemble (the fine-tuned encoder with the n-gram model, combined by the
rule chosen on validation) answers every unlabelled text; the n-gram model is then fitted again on
the labelled training texts plus the unlabelled ones with those answers as labels, and the
ensemble's rule is chosen again. Co-training in effect: the encoder, which reads a text as a
whole, teaches the bag of words the n-grams its few labelled texts never showed. A second round
changes no label (the n-gram model fits its own training texts), so there is one.

What the labels train is the lever that won on IMDb at 200 labels (bench/results/
2026-12-07-self-training-zen5.json): the n-gram model gains most (it is the weaker, and the most
data-hungry, of the two); the contrastive head refitted on the encoder's embeddings with the same
labels gained nothing, its labels being largely its own; keeping only the most confident answers
did worse than keeping all of them (more texts counted for more than cleaner labels).

No TensorFlow here beyond the n-gram model's (app.model.ngram).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from app.model import ngram

logger = logging.getLogger(__name__)


def pseudo_labels(probabilities: np.ndarray) -> np.ndarray:
    """The class each unlabelled text is given: the ensemble's most probable (`[n]` int32)."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or not len(probabilities):
        raise ValueError(f"probabilities must be [texts, classes], got shape {probabilities.shape}")
    return probabilities.argmax(axis=1).astype(np.int32)


def refit_ngram(texts: Sequence[str], label_ids: np.ndarray, unlabeled: Sequence[str], pseudo: np.ndarray,
                num_classes: int, seed: int, class_weight: dict[int, float] | None = None
                ) -> ngram.FittedNgram:
    """The n-gram model fitted on the labelled `texts` and the `unlabeled` texts with their `pseudo`
    labels (`pseudo_labels`); its record says how many of each."""
    if len(unlabeled) != len(pseudo):
        raise ValueError(f"{len(unlabeled)} unlabelled texts but {len(pseudo)} pseudo-labels")
    fitted = ngram.fit(list(texts) + list(unlabeled), np.concatenate([np.asarray(label_ids), pseudo]),
                       num_classes, seed, class_weight=class_weight)
    fitted.record.update(labelled_examples=len(texts), pseudo_labelled_examples=len(unlabeled))
    return fitted


def summary(classes: Sequence[str], pseudo: np.ndarray, before: dict, after: dict) -> dict:
    """The record's `self_training` figures: the pseudo-labels by class and the validation accuracy
    of the ensemble and of the n-gram model alone, before and after (`before`/`after`:
    {"ensemble": ..., "ngram": ...})."""
    counts = np.bincount(pseudo, minlength=len(classes))
    return {"pseudo_labels": {c: int(n) for c, n in zip(classes, counts, strict=True)},
            "validation_accuracy": {"before": before, "after": after}}
