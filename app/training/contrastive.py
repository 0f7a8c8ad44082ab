"""The small-data regime: contrastive fine-tuning of the encoder, then a logistic-regression head
(SetFit, Tunstall et al. 2022).

With a few hundred labelled texts, cross-entropy fine-tuning has few steps to learn from and is
unstable: it can end below TF-IDF. SetFit uses the labels twice over instead: pairs of training
texts, same class or not, teach the encoder's sentence embedding (the head's input) to put texts
of a class together (the cosine of a pair pulled to 1 or 0, up to `PAIRS_PER_EXAMPLE` pairs a text),
and a logistic regression fitted on those embeddings starts the head. Sentence-embedding
encoders such as the offline all-MiniLM-L6-v2 were pre-trained this way, so few pairs move them
far. The classifier that `model.fit` then trains (its head: `app.train` freezes the encoder,
since fine-tuning it after its pairs lowered accuracy) and the export serves is the usual one:
this stage only changes where its weights start.

`--regime auto` takes this regime for single-label texts (not pairs) with at most `SMALL_DATA`
training examples (`choose_regime`). With 10-minute budgets on IMDb the pairs beat fine-tuning at
64, 200 and 1,000 labelled reviews, and on the demo's 1,440 short reviews they answered plain
sentences right that fine-tuning got wrong (bench/results/2026-12-07-tta-small-vm-10.json and
-demo-sample-decks-zen5.json); past a few thousand texts a budget's pairs come to one or two a
text, and fine-tuning has the steps it needs.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import tensorflow as tf

from app.model.bert import INPUT_NAMES
from app.model.classifier import HEAD_LAYER
from app.options import SMALL_DATA

logger = logging.getLogger(__name__)

PAIRS_PER_EXAMPLE = 20  # SetFit's R: pairs formed with each training text (half same class)
# With a time budget, as many pairs as its time allows, up to this many a text: on 64 IMDb reviews
# (bench/results/2026-12-07-pairs-per-text-zen5.json) 40 and 60 a text still gained on 20, and
# more pairs at 256 word pieces beat 20 a text at 512 in the same time.
MAX_PAIRS_PER_EXAMPLE = 60
MAX_PAIRS = 4000  # without a time budget: the pairs of 200 texts, at most
LEARNING_RATE = 2e-5  # SetFit's rate for the encoder body; twice it was no better (docs/time-budget.md)
BATCH_SIZE = 16  # pairs a step
HEAD_C = 1.0  # the logistic head's inverse L2 strength (on unit-length embeddings)


def choose_regime(requested: str, train_examples: int, multi_label: bool, pairs: bool) -> tuple[str, str]:
    """(regime, why) for `--regime`: contrastive for up to `SMALL_DATA` single-label texts."""
    if requested != "auto":
        return requested, f"--regime {requested}"
    if multi_label or pairs:
        return "fine-tune", ("multi-label data" if multi_label else "text pairs") + ": fine-tuning"
    if train_examples <= SMALL_DATA:
        return "contrastive", (f"{train_examples} training examples (at most {SMALL_DATA:,}): contrastive "
                               "pairs train the encoder, then the head is trained on it")
    return "fine-tune", f"{train_examples} training examples (more than {SMALL_DATA:,}): fine-tuning"


def make_pairs(label_ids: np.ndarray, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, same): `pairs` pairs of example indices, each text in turn paired with a
    random text of its class and one of another class, shuffled; `same` 1.0 or 0.0."""
    y = np.asarray(label_ids)
    if pairs < 1:
        raise ValueError(f"pairs must be positive, got {pairs}")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"contrastive pairs need two classes or more, got {classes.tolist()}")
    rng = np.random.default_rng(seed)
    members = {c: np.flatnonzero(y == c) for c in classes}
    others = {c: np.flatnonzero(y != c) for c in classes}
    first, second, same = [], [], []
    while len(first) < pairs:
        for i in rng.permutation(len(y)):
            first += [i, i]
            second += [rng.choice(members[y[i]]), rng.choice(others[y[i]])]
            same += [1.0, 0.0]
    order = rng.permutation(len(first))[:pairs]
    return (np.asarray(first)[order], np.asarray(second)[order], np.asarray(same, np.float32)[order])


def embedder(classifier: tf.keras.Model) -> tf.keras.Model:
    """The classifier's text embedding: the head's input (pooled, before dropout), sharing its
    weights."""
    return tf.keras.Model(classifier.inputs, classifier.get_layer("dropout").input, name="embedder")


def siamese(embedding: tf.keras.Model) -> tf.keras.Model:
    """Two texts' encoder inputs -> the cosine of their embeddings (`[batch, 1]`)."""
    seq = embedding.inputs[0].shape[-1]
    first = {n: tf.keras.Input(shape=(seq,), dtype=tf.int32, name=f"first_{n}") for n in INPUT_NAMES}
    second = {n: tf.keras.Input(shape=(seq,), dtype=tf.int32, name=f"second_{n}") for n in INPUT_NAMES}
    cosine = tf.keras.layers.Dot(axes=1, normalize=True, name="cosine", dtype="float32")(
        [embedding(first), embedding(second)])
    return tf.keras.Model({"first": first, "second": second}, cosine, name="siamese")


class StopAt(tf.keras.callbacks.Callback):
    """Ends the pairs' training at its time: `until` (a `time.monotonic()` reading), moved by how
    fast its steps run against the plan's `step_seconds`. The `after_seconds` that the passes after
    the pairs were estimated to need scale the same way: on a machine faster than its probe they
    need less, and the pairs get the difference; on a slower one they give it up. The fixed work
    after them (compiling and tracing the head's training) costs about `startups` of the pairs' own
    start-up (their first step's time beyond their pace), measured here under the load the machine
    has now, and that time is kept free too. Sets `clock`, the learning-rate schedule's share of the
    time used, so the schedule decays to its end at the stop."""

    def __init__(self, until: float, after_seconds: float = 0.0, step_seconds: float | None = None,
                 clock: tf.Variable | None = None, startups: float = 0.0):
        super().__init__()
        self.until = until
        self.seconds = float("inf")
        self.after_seconds = after_seconds
        self.step_seconds = step_seconds
        self.clock = clock
        self.startups = startups
        self.stopped_at_step: int | None = None
        self.stopped_at: float | None = None  # the time.monotonic() of the stop
        self.steps = 0

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()
        self.seconds = self.until - self._start
        self._first = self._last = None
        self.steps = 0

    def limit(self) -> float:
        """The seconds from the start that the pairs may train, by the steps timed so far (the first,
        which traces the step, left out)."""
        pace = self.pace()
        kept = self.startups * (self.startup() or 0.0)
        if not self.step_seconds or pace is None:
            return max(0.0, self.seconds - kept)
        ratio = pace / self.step_seconds
        return max(0.0, self.seconds + (1.0 - min(2.0, max(0.5, ratio))) * self.after_seconds - kept)

    def pace(self) -> float | None:
        """Seconds a step after the first (which traces it), or None before three steps."""
        if self._first is None or self.steps < 3:
            return None
        return (self._last - self._first) / (self.steps - 1)

    def startup(self) -> float | None:
        """The first step's seconds beyond a step's pace (all of them until the pace is known): what
        starting a fit costs on this machine now; None before the first step."""
        if self._first is None:
            return None
        first = self._first - self._start
        return max(0.0, first - (self.pace() or 0.0))

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        now = self._last = time.monotonic()
        if self._first is None:
            self._first = now
        used, limit = now - self._start, self.limit()
        if self.clock is not None:
            self.clock.assign(min(1.0, used / max(limit, 1e-3)))
        if used + used / self.steps >= limit and not self.model.stop_training:
            self.model.stop_training = True
            self.stopped_at_step, self.stopped_at = self.steps, now


def pair_dataset(encoded: dict[str, np.ndarray], first: np.ndarray, second: np.ndarray, same: np.ndarray,
                 batch_size: int) -> tf.data.Dataset:
    """Batches of ({"first": inputs, "second": inputs}, same) gathered from the texts' `encoded`
    inputs (`[texts, seq]` each)."""
    table = {n: tf.constant(encoded[n]) for n in INPUT_NAMES}

    def gather(i, j, y):
        return ({"first": {n: tf.gather(table[n], i) for n in INPUT_NAMES},
                 "second": {n: tf.gather(table[n], j) for n in INPUT_NAMES}}, y[:, None])

    return (tf.data.Dataset.from_tensor_slices((first, second, same)).batch(batch_size)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def train_encoder(classifier: tf.keras.Model, strategy, encoded: dict[str, np.ndarray], label_ids: np.ndarray,
                  pairs: int, seed: int, until: float | None = None, learning_rate: float = LEARNING_RATE,
                  batch_size: int = BATCH_SIZE, weight_decay: float = 0.01, after_seconds: float = 0.0,
                  pair_seconds: float | None = None, expected_pairs: int | None = None,
                  layer_decay: float = 1.0, startups: float = 0.0) -> dict:
    """Train the classifier's encoder on `pairs` contrastive pairs of the training texts (their
    `encoded` encoder inputs), one pass, the cosine's squared error to same (1) or not (0). With
    `until` (a time budget's, a `time.monotonic()` reading), `StopAt` ends it then, moved by how the
    steps' pace compares with `pair_seconds` (the plan's, a pair) times the `after_seconds` the
    passes after it need, less `startups` of its own start-up; the learning rate decays by that
    clock; the warm-up is a tenth of the `expected_pairs`' steps. Returns what it did, for the run
    record; `step_seconds` is a step's measured pace (the first, which traces it, left out), which
    a budgeted run's throughput is corrected by, and `startup_seconds` the first step's time beyond it."""
    from app.training.optimization import create_optimizer

    first, second, same = make_pairs(label_ids, pairs, seed)
    steps = -(-len(first) // batch_size)
    warmup = int(round(0.1 * -(-(expected_pairs or len(first)) // batch_size)))
    with strategy.scope():
        clock = None if until is None else tf.Variable(0.0, trainable=False, name="pairs_clock")
        model = siamese(embedder(classifier))
        model.compile(optimizer=create_optimizer(learning_rate, steps, weight_decay=weight_decay, clock=clock,
                                                 warmup_steps=min(warmup, steps), layer_decay=layer_decay),
                      loss=tf.keras.losses.MeanSquaredError())
    start = time.monotonic()
    planned_step = pair_seconds * batch_size if pair_seconds else None
    stop = StopAt(float("inf") if until is None else until, after_seconds, planned_step, clock, startups)
    logger.info("contrastive pairs: %d (%d steps of %d)%s", len(first), steps, batch_size,
                f", at most {until - start:.0f} s" if until is not None else "")
    history = model.fit(pair_dataset(encoded, first, second, same, batch_size), epochs=1, callbacks=[stop],
                        verbose=0)
    end = time.monotonic()
    took = end - start
    trained = stop.stopped_at_step or steps
    # Keras can return well after the stop (tearing the input pipeline down has taken up to a
    # minute on a Xeon); that time is the head's, so it is logged and recorded.
    after_stop = end - stop.stopped_at if stop.stopped_at is not None else 0.0
    if after_stop > 5.0:
        logger.warning("contrastive training: fit returned %.0f s after the pairs' stop", after_stop)
    losses = history.history.get("loss", [float("nan")])
    pace, startup = stop.pace(), stop.startup()
    logger.info("contrastive training: %d of %d steps in %.0f s (the first, which traced them, %.1f s "
                "beyond the pace), loss %.4f", trained, steps, took, startup or 0.0, losses[-1])
    return {"pairs": int(len(first)), "pairs_trained": int(min(len(first), trained * batch_size)),
            "steps": int(steps), "steps_trained": int(trained),
            "seconds": round(took, 1), "loss": round(float(losses[-1]), 5),
            **({"step_seconds": round(pace, 5)} if pace is not None else {}),
            **({"startup_seconds": round(startup, 2)} if startup is not None else {}),
            **({"after_stop_seconds": round(after_stop, 1)} if stop.stopped_at is not None else {}),
            "learning_rate": learning_rate, "batch_size": batch_size}


def fit_head(classifier: tf.keras.Model, embeddings: np.ndarray, label_ids: np.ndarray, seed: int,
             c: float = HEAD_C) -> dict:
    """Start the classifier's softmax head at a logistic regression fitted on the training texts'
    `embeddings` (its inputs), so fine-tuning begins from a head that already separates them."""
    from sklearn.linear_model import LogisticRegression

    head = classifier.get_layer(HEAD_LAYER)
    kernel, bias = (np.zeros(w.shape, np.float32) for w in head.get_weights())
    present = np.unique(label_ids)
    regression = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(embeddings, label_ids)
    if len(present) == 2:  # p(second) = sigmoid(x w + b) = softmax([0, x w + b])[1]
        kernel[:, present[1]], bias[present[1]] = regression.coef_[0], regression.intercept_[0]
    else:
        kernel[:, present], bias[present] = regression.coef_.T, regression.intercept_
    absent = np.setdiff1d(np.arange(len(bias)), present)
    bias[absent] = -30.0  # classes without training examples start never predicted
    head.set_weights([kernel, bias])
    accuracy = float(np.mean(regression.predict(embeddings) == label_ids))
    logger.info("contrastive head: logistic regression on %d embeddings, training accuracy %.4f",
                len(label_ids), accuracy)
    return {"head_train_accuracy": round(accuracy, 4), "head_c": c}
