"""The n-gram model beside the encoder: TF-IDF over word 1- and 2-grams, a linear classifier.

The encoder reads at most `--max-seq-length` word pieces of a text and, on a CPU with minutes to
spend, trains on a part of the data; a bag of n-grams reads every word of every training text in
seconds. Their probabilities are combined inside the one exported SavedModel, so TF Serving still
runs one model, by the rule that does best on the validation split (`choose_ensemble`): a weighted
average (`choose_weight`), or log-linear pooling, `softmax(a log p_encoder + b log p_ngram + bias)`
with `a`, `b` and the bias fitted by log loss. An average can only dilute a confident encoder where
the n-grams know little (they answer near their class priors there, and the average's ceiling
falls with the n-grams' weight); pooling log-probabilities lets an uninformed model count for
little. Where the n-gram model knows none of a text's n-grams (`NgramModel.known`), it has nothing
to say, and the ensemble answers as the encoder alone, whichever rule it uses.

The features are TensorFlow ops (`NgramModel.features`): `app.model.preprocessing.normalize_text`,
Keras' `TextVectorization` (lower-casing, punctuation stripped, 1- and 2-grams counted over a
vocabulary adapted on the training texts), then sublinear term frequency, inverse document
frequency and unit length per text, as scikit-learn's `TfidfVectorizer(sublinear_tf=True)`
computes them. The classifier is scikit-learn's logistic regression fitted on those same
features, its weights copied into the module; training and serving compute the same numbers.
For multi-label data it is one logistic regression per label (one-vs-rest), read through a sigmoid.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from app.model.preprocessing import normalize_text

logger = logging.getLogger(__name__)

MAX_TOKENS = 200_000  # vocabulary: the most frequent 1- and 2-grams of the training texts
NGRAMS = 2
C = 10.0  # inverse L2 strength of the logistic regression (sublinear TF-IDF wants little)
WEIGHTS = tuple(np.round(np.linspace(0, 1, 21), 2))  # the n-gram weights tried on validation
# Below this many validation texts a rule or weight chosen on them follows a handful of texts (20
# reviews once chose 0.95, and the ensemble served four points below the encoder alone): the
# ensemble is then the even average, which was never below the better of the two on the small-data
# bench (bench/results/2026-12-07-small-data-zen5.json).
MIN_CHOOSING_EXAMPLES = 50
EVEN_WEIGHT = 0.5
_BATCH = 512


class NgramModel(tf.Module):
    """Texts `[batch]` to class probabilities `[batch, classes]` from TF-IDF n-gram features
    (a softmax; each label's own sigmoid when `multi_label`)."""

    def __init__(self, vocabulary: Sequence[str], idf: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                 multi_label: bool = False):
        super().__init__(name="ngram_model")
        self._multi_label = multi_label
        self.vectorizer = tf.keras.layers.TextVectorization(
            standardize="lower_and_strip_punctuation", ngrams=NGRAMS, output_mode="count", sparse=True,
            vocabulary=list(vocabulary), name="ngram_vectorizer")
        self.idf = tf.Variable(idf.astype(np.float32), trainable=False, name="idf")
        self.kernel = tf.Variable(kernel.astype(np.float32), trainable=False, name="kernel")
        self.bias = tf.Variable(bias.astype(np.float32), trainable=False, name="bias")

    def features(self, texts: tf.Tensor) -> tf.SparseTensor:
        """Sublinear TF-IDF, each row of unit length (`[batch, vocabulary + 1]`, index 0 out of
        vocabulary, weight 0)."""
        return _tfidf(self.vectorizer(normalize_text(texts)), self.idf)

    def known(self, texts: tf.Tensor) -> tf.Tensor:
        """Whether each text has at least one n-gram of the vocabulary (`[batch]`, bool)."""
        features = self.features(texts)
        weight = tf.math.unsorted_segment_sum(tf.abs(features.values), features.indices[:, 0],
                                              tf.cast(features.dense_shape[0], tf.int32))
        return weight > 0

    def logits(self, texts: tf.Tensor) -> tf.Tensor:
        return tf.sparse.sparse_dense_matmul(self.features(texts), self.kernel) + self.bias

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        if self._multi_label:
            return tf.sigmoid(self.logits(texts))
        return tf.nn.softmax(self.logits(texts), axis=-1)


def _tfidf(counts: tf.SparseTensor, idf: tf.Tensor) -> tf.SparseTensor:
    counts = tf.sparse.reorder(counts)
    values = (1.0 + tf.math.log(tf.cast(counts.values, tf.float32))) * tf.gather(idf, counts.indices[:, 1])
    rows = counts.indices[:, 0]
    batch = tf.cast(counts.dense_shape[0], tf.int32)
    norms = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(values), rows, batch))
    values = values / tf.maximum(tf.gather(norms, rows), 1e-12)
    return tf.SparseTensor(counts.indices, values, counts.dense_shape)


@dataclasses.dataclass
class FittedNgram:
    model: NgramModel
    record: dict  # what was fitted: vocabulary size, C, seconds
    validation: np.ndarray | None = None  # its probabilities on the validation split, once computed
    validation_known: np.ndarray | None = None  # which validation texts it knows an n-gram of


def _to_csr(sparse: tf.SparseTensor):
    from scipy import sparse as sp

    indices = sparse.indices.numpy()
    shape = tuple(int(d) for d in sparse.dense_shape.numpy())
    return sp.csr_matrix((sparse.values.numpy(), (indices[:, 0], indices[:, 1])), shape=shape)


def _matrix(fn, texts: Sequence[str]):
    from scipy import sparse as sp

    parts = [_to_csr(fn(tf.constant(list(texts[i:i + _BATCH]), tf.string)))
             for i in range(0, len(texts), _BATCH)]
    return sp.vstack(parts).tocsr()


def _tfidf_matrix(counts, idf: np.ndarray):
    """`_tfidf` on a SciPy matrix of counts: the features `NgramModel.features` computes, from
    the counts already made for the document frequencies."""
    from sklearn.preprocessing import normalize

    features = counts.astype(np.float32).tocsr(copy=True)
    features.data = (1.0 + np.log(features.data)) * idf[features.indices].astype(np.float32)
    return normalize(features, norm="l2", copy=False)


def fit(texts: Sequence[str], label_ids: np.ndarray, num_classes: int, seed: int = 42,
        max_tokens: int = MAX_TOKENS, c: float = C,
        class_weight: dict[int, float] | None = None) -> FittedNgram:
    """Adapt the vocabulary, compute the inverse document frequencies and fit the classifier
    (its loss weighted by `class_weight`, class index -> weight, as the encoder's is). A 0/1
    matrix of `label_ids` (`[n, labels]`) fits one classifier per label."""
    from sklearn.linear_model import LogisticRegression

    start = time.monotonic()
    vectorizer = tf.keras.layers.TextVectorization(
        max_tokens=max_tokens, standardize="lower_and_strip_punctuation", ngrams=NGRAMS, output_mode="count",
        sparse=True)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))
                     .batch(_BATCH).map(normalize_text))
    vocabulary = vectorizer.get_vocabulary()[1:]  # without the out-of-vocabulary token, which it adds
    counts = _matrix(lambda t: vectorizer(normalize_text(t)), texts)
    document_frequency = np.asarray((counts > 0).sum(axis=0)).ravel()
    n = len(texts)
    idf = np.log((1.0 + n) / (1.0 + document_frequency)) + 1.0  # scikit-learn's smooth idf
    idf[0] = 0.0  # out of vocabulary
    features = _tfidf_matrix(counts, idf)
    kernel = np.zeros((len(idf), num_classes))
    bias = np.zeros(num_classes)
    multi_label = label_ids.ndim == 2
    if multi_label:
        for j in range(num_classes):
            column = label_ids[:, j]
            if column.min() == column.max():  # every text has the label, or none: a constant
                bias[j] = 30.0 if column.min() else -30.0
                continue
            classifier = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features, column)
            kernel[:, j], bias[j] = classifier.coef_[0], classifier.intercept_[0]
    else:
        classifier = LogisticRegression(C=c, max_iter=2000, random_state=seed, class_weight=class_weight)
        present = np.unique(label_ids)
        classifier.fit(features, label_ids)
        if len(present) == 2:  # one weight vector: p(second class) = sigmoid(x w + b) = softmax([0, x w + b])
            kernel[:, present[1]], bias[present[1]] = classifier.coef_[0], classifier.intercept_[0]
        else:
            kernel[:, present], bias[present] = classifier.coef_.T, classifier.intercept_
        bias[np.setdiff1d(np.arange(num_classes), present)] = -1e9  # never predicted: no training examples
    model = NgramModel(vocabulary, idf, kernel, bias, multi_label)
    seconds = time.monotonic() - start
    logger.info("n-gram model: %d n-grams from %d texts, fitted in %.1f s", len(vocabulary), n, seconds)
    return FittedNgram(model, {"vocabulary": len(vocabulary), "ngrams": NGRAMS, "c": c,
                               "train_examples": n, "seconds": round(seconds, 1)})


def _batched(method, texts: Sequence[str], empty: np.ndarray) -> np.ndarray:
    """`method` of an `NgramModel` over many texts, `_BATCH` at a time (`empty` for none)."""
    fn = tf.function(method, input_signature=[tf.TensorSpec([None], tf.string)])
    parts = [fn(tf.constant(list(texts[i:i + _BATCH]), tf.string)).numpy()
             for i in range(0, len(texts), _BATCH)]
    return np.concatenate(parts) if parts else empty


def predict(model: NgramModel, texts: Sequence[str]) -> np.ndarray:
    return _batched(model.__call__, texts, np.zeros((0, model.kernel.shape[1]), np.float32))


def known(model: NgramModel, texts: Sequence[str]) -> np.ndarray:
    """`NgramModel.known` over many texts: whether the model knows any n-gram of each (`[n]`)."""
    return _batched(model.known, texts, np.zeros(0, bool))


def _where_known(known: np.ndarray | None, combined: np.ndarray, encoder_probabilities: np.ndarray
                 ) -> np.ndarray:
    """The combination where the n-gram model knows a word of the text, the encoder's own
    probabilities where it knows none (as the export computes it)."""
    if known is None:
        return combined
    return np.where(np.asarray(known, bool)[:, None], combined, encoder_probabilities)


def choose_weight(encoder_probabilities: np.ndarray, ngram_probabilities: np.ndarray, label_ids: np.ndarray,
                  known: np.ndarray | None = None) -> tuple[float, dict]:
    """(n-gram weight, validation figures): the weight in `WEIGHTS` with the best validation
    accuracy, ties to the lower log loss, then to the smaller weight. For multi-label data
    (`label_ids` a 0/1 matrix) the lowest binary cross-entropy, its accuracy the share of
    label decisions right at 0.5. `known` (`known`): texts the n-gram model knows no n-gram of
    are answered by the encoder alone."""
    from sklearn.metrics import log_loss

    if label_ids.ndim == 2:
        return _choose_multi_label_weight(encoder_probabilities, ngram_probabilities, label_ids, known)
    labels = np.arange(encoder_probabilities.shape[1])
    rows = []
    for w in WEIGHTS:
        mixed = _where_known(known, (1 - w) * encoder_probabilities + w * ngram_probabilities,
                             encoder_probabilities)
        p = np.clip(mixed, 1e-7, 1)
        p = p / p.sum(axis=1, keepdims=True)
        rows.append((float(np.mean(p.argmax(1) == label_ids)), -float(log_loss(label_ids, p, labels=labels)),
                     -w))
    best = max(range(len(WEIGHTS)), key=lambda i: rows[i])
    weight = float(WEIGHTS[best])
    accuracy = {"encoder": rows[0][0], "ngram": rows[-1][0], "ensemble": rows[best][0]}
    figures = {"weight": weight, "validation_examples": int(len(label_ids)), "validation_accuracy": accuracy}
    return weight, figures


def binary_cross_entropy(true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean over examples and labels of each label's log loss."""
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(true * np.log(p) + (1 - true) * np.log(1 - p)))


def _choose_multi_label_weight(encoder_probabilities: np.ndarray, ngram_probabilities: np.ndarray,
                               true: np.ndarray, known: np.ndarray | None) -> tuple[float, dict]:
    def mixed(w):
        return _where_known(known, (1 - w) * encoder_probabilities + w * ngram_probabilities,
                            encoder_probabilities)

    losses = [binary_cross_entropy(true, mixed(w)) for w in WEIGHTS]
    best = int(np.argmin(losses))  # the first of equal losses: the smaller weight
    weight = float(WEIGHTS[best])

    def accuracy(w):
        return float(np.mean((mixed(w) >= 0.5) == true))

    figures = {"weight": weight, "validation_examples": int(len(true)),
               "validation_accuracy": {"encoder": accuracy(0.0), "ngram": accuracy(1.0),
                                       "ensemble": accuracy(weight)},
               "validation_loss": {"encoder": losses[0], "ngram": losses[-1], "ensemble": losses[best]}}
    return weight, figures


# ----------------------------------------------------------------------------- combining

ENSEMBLE_RULES = ("average", "log-linear")
CV_FOLDS = 5
_EPS = 1e-7


def log_linear(encoder_probabilities: np.ndarray, ngram_probabilities: np.ndarray, a: float, b: float,
               bias: Sequence[float]) -> np.ndarray:
    """`softmax(a log p_encoder + b log p_ngram + bias)`, as the export computes it."""
    z = (a * np.log(np.maximum(encoder_probabilities, _EPS))
         + b * np.log(np.maximum(ngram_probabilities, _EPS)) + np.asarray(bias, np.float64)[None])
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_log_linear(encoder_probabilities: np.ndarray, ngram_probabilities: np.ndarray,
                   label_ids: np.ndarray) -> dict:
    """`a`, `b` and a bias per class (the first 0) with the lowest log loss on these examples."""
    from scipy.optimize import minimize

    k = encoder_probabilities.shape[1]
    rows = np.arange(len(label_ids))

    def loss(x):
        p = log_linear(encoder_probabilities, ngram_probabilities, x[0], x[1], np.r_[0.0, x[2:]])
        penalty = 1e-4 * float(np.sum(x[2:] ** 2))  # keeps the bias finite when classes separate
        return -float(np.mean(np.log(np.maximum(p[rows, label_ids], _EPS)))) + penalty

    x = minimize(loss, np.r_[0.5, 0.5, np.zeros(k - 1)], method="L-BFGS-B").x
    return {"encoder": round(float(x[0]), 6), "ngram": round(float(x[1]), 6),
            "bias": [0.0] + [round(float(v), 6) for v in x[2:]]}


def _combine(rule: str, params: dict, encoder_probabilities, ngram_probabilities, known=None) -> np.ndarray:
    if rule == "average":
        w = params["weight"]
        combined = (1 - w) * encoder_probabilities + w * ngram_probabilities
    else:
        combined = log_linear(encoder_probabilities, ngram_probabilities, params["encoder"], params["ngram"],
                              params["bias"])
    return _where_known(known, combined, encoder_probabilities)


def _fit(rule: str, encoder_probabilities, ngram_probabilities, label_ids, known=None) -> dict:
    """The rule's parameters, fitted on the texts the n-gram model knows a word of (the others
    are the encoder's whatever the parameters)."""
    if known is not None and np.any(known):
        rows = np.asarray(known, bool)
        encoder_probabilities, ngram_probabilities, label_ids = (
            encoder_probabilities[rows], ngram_probabilities[rows], label_ids[rows])
    if rule == "average":
        return {"weight": choose_weight(encoder_probabilities, ngram_probabilities, label_ids)[0]}
    return fit_log_linear(encoder_probabilities, ngram_probabilities, label_ids)


def choose_ensemble(encoder_probabilities: np.ndarray, ngram_probabilities: np.ndarray, label_ids: np.ndarray,
                    seed: int = 42, known: np.ndarray | None = None) -> tuple[str, dict, dict]:
    """(rule, its parameters, figures) for one label a text: each rule of `ENSEMBLE_RULES` fitted
    on four fifths of the validation split and scored on the fifth left out, in turn; of the
    rules whose cross-validated accuracy the split cannot tell from the best one's (within
    `choose_rule`), the one with the lowest cross-validated log loss (then the average) is
    fitted on the whole split. Accuracy on a validation split moves by a few texts between rules
    that decide almost every text alike; the log loss reads every probability. The figures give
    each rule's cross-validated accuracy and log loss. With `known` (`known`), texts the n-gram
    model knows no n-gram of are the encoder's alone."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(label_ids)
    counts = np.bincount(y)
    folds = int(min(CV_FOLDS, counts[counts > 0].min())) if len(y) else 0
    figures: dict = {"validation_examples": int(len(y)), "folds": folds, "rules": {}}
    if folds < 2:  # too few examples of a class to hold any out: the average, as before
        weight, _ = choose_weight(encoder_probabilities, ngram_probabilities, y, known)
        return "average", {"weight": weight}, figures
    k = np.ones(len(y), bool) if known is None else np.asarray(known, bool)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    right = {}
    for rule in ENSEMBLE_RULES:
        held = np.zeros_like(encoder_probabilities)
        for fit_rows, test_rows in splitter.split(encoder_probabilities, y):
            params = _fit(rule, encoder_probabilities[fit_rows], ngram_probabilities[fit_rows], y[fit_rows],
                          k[fit_rows])
            held[test_rows] = _combine(rule, params, encoder_probabilities[test_rows],
                                       ngram_probabilities[test_rows], k[test_rows])
        loss = float(log_loss(y, held, labels=np.arange(held.shape[1])))
        right[rule] = held.argmax(1) == y
        figures["rules"][rule] = {"cross_validated_accuracy": round(float(np.mean(right[rule])), 4),
                                  "cross_validated_log_loss": round(loss, 4)}
    losses = {r: f["cross_validated_log_loss"] for r, f in figures["rules"].items()}
    rule = choose_rule(right, losses)
    return rule, _fit(rule, encoder_probabilities, ngram_probabilities, y, k), figures


def choose_rule(right: dict[str, np.ndarray], losses: dict[str, float]) -> str:
    """Of the rules (in `ENSEMBLE_RULES` order) whose accuracy is within one standard error of the
    most accurate one's, the one with the lowest log loss. `right[rule]`: whether it decided each
    text right; the standard error of two rules' difference is the square root of the texts they
    decide differently, over all texts (the count McNemar's test reads)."""
    names = [r for r in ENSEMBLE_RULES if r in right]
    best = max(names, key=lambda r: np.sum(right[r]))  # (counted in texts: no rounding at the bound)
    alike = [r for r in names
             if np.sum(right[best]) - np.sum(right[r]) <= np.sqrt(np.sum(right[best] != right[r]))]
    return min(alike, key=lambda r: (losses[r], names.index(r)))


def combine(rule: str, params: dict, encoder_probabilities: np.ndarray, ngram_probabilities: np.ndarray,
            known: np.ndarray | None = None) -> np.ndarray:
    """The ensemble's probabilities by `rule` (from `choose_ensemble`), as the export computes
    them: the encoder's alone for texts the n-gram model knows no n-gram of (`known` False)."""
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"ensemble rule must be one of {list(ENSEMBLE_RULES)}, got {rule!r}")
    return _combine(rule, params, encoder_probabilities, ngram_probabilities, known)
