"""app.model.ngram: TF-IDF features as defined, a classifier that learns the words, the weight chosen on
validation, and the same probabilities after a SavedModel round trip."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from app.model import ngram

TEXTS = ["good good film", "a bad film", "good<br />plot", "BAD, bad plot!"]


def test_features_are_sublinear_tfidf_of_unit_length():
    fitted = ngram.fit(TEXTS, np.array([1, 0, 1, 0]), 2)
    model = fitted.model
    vocabulary = model.vectorizer.get_vocabulary()
    features = tf.sparse.to_dense(model.features(tf.constant(TEXTS))).numpy()
    assert features.shape == (4, len(vocabulary))
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-6)
    # "good good film": counts good 2, film 1, "good good" 1, "good film" 1. The idf is
    # scikit-learn's smooth one: log((1 + n) / (1 + df)) + 1.
    n = 4
    df = {"good": 2, "film": 2, "good good": 1, "good film": 1}
    tf_ = {"good": 1 + np.log(2), "film": 1.0, "good good": 1.0, "good film": 1.0}
    raw = {t: tf_[t] * (np.log((1 + n) / (1 + df[t])) + 1) for t in df}
    norm = np.sqrt(sum(v * v for v in raw.values()))
    for term, value in raw.items():
        assert features[0, vocabulary.index(term)] == pytest.approx(value / norm, rel=1e-5)
    assert np.count_nonzero(features[0]) == 4
    # Normalized as the tokenizer normalizes: the HTML break is a space, case and punctuation go.
    assert features[2, vocabulary.index("good plot")] > 0
    assert features[3, vocabulary.index("bad bad")] > 0
    assert fitted.record["vocabulary"] == len(vocabulary) - 1 and fitted.record["train_examples"] == 4


def test_it_learns_the_words_and_survives_a_saved_model_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    good, bad = ["great", "superb", "loved"], ["awful", "boring", "hated"]
    filler = ["the", "film", "plot", "was"]
    texts, labels = [], []
    for i in range(200):
        label = i % 3  # three classes: good, bad, neither
        words = list(rng.choice(filler, 6))
        if label < 2:
            words.insert(int(rng.integers(0, 6)), str(rng.choice(good if label == 0 else bad)))
        texts.append(" ".join(words))
        labels.append(label)
    fitted = ngram.fit(texts, np.array(labels), 3)
    probabilities = ngram.predict(fitted.model, ["the film was superb", "the plot was boring", "the film"])
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-6)
    assert probabilities.argmax(1).tolist() == [0, 1, 2]

    module = tf.Module()
    module.ngram = fitted.model
    module.serve = tf.function(fitted.model.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "ngram"))
    reloaded = tf.saved_model.load(str(tmp_path / "ngram"))
    again = reloaded.serve(tf.constant(["the film was superb", "the plot was boring", "the film"])).numpy()
    np.testing.assert_allclose(again, probabilities, rtol=1e-6)


def test_a_class_missing_from_training_is_never_predicted():
    fitted = ngram.fit(["good", "great", "bad", "awful"], np.array([0, 0, 2, 2]), 3)
    probabilities = ngram.predict(fitted.model, ["good", "bad"])
    assert probabilities[:, 1].max() < 1e-6 and probabilities.argmax(1).tolist() == [0, 2]


def test_the_weight_is_chosen_on_validation():
    labels = np.array([0, 1] * 50)
    truth = np.eye(2)[labels]
    useless = np.full((100, 2), 0.5)
    assert ngram.choose_weight(truth, useless, labels)[0] == 0.0
    assert ngram.choose_weight(useless + 0.01 * (np.eye(2)[1 - labels]), truth, labels)[0] == 1.0
    # Each right on a different half, the one right with more confidence wins: a mix is best.
    first_half = np.arange(100)[:, None] < 50
    sure, wrong = 0.9 * truth + 0.05, 0.4 * (1 - truth) + 0.3
    encoder, grams = np.where(first_half, sure, wrong), np.where(first_half, wrong, sure)
    weight, figures = ngram.choose_weight(encoder, grams, labels)
    assert 0 < weight < 1
    assert figures["validation_accuracy"]["ensemble"] == 1.0
    assert figures["validation_accuracy"]["encoder"] == figures["validation_accuracy"]["ngram"] == 0.5


def test_multi_label_fits_one_classifier_per_label_through_a_sigmoid():
    texts = ["good music", "bad film", "good film", "music", "bad music", "film"] * 4
    true = np.array([[("good" in t), ("bad" in t), ("music" in t)] for t in texts], np.float32)
    fitted = ngram.fit(texts, true, 3)
    p = ngram.predict(fitted.model, ["good music", "bad film"])
    assert p.shape == (2, 3)
    assert not np.allclose(p.sum(1), 1.0)  # independent labels, not a softmax
    np.testing.assert_array_equal(p >= 0.5, [[True, False, True], [False, True, False]])
    # A label every text has, or none has, is a constant.
    constant = ngram.fit(texts, np.concatenate([true[:, :2], np.ones((len(texts), 1))], 1), 3)
    assert ngram.predict(constant.model, ["anything"])[0, 2] > 0.999
    weight, figures = ngram.choose_weight(np.full_like(true, 0.5), ngram.predict(fitted.model, texts), true)
    assert weight == 1.0 and figures["validation_loss"]["ensemble"] < figures["validation_loss"]["encoder"]


def test_log_linear_pooling_lets_an_uninformed_model_count_for_little_and_is_chosen_when_it_wins():
    """The n-grams know half the texts (sure and right there) and answer 0.5 on the rest, where
    the encoder is sure and right: an average caps the encoder there at (1 - w) + w / 2, pooling
    log-probabilities does not; cross-validation on validation sees that (here in the log loss: both
    rules decide every text right) and picks the pooling."""
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    sure = np.where(y == 1, 0.97, 0.03)
    encoder = np.stack([1 - sure, sure], 1)
    encoder[: n // 4] = encoder[: n // 4, ::-1]  # a quarter the encoder gets wrong, surely
    known = np.arange(n) < n // 2
    grams = np.where(known[:, None], np.stack([1 - sure, sure], 1), 0.5)
    rule, params, figures = ngram.choose_ensemble(encoder, grams, y, seed=0)
    assert rule == "log-linear" and params["ngram"] > params["encoder"] > 0
    pooled, averaged = figures["rules"]["log-linear"], figures["rules"]["average"]
    assert pooled["cross_validated_accuracy"] >= averaged["cross_validated_accuracy"]
    assert pooled["cross_validated_log_loss"] < averaged["cross_validated_log_loss"]
    combined = ngram.combine(rule, params, encoder, grams)
    assert np.mean(combined.argmax(1) == y) == 1.0  # the known half fixes the encoder's mistakes
    unknown = ~known
    assert combined[unknown].max(1).min() > 0.9  # and the encoder stays sure where the n-grams shrug
    average = ngram.combine("average", {"weight": 0.5}, encoder, grams)
    assert average[unknown].max(1).max() <= 0.75 + 1e-9  # the average's ceiling there
    np.testing.assert_allclose(combined.sum(1), 1.0, rtol=1e-9)
    with pytest.raises(ValueError, match="ensemble rule must be one of"):
        ngram.combine("median", params, encoder, grams)


def test_a_rule_more_accurate_beyond_noise_wins_and_otherwise_the_lower_log_loss():
    right = np.ones(100, bool)
    one_wrong, twenty_wrong = right.copy(), right.copy()
    one_wrong[0] = False
    twenty_wrong[:20] = False
    losses = {"average": 0.30, "log-linear": 0.20}
    # One text in a hundred: within one standard error (sqrt(1) / 100), so the log loss decides.
    assert ngram.choose_rule({"average": right, "log-linear": one_wrong}, losses) == "log-linear"
    # Twenty: far beyond sqrt(20) / 100, so the more accurate rule wins whatever its log loss.
    assert ngram.choose_rule({"average": right, "log-linear": twenty_wrong}, losses) == "average"
    # Alike in both: the first rule, the average.
    assert ngram.choose_rule({"average": right, "log-linear": right}, {"average": 0.2, "log-linear": 0.2}
                             ) == "average"


def test_a_text_the_ngrams_know_nothing_of_is_the_encoders_alone():
    """`known` says whether the model has any n-gram of a text; where it has none, every rule
    answers with the encoder's probabilities, and the rules are fitted on the known texts."""
    model = ngram.fit(TEXTS, np.array([1, 0, 1, 0]), 2).model
    known = ngram.known(model, ["good film", "zyzzyva quux", "", "Bad!"])
    assert known.tolist() == [True, False, False, True]
    encoder = np.array([[0.05, 0.95], [0.04, 0.96], [0.5, 0.5], [0.9, 0.1]])
    grams = np.array([[0.3, 0.7], [0.6, 0.4], [0.6, 0.4], [0.8, 0.2]])  # a prior where it knows nothing
    pooling = {"encoder": 0.4, "ngram": 1.3, "bias": [0.0, -0.2]}
    for rule, params in (("average", {"weight": 0.7}), ("log-linear", pooling)):
        combined = ngram.combine(rule, params, encoder, grams, known)
        np.testing.assert_allclose(combined[~known], encoder[~known])
        np.testing.assert_allclose(combined[known], ngram.combine(rule, params, encoder, grams)[known])
    # Without the mask the average caps the sure encoder at 0.3 x 0.96 + 0.7 x 0.4 on an unknown text.
    assert ngram.combine("average", {"weight": 0.7}, encoder, grams)[1, 1] < 0.6
    # The weight is chosen as the export will answer: the unknown texts count as the encoder's.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    sure = np.stack([1 - np.where(y == 1, 0.95, 0.05), np.where(y == 1, 0.95, 0.05)], 1)
    shrug = np.full_like(sure, 0.5)
    nothing = np.zeros(200, bool)
    weight, figures = ngram.choose_weight(sure, shrug, y, nothing)
    assert figures["validation_accuracy"]["ensemble"] == 1.0 and weight == 0.0
    rule, params, _ = ngram.choose_ensemble(sure, shrug, y, seed=0, known=nothing)
    np.testing.assert_allclose(ngram.combine(rule, params, sure, shrug, nothing), sure)
