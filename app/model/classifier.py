"""The classifier: TF-Hub encoder -> pooling -> dropout -> dense softmax, in functional tf-keras
(a dense sigmoid for multi-label data: one independent probability per label).

The head reads the encoder's pooled [CLS] vector (`pooling="cls"`), or the mean of the last
layer over the text's word pieces (`"mean"`), which is how sentence-embedding encoders such as
the offline all-MiniLM-L6-v2 were trained to be read. Frozen, MiniLM's mean separates IMDb
reviews far better than its [CLS] vector; fine-tuned, the two end level, and the [CLS] head is
the cheaper (the pooled-only call skips most of the last layer), so it is the default.

The model takes the encoder's three integer inputs, never strings: tokenization runs in
`tf.data` during training (TPU-safe) and in front of the model in the exported SavedModel.

`--class-weight` is read here too (`class_weights`), beside the loss that weighs each label's
positives by it (`LabelWeightedBinaryCrossentropy`).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (ops of any preprocessor loaded alongside)

from app.model.bert import INPUT_NAMES  # TF Hub's BERT encoder interface
from app.options import POOLINGS

# The head's layer name: its variables are "classifier/kernel" and "classifier/bias".
HEAD_LAYER = "classifier"


def build_classifier(
    encoder_handle: str,
    num_classes: int,
    dropout: float = 0.1,
    seq_length: int | None = None,
    name: str = "bertclf",
    pooled_only: bool = False,
    pooling: str = "cls",
    multi_label: bool = False,
    initial_bias: list[float] | None = None,
) -> tf.keras.Model:
    """Build inside `strategy.scope()`: the encoder's variables belong to the strategy.

    `initial_bias` starts the head's biases there instead of at 0: for multi-label data each
    label's log-odds in the training split (`prior_log_odds`), so a rare label starts rare. At a
    fine-tuning learning rate an Adam step moves a bias by about the learning rate, so from 0
    (probability 0.5) a rare label would take thousands of steps to get down to its base rate.

    `pooled_only` asks the encoder for the pooled output alone, which `app.convert`'s encoders
    compute with less work (`EncoderSpec.pooled_only` says whether an encoder takes it); it
    applies to `pooling="cls"` only.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    # (A multi-label head has one output per label; a softmax over them would make them compete.)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
    if initial_bias is not None and len(initial_bias) != num_classes:
        raise ValueError(f"initial_bias has {len(initial_bias)} values for {num_classes} classes")
    inputs = {n: tf.keras.Input(shape=(seq_length,), dtype=tf.int32, name=n) for n in INPUT_NAMES}
    cls_only = pooled_only and pooling == "cls"
    encoder = hub.KerasLayer(encoder_handle, trainable=True, name="encoder",
                             arguments={"pooled_only": True} if cls_only else None)
    outputs = encoder(inputs)
    if pooling == "mean":  # padding excluded; averaged in float32 whatever the encoder computes in
        pooled = tf.keras.layers.GlobalAveragePooling1D(name="mean_pooling", dtype="float32")(
            outputs["sequence_output"], mask=inputs["input_mask"])
    else:
        pooled = outputs["pooled_output"]
    x = tf.keras.layers.Dropout(dropout, name="dropout")(pooled)
    probs = tf.keras.layers.Dense(
        num_classes,
        activation="sigmoid" if multi_label else "softmax",
        dtype="float32",  # probabilities stay float32 under a mixed-precision policy
        kernel_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02),
        bias_initializer=("zeros" if initial_bias is None
                          else tf.keras.initializers.Constant([float(b) for b in initial_bias])),
        name=HEAD_LAYER,
    )(x)
    return tf.keras.Model(inputs, probs, name=name)


def prior_log_odds(positives: list[int], examples: int) -> list[float]:
    """Each label's log-odds in a split of `examples` with `positives[j]` carrying label j
    (add-one smoothed, so a label seen never or always stays finite)."""
    import math

    if examples < 1:
        raise ValueError(f"examples must be positive, got {examples}")
    return [math.log((p + 1) / (examples - p + 1)) for p in positives]


class LabelWeightedBinaryCrossentropy(tf.keras.losses.Loss):
    """Binary cross-entropy per label with each label's positive examples weighted
    (`positive_weights[j]`; the negatives weigh 1): multi-label `--class-weight`, so that a rare
    label's few positives are not outvoted into "never" by its many negatives."""

    def __init__(self, positive_weights, name: str = "label_weighted_binary_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.positive_weights = [float(w) for w in positive_weights]

    def call(self, y_true, y_pred):
        epsilon = tf.keras.backend.epsilon()
        y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), epsilon, 1 - epsilon)
        y_true = tf.cast(y_true, tf.float32)
        weights = tf.constant(self.positive_weights, tf.float32)
        per_label = -(weights * y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred))
        return tf.reduce_mean(per_label, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "positive_weights": self.positive_weights}


# Multi-label `--class-weight balanced`: a label's positive examples weigh its negatives over
# its positives, at most this much (a label with a handful of positives would otherwise swing
# whole batches).
MAX_POSITIVE_WEIGHT = 10.0

def class_weights(labels: Sequence, classes: Sequence[str], spec: str) -> dict[str, float]:
    """Each class's loss weight for `--class-weight`, from the training split's `labels` (class
    names, or for multi-label data each example's tuple of names): 1 for `none`; for `balanced`,
    the number of examples over (classes x the class's examples), scikit-learn's rule, so every class
    weighs as much in the loss as the others; or from a JSON file {class name: weight}, classes
    it does not list weighing 1. For multi-label data a label's weight multiplies the loss of
    its positive examples: `balanced` gives each label its negatives over its positives (at
    most `MAX_POSITIVE_WEIGHT`, at least 1), so a rare label is not learnt as "never"."""
    if spec == "none":
        return {c: 1.0 for c in classes}
    if spec == "balanced" and any(isinstance(label, tuple) for label in labels):
        counts = collections.Counter(name for label in labels for name in label)
        return {c: round(float(min(MAX_POSITIVE_WEIGHT, max(1.0, (len(labels) - counts.get(c, 0))
                                                            / max(counts.get(c, 0), 1)))), 6)
                for c in classes}
    if spec == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = [c for c in classes if c in set(labels)]
        weights = compute_class_weight("balanced", classes=np.asarray(present), y=np.asarray(labels))
        found = dict(zip(present, weights, strict=True))
        return {c: round(float(found.get(c, 1.0)), 6) for c in classes}
    try:
        raw = json.loads(Path(spec).expanduser().read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"--class-weight {spec}: cannot read ({e.strerror or e})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"--class-weight {spec}: not valid JSON ({e.msg})") from e
    if not isinstance(raw, dict):
        raise ValueError(f"--class-weight {spec}: expected a JSON object {{class name: weight}}, "
                        f"got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - set(classes))
    if unknown:
        raise ValueError(f"--class-weight {spec} names class(es) {unknown} that are not in the training "
                        f"classes {list(classes)}")
    for name, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < float("inf"):
            raise ValueError(f"--class-weight {spec}: the weight of {name!r} must be a positive number, "
                            f"got {weight!r}")
    return {c: float(raw.get(c, 1.0)) for c in classes}
