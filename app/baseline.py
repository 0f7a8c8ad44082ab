"""The classic baseline every report sets bertclf against: TF-IDF + logistic regression.

A fine-tuned encoder costs minutes to hours; a bag of words costs seconds. Whether the encoder was
worth it is the first question a report should answer, so the report scores scikit-learn's
`TfidfVectorizer` (word 1- and 2-grams, sublinear term frequency) with `LogisticRegression`,
fitted on the same training split and evaluated on the same examples (`--baseline none` skips it).
For multi-label data it is one logistic regression a label, each deciding at 0.5; for text pairs
it reads the two texts as one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

NAME = "TF-IDF (word 1-2-grams) + logistic regression"
BASELINES = ("tfidf", "none")
C = 10.0


def _joined(texts: Sequence[str], pairs: Sequence[str] | None) -> list[str]:
    return list(texts) if pairs is None else [f"{a}\n{b}" for a, b in zip(texts, pairs, strict=True)]


def score(train_texts: Sequence[str], train_true: np.ndarray, texts: Sequence[str], true: np.ndarray,
          num_classes: int, seed: int = 42, train_pairs: Sequence[str] | None = None,
          pairs: Sequence[str] | None = None) -> dict:
    """Fit on the training texts and score on `texts`: accuracy and macro F1 (multi-label, a 0/1
    `true` matrix: micro and macro F1 and subset accuracy), with the seconds it took."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.multiclass import OneVsRestClassifier

    if len(train_texts) == 0 or len(texts) == 0:
        raise ValueError("the baseline needs training and evaluation texts")
    start = time.monotonic()
    multi_label = np.ndim(train_true) == 2
    # (min_df 2 drops the n-grams seen once, as the bench's baseline does; not for a handful of texts.)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                 min_df=2 if len(train_texts) > 50 else 1)
    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    features = vectorizer.fit_transform(_joined(train_texts, train_pairs))
    if multi_label:
        classifier = OneVsRestClassifier(classifier)
        constant = (train_true.min(0) == train_true.max(0))  # a label all texts have, or none
        fitted = classifier.fit(features, train_true[:, ~constant]) if (~constant).any() else None
        predicted = np.tile(train_true[0], (len(texts), 1)).astype(int)
        if fitted is not None:
            predicted[:, ~constant] = fitted.predict(vectorizer.transform(_joined(texts, pairs)))
    else:
        if len(np.unique(train_true)) < 2:
            raise ValueError("the baseline needs two classes in the training texts")
        predicted = classifier.fit(features, train_true).predict(vectorizer.transform(_joined(texts, pairs)))
    seconds = time.monotonic() - start
    out = {"name": NAME, "train_examples": int(len(train_texts)), "n_examples": int(len(texts)),
           "seconds": round(seconds, 1)}
    if multi_label:
        out.update(micro_f1=float(f1_score(true, predicted, average="micro", zero_division=0)),
                   macro_f1=float(f1_score(true, predicted, average="macro", zero_division=0)),
                   accuracy=float(accuracy_score(true, predicted)))
    else:
        labels = list(range(num_classes))
        out.update(accuracy=float(accuracy_score(true, predicted)),
                   macro_f1=float(f1_score(true, predicted, labels=labels, average="macro", zero_division=0)))
    logger.info("baseline (%s) on %d examples: accuracy %.4f, macro F1 %.4f (%.1f s)", NAME, len(texts),
                out["accuracy"], out["macro_f1"], seconds)
    return out
