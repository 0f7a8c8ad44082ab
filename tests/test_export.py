"""app.export: the SavedModel TF Serving loads, its signatures, assets and atomic writing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from app import export

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def exported(trained_tiny):
    result, cfg = trained_tiny
    return result.export_dir


def test_serving_default_signature(exported):
    loaded = tf.saved_model.load(str(exported))
    sig = loaded.signatures["serving_default"]
    assert set(sig.structured_input_signature[1]) == {"text"}
    out = sig(text=tf.constant(["good great film", "bad awful plot"]))
    probs = out["probabilities"].numpy()
    assert probs.shape == (2, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert out["class_id"].dtype == tf.int64
    assert [x.decode() for x in out["label"].numpy()] == ["pos", "neg"]


def test_classify_signature_over_tf_examples(exported):
    loaded = tf.saved_model.load(str(exported))
    ex = tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"good great film"]))}))
    out = loaded.signatures["classify"](inputs=tf.constant([ex.SerializeToString()]))
    assert [c.decode() for c in out["classes"].numpy()[0]] == ["neg", "pos"]
    np.testing.assert_allclose(
        out["scores"].numpy(), loaded.signatures["serving_default"](
            text=tf.constant(["good great film"]))["probabilities"].numpy(), atol=1e-6)


def test_assets_and_warmup_requests(exported):
    assert (exported / "assets" / "labels.txt").read_text().splitlines() == ["neg", "pos"]
    config = json.loads((exported / "assets" / "config.json").read_text())
    assert config["model_name"] == "tiny"
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(exported / "assets.extra" / "tf_serving_warmup_requests")))
    assert len(records) == len(export.WARMUP_TEXTS)
    log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
    assert log.predict_log.request.model_spec.signature_name == "serving_default"
    assert "text" in log.predict_log.request.inputs


def test_saved_model_cli_lists_both_signatures(exported):
    cli = Path(sys.executable).parent / "saved_model_cli"
    proc = subprocess.run([str(cli), "show", "--dir", str(exported), "--all"], capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "signature_def['serving_default']" in proc.stdout
    assert "signature_def['classify']" in proc.stdout
    assert "Method name is: tensorflow/serving/classify" in proc.stdout
    assert "outputs['probabilities']" in proc.stdout and "outputs['label']" in proc.stdout


def test_fresh_process_with_only_tensorflow_matches_in_memory_model(exported, trained_tiny, tmp_path):
    texts = ["good great film", "", "bad awful plot " * 3000, "Ein wunderbarer Film, 素晴らしい映画!",
             "zero\u200bwidth \x00control"]
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        assert "app" not in sys.modules and "tf_keras" not in sys.modules
        assert "tensorflow_hub" not in sys.modules
        model = tf.saved_model.load(sys.argv[1])
        texts = json.loads(open(sys.argv[2]).read())
        out = model.signatures["serving_default"](text=tf.constant(texts))
        print(json.dumps(out["probabilities"].numpy().tolist()))
    """)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    env = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    proc = subprocess.run([sys.executable, "-c", script, str(exported), str(tmp_path / "texts.json")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert len(texts[2]) > 20_000
    # The in-memory classifier behind the export, fed by the same tokenizer.
    from app.data import Tokenizer
    from app.model import build_classifier

    result, cfg = trained_tiny
    spec_dir = Path(cfg.encoder)
    model = build_classifier(str(spec_dir / "encoder"), 2, seq_length=cfg.max_seq_length)
    model.load_weights(str(result.run_dir / "checkpoints" / "best"))
    tok = Tokenizer(str(spec_dir / "preprocess"), cfg.max_seq_length, cfg.truncation)
    in_memory = model(tok(tf.constant(texts)), training=False).numpy()
    np.testing.assert_allclose(fresh, in_memory, atol=1e-5)


def test_requests_are_padded_to_their_length_bucket_with_the_same_results(trained_tiny, tmp_path):
    from app.data import Tokenizer
    from app.model import build_classifier

    result, cfg = trained_tiny
    tok = Tokenizer(str(Path(cfg.encoder) / "preprocess"), 96)
    fixed = build_classifier(str(Path(cfg.encoder) / "encoder"), 2, seq_length=96)
    assert not export.ServingModel(fixed, tok, ["neg", "pos"], {})._buckets
    model = build_classifier(str(Path(cfg.encoder) / "encoder"), 2, seq_length=None)  # as app.train
    model.load_weights(str(result.run_dir / "checkpoints" / "best"))
    out = export.export_model(model, tok, ["neg", "pos"], "{}", tmp_path, "m")
    sig = tf.saved_model.load(str(out)).signatures["serving_default"]
    texts = ["good great film", "bad awful plot " * 40, ""]
    reference = model(tok(tf.constant(texts)), training=False).numpy()  # every row padded to 96
    assert reference[0, 1] > 0.5 > reference[1, 1]
    for batch in ([0], [2], [0, 2], [0, 1, 2]):  # padded to 32, 32, 32 and 96
        probs = sig(text=tf.constant([texts[i] for i in batch]))["probabilities"].numpy()
        np.testing.assert_allclose(probs, reference[batch], atol=1e-5)


def test_versions_are_never_overwritten(trained_tiny, tmp_path):
    from app.data import Tokenizer
    from app.model import build_classifier

    _, cfg = trained_tiny
    model = build_classifier(str(Path(cfg.encoder) / "encoder"), 2, seq_length=16)
    tok = Tokenizer(str(Path(cfg.encoder) / "preprocess"), 16)
    first = export.export_model(model, tok, ["neg", "pos"], "{}", tmp_path, "m")
    second = export.export_model(model, tok, ["neg", "pos"], "{}", tmp_path, "m")
    assert (first.name, second.name) == ("1", "2")
    with pytest.raises(ValueError, match="exists and is never overwritten"):
        export.export_model(model, tok, ["neg", "pos"], "{}", tmp_path, "m", version=1)
    assert export.versions(tmp_path / "m") == [1, 2]
    assert export.resolve_model_dir(tmp_path / "m") == tmp_path / "m" / "2"
    assert [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")] == []


def test_killed_export_leaves_nothing_tf_serving_would_load(trained_tiny, tmp_path):
    _, cfg = trained_tiny
    script = textwrap.dedent("""
        import os, signal, sys
        from pathlib import Path
        from app import export
        from app.data import Tokenizer
        from app.model import build_classifier

        enc = Path(sys.argv[1])
        def die(folder):  # SIGKILL once saved_model.pb is half-way to final: before the rename
            assert (folder / "saved_model.pb").exists()
            os.kill(os.getpid(), signal.SIGKILL)
        export._set_classify_method = die
        model = build_classifier(str(enc / "encoder"), 2, seq_length=16)
        export.export_model(model, Tokenizer(str(enc / "preprocess"), 16), ["neg", "pos"], "{}",
                            sys.argv[2], "m")
    """)
    proc = subprocess.run([sys.executable, "-c", script, cfg.encoder, str(tmp_path)], capture_output=True,
                          text=True, env=ENV, timeout=300, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    base = tmp_path / "m"
    leftovers = [p.name for p in base.iterdir()]
    assert leftovers and all(not name.isdigit() for name in leftovers)  # only a hidden staging folder
    assert export.versions(base) == []
    with pytest.raises(ValueError, match="no exported versions"):
        export.resolve_model_dir(base)
    # The next export cleans up what the killed one left and takes version 1.
    from app.data import Tokenizer
    from app.model import build_classifier

    enc = Path(cfg.encoder)
    model = build_classifier(str(enc / "encoder"), 2, seq_length=16)
    out = export.export_model(model, Tokenizer(str(enc / "preprocess"), 16), ["neg", "pos"], "{}",
                              tmp_path, "m")
    assert out.name == "1" and sorted(p.name for p in base.iterdir()) == ["1"]


def test_bad_model_folders(tmp_path, exported):
    with pytest.raises(ValueError, match="no such folder"):
        export.load_exported(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no exported versions"):
        export.load_exported(tmp_path / "empty")
    corrupt = tmp_path / "corrupt" / "1"
    shutil.copytree(exported, corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(ValueError, match="cannot load the SavedModel"):
        export.load_exported(tmp_path / "corrupt")


def test_unwritable_output_dir(trained_tiny, tmp_path):
    if os.geteuid() == 0:
        target = Path("/proc/bertclf-cannot-write-here")
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o500)
    _, cfg = trained_tiny
    from app.data import Tokenizer
    from app.model import build_classifier

    enc = Path(cfg.encoder)
    model = build_classifier(str(enc / "encoder"), 2, seq_length=16)
    with pytest.raises(ValueError, match="--output-dir"):
        export.export_model(model, Tokenizer(str(enc / "preprocess"), 16), ["neg", "pos"], "{}", target, "m")
