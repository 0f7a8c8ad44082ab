"""app.model.classifier: the classifier takes integer inputs, has named layers, and trains under XLA."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from app.data import Split
from app.model.classifier import MAX_POSITIVE_WEIGHT, class_weights


def test_classifier_takes_integer_inputs_only(tiny_hub):
    from app.model.classifier import build_classifier

    model = build_classifier(str(tiny_hub / "encoder"), num_classes=3, seq_length=16)
    assert all(t.dtype == tf.int32 for t in model.inputs)
    assert not any(t.dtype == tf.string for layer in model.layers for t in tf.nest.flatten(layer.output))
    assert [layer.name for layer in model.layers[-3:]] == ["encoder", "dropout", "classifier"]
    assert model.output_shape == (None, 3)
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)


def test_pooled_only_classifier_predicts_the_same(tiny_hub):
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    full = build_classifier(str(tiny_hub / "encoder"), num_classes=3, seq_length=None)
    short = build_classifier(str(tiny_hub / "encoder"), num_classes=3, seq_length=None,
                             pooled_only=True)
    assert short.get_layer("encoder").get_config()["arguments"] == {"pooled_only": True}
    short.set_weights(full.get_weights())
    x = Tokenizer(str(tiny_hub / "preprocess"), 16)(tf.constant(["good film", "bad plot", ""]))
    np.testing.assert_allclose(short(x).numpy(), full(x).numpy(), atol=1e-6, rtol=0)


def test_mean_pooling_averages_the_text_and_ignores_the_padding(tiny_hub):
    import tensorflow_hub as hub

    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    model = build_classifier(str(tiny_hub / "encoder"), num_classes=3, seq_length=None, pooling="mean",
                             pooled_only=True)  # pooled_only is for cls pooling: the mean reads every row
    assert [layer.name for layer in model.layers[-4:]] == ["encoder", "mean_pooling", "dropout", "classifier"]
    assert model.get_layer("encoder").get_config().get("arguments") in (None, {})
    texts = tf.constant(["good film", "a bad plot that goes on and on", ""])
    short, long = (Tokenizer(str(tiny_hub / "preprocess"), n)(texts) for n in (16, 48))
    long = {k: tf.concat([v, tf.zeros([3, 16], v.dtype)], axis=1) for k, v in long.items()}  # more padding
    np.testing.assert_allclose(model(short).numpy(), model(long).numpy(), atol=1e-5, rtol=0)
    # The head reads the mean of the unpadded rows of the last layer.
    sequence = hub.KerasLayer(str(tiny_hub / "encoder"))(short)["sequence_output"].numpy()
    mask = short["input_mask"].numpy()[..., None]
    expected = (sequence * mask).sum(1) / mask.sum(1)
    pooled = tf.keras.Model(model.inputs, model.get_layer("mean_pooling").output)(short).numpy()
    np.testing.assert_allclose(pooled, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="pooling"):
        build_classifier(str(tiny_hub / "encoder"), num_classes=3, pooling="max")


def test_train_step_compiles_with_xla(tiny_hub, tiny_reviews):
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer
    from app.training.optimization import create_optimizer

    model = build_classifier(str(tiny_hub / "encoder"), num_classes=2, seq_length=16,
                             pooled_only=True)  # as app.train builds it
    model.compile(optimizer=create_optimizer(1e-3, 10), loss="sparse_categorical_crossentropy",
                  jit_compile=True)
    x = Tokenizer(str(tiny_hub / "preprocess"), 16)(tf.constant(["good film", "bad film"] * 4))
    before = model.get_layer("encoder").trainable_weights[0].numpy().copy()
    model.fit(x, np.array([1, 0] * 4), batch_size=8, epochs=1, verbose=0)
    assert not np.array_equal(before, model.get_layer("encoder").trainable_weights[0].numpy())
    # The same step (forward with dropout, gradients, AdamW update) lowers to one XLA module.
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    optimizer = model.optimizer

    @tf.function(jit_compile=True)
    def step(inputs, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    hlo = step.experimental_get_compiler_ir(x, tf.constant([1, 0] * 4))(stage="hlo")
    assert "HloModule" in hlo and "rng" in hlo.lower()  # dropout's random numbers are inside


def test_a_multi_label_head_starts_at_each_labels_base_rate(tiny_hub):
    """From its training split's log-odds, not 0: a label on 2 % of the texts starts near 2 %."""
    from app.model.classifier import LabelWeightedBinaryCrossentropy, build_classifier, prior_log_odds

    bias = prior_log_odds([500, 20, 0], 1000)
    np.testing.assert_allclose(bias, [0.0, np.log(21 / 981), np.log(1 / 1001)], rtol=1e-9)
    model = build_classifier(str(tiny_hub / "encoder"), 3, seq_length=8, multi_label=True, initial_bias=bias)
    np.testing.assert_allclose(model.get_layer("classifier").bias.numpy(), bias, rtol=1e-6)
    inputs = {n: tf.zeros([4, 8], tf.int32) for n in ("input_word_ids", "input_mask", "input_type_ids")}
    probabilities = model(inputs, training=False).numpy()
    assert probabilities[:, 1].mean() < 0.1 and abs(probabilities[:, 0].mean() - 0.5) < 0.1
    with pytest.raises(ValueError, match="initial_bias has 2 values for 3 classes"):
        build_classifier(str(tiny_hub / "encoder"), 3, multi_label=True, initial_bias=[0.0, 0.0])
    # The label-weighted loss: a positive's loss times its label's weight, negatives as they are.
    loss = LabelWeightedBinaryCrossentropy([4.0, 1.0])
    y_true, y_pred = tf.constant([[1.0, 0.0]]), tf.constant([[0.5, 0.5]])
    expected = (4 * np.log(2) + np.log(2)) / 2
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    plain = tf.keras.losses.BinaryCrossentropy()
    assert float(LabelWeightedBinaryCrossentropy([1.0, 1.0])(y_true, y_pred)) == pytest.approx(
        float(plain(y_true, y_pred)), rel=1e-4)


# ----------------------------------------------------------------------------- class weights


def test_class_weights_none_balanced_and_from_a_file(tmp_path):
    split = Split(["t"] * 8, ["a"] * 6 + ["b"] * 2, [str(i) for i in range(8)])
    assert class_weights(split.labels, ["a", "b"], "none") == {"a": 1.0, "b": 1.0}
    balanced = class_weights(split.labels, ["a", "b"], "balanced")
    assert balanced == pytest.approx({"a": 8 / 12, "b": 8 / 4})
    path = tmp_path / "w.json"
    path.write_text('{"b": 3}')
    assert class_weights(split.labels, ["a", "b"], str(path)) == {"a": 1.0, "b": 3.0}
    for content, message in [('{"c": 2}', r"names class\(es\) \['c'\] that are not in the training"),
                             ('{"b": -1}', r"the weight of 'b' must be a positive number, got -1"),
                             ('[1, 2]', r"expected a JSON object"), ("{", r"not valid JSON")]:
        path.write_text(content)
        with pytest.raises(ValueError, match=message):  # the flag's value, named
            class_weights(split.labels, ["a", "b"], str(path))


def test_multi_label_balanced_weights_each_labels_positives_by_its_rarity():
    labels = [("a",)] * 50 + [("a", "b")] * 30 + [()] * 19 + [("c",)]
    split = Split(["t"] * 100, labels, [str(i) for i in range(100)])
    weights = class_weights(split.labels, ["a", "b", "c"], "balanced")
    # a: 80 of 100 (negatives fewer than positives: 1); b: 70 / 30; c: 99 / 1, capped.
    assert weights == pytest.approx({"a": 1.0, "b": 70 / 30, "c": MAX_POSITIVE_WEIGHT})
