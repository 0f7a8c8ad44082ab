"""app.serving.inference: finding and loading an export, and predicting in batches with CPU fusion where
it pays."""

from __future__ import annotations

import logging
import os
import shutil
import types

import numpy as np
import pytest
import tensorflow as tf

from app import runtime
from app.serving import inference


def test_load_gives_the_signature_class_names_and_config(exported):
    for given in (exported, exported.parent):  # a version folder, or the latest under the model
        loaded = inference.load(given)
        assert loaded.folder == exported and loaded.classes == ["neg", "pos"]
        assert loaded.config["settings"]["model_name"] == "tiny"
    probabilities, seconds = loaded.predict(["good great film", "bad awful plot", ""], batch_size=2)
    assert probabilities.shape == (3, 2) and seconds > 0
    assert probabilities[0, 1] > 0.5 > probabilities[1, 1]


def test_bad_model_folders(tmp_path, exported):
    with pytest.raises(ValueError, match="no such folder"):
        inference.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no exported versions"):
        inference.load(tmp_path / "empty")
    corrupt = tmp_path / "corrupt" / "1"
    shutil.copytree(exported, corrupt)
    (corrupt / "saved_model.pb").write_bytes(os.urandom(2048))
    with pytest.raises(ValueError, match="cannot load the SavedModel"):
        inference.load(tmp_path / "corrupt")
    other = tmp_path / "other" / "1"
    shutil.copytree(exported, other)
    (other / "assets" / "labels.txt").unlink()
    with pytest.raises(ValueError, match="not a bertclf export"):
        inference.load(other)


@pytest.mark.parametrize("flags, min_texts, expected", [
    ("default", 3, "autoclustering"),
    ("default", 4, ""),  # fewer texts than pay for compiling the fused clusters
    ("", 3, ""),
])
def test_predictions_run_with_cpu_fusion_where_the_flags_are_set_and_texts_are_many(
        flags, min_texts, expected, monkeypatch):
    """Inference runs fused when the flags are set and there are at least FUSION_MIN_TEXTS texts,
    and the setting is back to what it was afterwards. Every text is predicted once, in order."""
    monkeypatch.setattr(inference, "FUSION_MIN_TEXTS", min_texts)
    monkeypatch.setenv("TF_XLA_FLAGS", runtime.CPU_FUSION_FLAGS if flags == "default" else flags)
    seen, jit = [], []

    def serve(text):
        seen.extend(t.decode() for t in text.numpy())
        jit.append(tf.config.optimizer.get_jit())
        return {"probabilities": tf.fill([len(text), 2], 0.5)}

    before = tf.config.optimizer.get_jit()
    probabilities, _ = inference.predict_texts(serve, ["a", "b", "c"], batch_size=2)
    assert seen == ["a", "b", "c"] and probabilities.shape == (3, 2)
    assert jit == [expected, expected]
    assert tf.config.optimizer.get_jit() == before == ""


def test_long_predictions_say_how_far_they_got(monkeypatch, caplog):
    clock = iter(np.arange(0, 10, 0.1))  # a batch takes 0.1 s of this clock: a report after the third
    monkeypatch.setattr(inference, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    monkeypatch.setattr(inference, "PROGRESS_SECONDS", 0.25)

    def serve(text):
        return {"probabilities": tf.fill([len(text), 2], 0.5)}

    with caplog.at_level(logging.INFO, logger="app.serving.inference"):
        probabilities, _ = inference.predict_texts(serve, [str(i) for i in range(10)], batch_size=2)
    assert probabilities.shape == (10, 2)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0] for line in lines] == ["predicted 6 of 10 texts"]
    assert "(60 %," in lines[0]
    assert np.all(probabilities == 0.5)
