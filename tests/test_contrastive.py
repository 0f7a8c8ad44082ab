"""app.training.contrastive: the small-data regime's pairs, siamese encoder training and logistic head."""

from __future__ import annotations

import time
import types

import numpy as np
import pytest
import tensorflow as tf

from app.training import contrastive
from tests.conftest import NEGATIVE, POSITIVE, tiny_classifier


@pytest.mark.parametrize("requested, n, multi_label, pairs, expected", [
    ("auto", 200, False, False, "contrastive"),
    ("auto", contrastive.SMALL_DATA, False, False, "contrastive"),
    ("auto", contrastive.SMALL_DATA + 1, False, False, "fine-tune"),
    ("auto", 200, True, False, "fine-tune"),
    ("auto", 200, False, True, "fine-tune"),
    ("fine-tune", 200, False, False, "fine-tune"),
    ("contrastive", 50_000, False, False, "contrastive"),
])
def test_the_regime_is_contrastive_for_few_single_label_texts_unless_told(requested, n, multi_label, pairs,
                                                                         expected):
    regime, why = contrastive.choose_regime(requested, n, multi_label, pairs)
    assert regime == expected
    assert why  # logged and saved with the plan


def test_pairs_pair_every_text_with_its_class_and_another_alike():
    y = np.array([0] * 30 + [1] * 10 + [2] * 5)
    first, second, same = contrastive.make_pairs(y, 900, seed=3)
    assert len(first) == len(second) == len(same) == 900
    np.testing.assert_array_equal(same, (y[first] == y[second]).astype(np.float32))
    assert abs(same.mean() - 0.5) < 0.05  # as many same-class pairs as others
    assert set(np.bincount(first, minlength=len(y))) <= {19, 20, 21}  # every text in turn, not by class
    again = contrastive.make_pairs(y, 900, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((first, second, same), again, strict=True))


@pytest.mark.parametrize("labels, pairs, message", [
    ([0, 0, 0], 10, "two classes or more"),
    ([0, 1], 0, "pairs must be positive"),
])
def test_pairs_refuse_what_cannot_pair(labels, pairs, message):
    with pytest.raises(ValueError, match=message):
        contrastive.make_pairs(np.array(labels), pairs, seed=0)


def _mean_classifier(tiny_hub, num_classes: int = 2):
    """The tiny encoder's classifier as the contrastive regime builds it: the head reads the mean."""
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    return (build_classifier(str(tiny_hub / "encoder"), num_classes, seq_length=16, pooling="mean"),
            Tokenizer(str(tiny_hub / "preprocess"), 16))


def _tiny_texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    texts = [" ".join(rng.choice(POSITIVE if label else NEGATIVE, size=3)) for label in y]
    return texts, y


def test_the_embedder_shares_the_classifiers_weights_and_reads_the_heads_input(tiny_hub):
    model, tokenizer = tiny_classifier(tiny_hub)
    embedding = contrastive.embedder(model)
    x = tokenizer(tf.constant(["good film", "bad plot"]))
    head = model.get_layer("classifier")
    kernel, bias = head.get_weights()
    expected = tf.nn.softmax(embedding(x) @ kernel + bias).numpy()
    np.testing.assert_allclose(model(x).numpy(), expected, atol=1e-5)
    assert {v.ref() for v in embedding.weights} <= {v.ref() for v in model.weights}


def test_pairs_pull_a_class_together_and_the_head_starts_separating_it(tiny_hub):
    model, tokenizer = _mean_classifier(tiny_hub)
    texts, y = _tiny_texts(40)
    encoded = {k: v.numpy() for k, v in tokenizer(tf.constant(texts)).items()}
    embedding = contrastive.embedder(model)

    def gap() -> float:
        e = tf.math.l2_normalize(embedding.predict(encoded, verbose=0), -1).numpy()
        cos = e @ e.T
        same = y[:, None] == y[None, :]
        return float(cos[same].mean() - cos[~same].mean())

    before = gap()
    done = contrastive.train_encoder(model, tf.distribute.get_strategy(), encoded, y, pairs=320, seed=0,
                                     learning_rate=1e-3, batch_size=16)
    assert done["pairs"] == 320 and done["steps"] == done["steps_trained"] == 20
    assert gap() > before + 0.2  # same-class texts closer than the others, by far more than before
    figures = contrastive.fit_head(model, embedding.predict(encoded, verbose=0), y, seed=0)
    assert figures["head_train_accuracy"] == 1.0
    np.testing.assert_array_equal(model.predict(encoded, verbose=0).argmax(1), y)  # the head in the model


def test_the_head_gives_classes_without_examples_no_chance(tiny_hub):
    model, tokenizer = _mean_classifier(tiny_hub, num_classes=3)
    texts, y = _tiny_texts(20)  # classes 0 and 1 only
    encoded = {k: v.numpy() for k, v in tokenizer(tf.constant(texts)).items()}
    contrastive.fit_head(model, contrastive.embedder(model).predict(encoded, verbose=0), y, seed=0)
    assert model.predict(encoded, verbose=0)[:, 2].max() < 1e-6


def test_a_stage_past_its_seconds_stops(tiny_hub):
    model, tokenizer = tiny_classifier(tiny_hub)
    texts, y = _tiny_texts(20)
    encoded = {k: v.numpy() for k, v in tokenizer(tf.constant(texts)).items()}
    done = contrastive.train_encoder(model, tf.distribute.get_strategy(), encoded, y, pairs=400, seed=0,
                                     until=time.monotonic())
    assert done["steps"] == 25 and done["steps_trained"] == 1
    assert done["startup_seconds"] > 0  # the first step traced the pairs' training
    assert 0 <= done["after_stop_seconds"] <= done["seconds"]  # what Keras took to return after the stop


@pytest.mark.parametrize("step, stops_after", [(1.0, 100.0), (0.5, 125.0), (2.0, 50.0)])
def test_the_pairs_stop_at_their_time_moved_by_the_pace_of_their_steps(monkeypatch, step, stops_after):
    # Planned: 100 s of pairs at 1 s a step, then 50 s of other work. Steps twice as fast leave
    # half of that work's estimate to the pairs; twice as slow take it from them.
    now = [0.0]
    monkeypatch.setattr(contrastive.time, "monotonic", lambda: now[0])
    clock = tf.Variable(0.0)
    stop = contrastive.StopAt(100.0, after_seconds=50.0, step_seconds=1.0, clock=clock)
    stop.set_model(types.SimpleNamespace(stop_training=False))
    stop.on_train_begin()
    while not stop.model.stop_training:
        now[0] += step
        stop.on_train_batch_end(stop.steps)
    assert now[0] == pytest.approx(stops_after - step, abs=step + 1e-9)
    assert stop.stopped_at_step == stop.steps
    assert float(clock.numpy()) == pytest.approx(1.0, abs=2 * step / stops_after)
    assert stop.pace() == pytest.approx(step)  # what the run's throughput is corrected by


@pytest.mark.parametrize("startups, stops_after", [(0.0, 100.0), (1.0, 95.0), (3.0, 85.0)])
def test_the_pairs_keep_free_what_starting_the_head_costs_as_their_own_start_measured_it(
        monkeypatch, startups, stops_after):
    # The first step took 6 s where the others take 1: 5 s of start-up (tracing, compiling), which
    # the work after the pairs pays `startups` times over, whatever the probe said.
    now = [0.0]
    monkeypatch.setattr(contrastive.time, "monotonic", lambda: now[0])
    stop = contrastive.StopAt(100.0, after_seconds=50.0, step_seconds=1.0, startups=startups)
    stop.set_model(types.SimpleNamespace(stop_training=False))
    stop.on_train_begin()
    while not stop.model.stop_training:
        now[0] += 6.0 if stop.steps == 0 else 1.0
        stop.on_train_batch_end(stop.steps)
    assert stop.startup() == pytest.approx(5.0)
    assert now[0] == pytest.approx(stops_after - 1.0, abs=1.0 + 1e-9)

