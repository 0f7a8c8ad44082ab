"""The classic baseline every report sets bertclf against: TF-IDF + logistic regression.

A fine-tuned encoder costs minutes to hours; a bag of words costs seconds. Whether the encoder was
worth it is the first question a report should answer, so the report scores scikit-learn's
`TfidfVectorizer` (word 1- and 2-grams, sublinear term frequency) with `LogisticRegression`,
fitted on the same training split and evaluated on the same examples (`--baseline none` skips it).
For multi-label data it is one logistic regression a label, each deciding by the same threshold
rule the model's export uses (`app.training.decision`), chosen on a validation split of its own training
data. For text pairs it compares the two sides, as a practitioner's first pair model would: the
TF-IDF vectors of each text, their element-wise product (the words both share) and absolute
difference (the words only one has), and their cosine similarity.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

NAME = "TF-IDF (word 1-2-grams) + logistic regression"
PAIR_NAME = "TF-IDF pair features (each text, product, difference, cosine) + logistic regression"
C = 10.0


class _Features:
    """TF-IDF features of single texts, or of text pairs compared side by side."""

    def __init__(self, n_texts: int):
        from sklearn.feature_extraction.text import TfidfVectorizer

        # (min_df 2 drops the n-grams seen once, as the bench's baseline does; not for a handful.)
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                          min_df=2 if n_texts > 50 else 1)

    def fit_transform(self, texts: Sequence[str], pairs: Sequence[str] | None):
        if pairs is None:
            return self.vectorizer.fit_transform(list(texts))
        self.vectorizer.fit(list(texts) + list(pairs))
        return self.transform(texts, pairs)

    def transform(self, texts: Sequence[str], pairs: Sequence[str] | None):
        from scipy import sparse

        a = self.vectorizer.transform(list(texts))
        if pairs is None:
            return a
        b = self.vectorizer.transform(list(pairs))
        product = a.multiply(b)
        cosine = sparse.csr_matrix(np.asarray(product.sum(axis=1)))  # (TF-IDF rows are unit length)
        return sparse.hstack([a, b, product, abs(a - b), cosine]).tocsr()


def score(train_texts: Sequence[str], train_true: np.ndarray, texts: Sequence[str], true: np.ndarray,
          num_classes: int, seed: int = 42, train_pairs: Sequence[str] | None = None,
          pairs: Sequence[str] | None = None) -> dict:
    """Fit on the training texts and score on `texts`: accuracy and macro F1 (multi-label, a 0/1
    `true` matrix: micro and macro F1 and subset accuracy), with the seconds it took."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.multiclass import OneVsRestClassifier

    if len(train_texts) == 0 or len(texts) == 0:
        raise ValueError("the baseline needs training and evaluation texts")
    start = time.monotonic()
    multi_label = np.ndim(train_true) == 2
    vectorizer = _Features(len(train_texts))
    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    features = vectorizer.fit_transform(train_texts, train_pairs)
    rule = None
    if multi_label:
        from sklearn.model_selection import cross_val_predict

        from app.training import decision

        classifier = OneVsRestClassifier(classifier)
        constant = (train_true.min(0) == train_true.max(0))  # a label all texts have, or none
        predicted = np.tile(train_true[0], (len(texts), 1)).astype(int)
        varied = train_true[:, ~constant]
        if varied.size:
            # Thresholds by the model's own rule, on out-of-fold probabilities of the training
            # texts (the baseline has no validation split of its own).
            folds = min(3, len(train_texts))
            held_out = cross_val_predict(classifier, features, varied, cv=folds, method="predict_proba")
            thresholds, rule = decision.threshold_rule(held_out, varied, seed)
            probabilities = classifier.fit(features, varied).predict_proba(vectorizer.transform(texts, pairs))
            predicted[:, ~constant] = decision.label_sets(probabilities, thresholds)
    else:
        if len(np.unique(train_true)) < 2:
            raise ValueError("the baseline needs two classes in the training texts")
        predicted = classifier.fit(features, train_true).predict(vectorizer.transform(texts, pairs))
    seconds = time.monotonic() - start
    out = {"name": PAIR_NAME if train_pairs is not None else NAME, "train_examples": int(len(train_texts)),
           "n_examples": int(len(texts)),
           "seconds": round(seconds, 1)}
    if rule is not None:
        out["threshold_rule"] = rule["rule"]
    if multi_label:
        out.update(micro_f1=float(f1_score(true, predicted, average="micro", zero_division=0)),
                   macro_f1=float(f1_score(true, predicted, average="macro", zero_division=0)),
                   accuracy=float(accuracy_score(true, predicted)))
    else:
        labels = list(range(num_classes))
        out.update(accuracy=float(accuracy_score(true, predicted)),
                   macro_f1=float(f1_score(true, predicted, labels=labels, average="macro", zero_division=0)))
    logger.info("baseline (%s) on %d examples: accuracy %.4f, macro F1 %.4f (%.1f s)", out["name"],
                len(texts), out["accuracy"], out["macro_f1"], seconds)
    return out
