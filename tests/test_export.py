"""app.serving.export: the SavedModel TF Serving loads, its signatures, assets and atomic writing."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from app.model import ngram
from app.serving import export, inference
from app.training import fit
from app.training.calibration import apply_temperature
from tests.conftest import ENV, ROOT, assert_clear_failure, tiny_classifier


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
    assert config["settings"]["model_name"] == "tiny"  # the run's resolved config (test_train.py)
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(exported / "assets.extra" / "tf_serving_warmup_requests")))
    # The examples, then one request filling each length bucket (the tiny run: 32 word pieces,
    # buckets 32 wide), so that TF Serving has run every shape before the first user request.
    texts = inference.warmup_texts(32, length_buckets=True)
    assert len(records) == len(texts) == len(inference.WARMUP_TEXTS) + 1
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    assert all(log.predict_log.request.model_spec.signature_name == "serving_default" for log in logs)
    sent = [tf.make_ndarray(log.predict_log.request.inputs["text"])[0].decode() for log in logs]
    assert sent == texts and sent[-1] == " ".join(["a"] * 30)


def test_warmup_texts_fill_every_length_bucket():
    from app.model.preprocessing import bucket_width

    texts = inference.warmup_texts(256, length_buckets=True)
    width = bucket_width(256)
    lengths = [len(t.split()) + 2 for t in texts[len(inference.WARMUP_TEXTS):]]
    assert lengths == list(range(width, 257, width))
    assert inference.warmup_texts(128, length_buckets=False)[-1] == " ".join(["a"] * 126)
    assert inference.warmup_texts(None, length_buckets=True) == list(inference.WARMUP_TEXTS)


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
        ngram, known = None, None
        if hasattr(model, "ngram_probabilities"):
            ngram = model.ngram_probabilities(tf.constant(texts)).numpy().tolist()
            known = model.ngram_known(tf.constant(texts)).numpy().tolist()
        print(json.dumps({"served": out["probabilities"].numpy().tolist(), "ngram": ngram,
                          "known": known, "temperature": float(model.temperature.numpy())}))
    """)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    env = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    proc = subprocess.run([sys.executable, "-c", script, str(exported), str(tmp_path / "texts.json")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    fresh = np.array(answer["served"])
    assert len(texts[2]) > 20_000
    # The in-memory classifier behind the export, fed by the same tokenizer.
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    result, cfg = trained_tiny
    spec_dir = Path(cfg.encoder)
    model = build_classifier(str(spec_dir / "encoder"), 2, seq_length=cfg.max_seq_length,
                             pooling=result.config.settings.pooling)  # (the regime's: mean)
    model.load_weights(fit.best_checkpoint(result.run_dir))
    tok = Tokenizer(str(spec_dir / "preprocess"), cfg.max_seq_length, cfg.truncation)
    in_memory = model(tok(tf.constant(texts)), training=False).numpy()
    # The served probabilities combine the encoder's with the n-gram model's by the rule chosen
    # on validation (app.model.ngram): log-linear pooling, or the weighted average; a text the
    # n-grams know nothing of ("", the control characters) is the encoder's alone.
    record = result.record.ngram
    pooling, weight = record.get("pooling"), record.get("weight", 0.0)
    assert (answer["ngram"] is not None) == bool(pooling or weight > 0)
    if answer["ngram"] is not None:
        assert answer["known"][0] is True and answer["known"][1] is False
        rule, params = ("log-linear", pooling) if pooling else ("average", {"weight": weight})
        in_memory = ngram.combine(rule, params, in_memory, np.array(answer["ngram"]),
                                  np.array(answer["known"]))
    # ...and are calibrated by the temperature fitted on validation (app.training.calibration).
    temperature = result.record.calibration["temperature"]
    assert temperature > 0 and answer["temperature"] == pytest.approx(temperature)
    in_memory = apply_temperature(in_memory, temperature)
    np.testing.assert_allclose(fresh, in_memory, atol=1e-5)


def test_requests_are_padded_to_their_length_bucket_with_the_same_results(trained_tiny, tmp_path):
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    result, cfg = trained_tiny
    tok = Tokenizer(str(Path(cfg.encoder) / "preprocess"), 96)
    pooling = trained_tiny[0].config.settings.pooling
    fixed = build_classifier(str(Path(cfg.encoder) / "encoder"), 2, seq_length=96, pooling=pooling)
    assert not export.ServingModel(fixed, tok, ["neg", "pos"], {})._buckets
    model = build_classifier(str(Path(cfg.encoder) / "encoder"), 2, seq_length=None,  # as app.train
                             pooling=pooling)
    model.load_weights(fit.best_checkpoint(result.run_dir))
    out = export.export_model(model, tok, ["neg", "pos"], "{}", tmp_path, "m")
    sig = tf.saved_model.load(str(out)).signatures["serving_default"]
    texts = ["good great film", "bad awful plot " * 40, ""]
    reference = model(tok(tf.constant(texts)), training=False).numpy()  # every row padded to 96
    assert reference[0, 1] > 0.5 > reference[1, 1]
    for batch in ([0], [2], [0, 2], [0, 1, 2]):  # padded to 32, 32, 32 and 96
        probs = sig(text=tf.constant([texts[i] for i in batch]))["probabilities"].numpy()
        np.testing.assert_allclose(probs, reference[batch], atol=1e-5)


def test_versions_are_never_overwritten(exported, tmp_path):
    shutil.copytree(exported, tmp_path / "m" / "1")
    assert export.choose_version(tmp_path, "m") == 2
    (tmp_path / "m" / "2").mkdir()
    shutil.copy(exported / "saved_model.pb", tmp_path / "m" / "2")
    for check in (export.check_location, export.choose_version):  # before training; at export
        with pytest.raises(ValueError, match="exists and is never overwritten"):
            check(tmp_path, "m", version=1)
    assert inference.versions(tmp_path / "m") == [1, 2]
    assert inference.resolve_model_dir(tmp_path / "m") == tmp_path / "m" / "2"
    assert [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")] == []


def test_killed_export_leaves_nothing_tf_serving_would_load(tiny_hub, tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys
        from pathlib import Path
        from app.serving import export
        from tests.conftest import tiny_classifier

        def die(folder):  # SIGKILL once saved_model.pb is half-way to final: before the rename
            assert (folder / "saved_model.pb").exists()
            os.kill(os.getpid(), signal.SIGKILL)
        export._set_classify_method = die
        model, tok = tiny_classifier(Path(sys.argv[1]))
        export.export_model(model, tok, ["neg", "pos"], "{}", sys.argv[2], "m")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tiny_hub), str(tmp_path)], capture_output=True,
                          text=True, env=ENV, timeout=300, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    base = tmp_path / "m"
    leftovers = [p.name for p in base.iterdir()]
    assert leftovers and all(not name.isdigit() for name in leftovers)  # only a hidden staging folder
    assert inference.versions(base) == []
    with pytest.raises(ValueError, match="no exported versions"):
        inference.resolve_model_dir(base)
    # The next export cleans up what the killed one left (its process is gone) and takes version 1.
    assert export.choose_version(tmp_path, "m") == 1 and list(base.iterdir()) == []


def test_unwritable_output_dir(tiny_hub, tmp_path):
    if os.geteuid() == 0:
        target = Path("/proc/bertclf-cannot-write-here")
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o500)
    model, tok = tiny_classifier(tiny_hub)
    with pytest.raises(ValueError, match="--output-dir"):
        export.export_model(model, tok, ["neg", "pos"], "{}", target, "m")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="--output-dir .* is not a writable folder"):
        export.check_location(blocker / "models", "m")


def test_the_export_saves_the_weights_and_the_tokenizer_not_the_optimizer(trained_tiny, exported):
    """The Keras model (with its optimizer's slots) and the encoder's training variants stay out."""
    result, _ = trained_tiny
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((exported / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].object_graph_def
    variables = [n for n in graph.nodes if n.WhichOneof("kind") == "variable"]
    reader = tf.train.load_checkpoint(str(exported / "variables" / "variables"))
    names = " ".join(reader.get_variable_to_shape_map())
    assert "optimizer" not in names and "/m/" not in names and "/v/" not in names
    encoder_vars = len(tf.saved_model.load(str(Path(result.config.encoder.encoder))).variables)
    # The encoder, the head's kernel and bias, class names, the calibration's temperature, and the
    # n-gram model's idf, kernel and bias when it is combined (with the pooling's two weights and
    # bias when the pooling combines it).
    record = result.record.ngram
    ngram_vars = 5 if record.get("pooling") else 3 if record.get("weight", 0) > 0 else 0
    assert len(variables) == encoder_vars + 2 + 1 + 1 + ngram_vars
    signatures = set(proto.meta_graphs[0].signature_def) - {"__saved_model_init_op"}  # the vocabulary's
    assert signatures == {"serving_default", "classify"}


def test_full_disk_during_export_fails_cleanly(tiny_hub, tmp_path):
    """A writer that fails part-way (the disk fills up) ends in one message and no half export."""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from app.serving.export import export_model
        from tests.conftest import tiny_classifier
        model, tok = tiny_classifier(Path(sys.argv[1]))
        try:
            export_model(model, tok, ["neg", "pos"], "{}", sys.argv[2], "m")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tiny_hub), str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, env=ENV, timeout=300, preexec_fn=_small_file_limit)
    assert_clear_failure(proc, "export to")
    assert inference.versions(tmp_path / "m") == []
    assert not list((tmp_path / "m").glob(".tmp-*"))  # the staging folder was removed


def _small_file_limit():
    """In the child: files may not grow past 64 KiB, like a nearly full disk (EFBIG, not a kill)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_untrusted_texts_are_all_answered(exported):
    texts = [
        "".join(chr(c) for c in range(32)) + "control characters",
        "x" * 1_000_000,
        "zero\u200b\u200c\u200dwidth\ufeff joiners",
        "mixed: Привет, 世界, مرحبا, שלום, नमस्ते, 😀 " * 50,
        "\ud7ff\ue000\uffff" + "private use and noncharacters",
        "<script>alert(1)</script> '; DROP TABLE reviews; --",
        "",
    ]
    loaded = tf.saved_model.load(str(exported))
    out = loaded.signatures["serving_default"](text=tf.constant([t.encode("utf-8", "surrogatepass")
                                                                 for t in texts]))
    probs = out["probabilities"].numpy()
    assert probs.shape == (len(texts), 2)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # Bytes that are not valid UTF-8 at all are refused by TF Serving's JSON layer before the model;
    # given directly to the signature they are still answered.
    odd = loaded.signatures["serving_default"](text=tf.constant([b"\xff\xfe invalid \xc3"]))
    assert odd["probabilities"].shape == (1, 2)


def _compose(text: str, env: dict) -> str:
    """Docker Compose's ${VAR:-default} interpolation."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), text)


@pytest.mark.parametrize("env, model_dir", [
    ({}, "saved_models/bertclf"),  # make demo's export
    ({"MODEL_NAME": "imdb"}, "saved_models/imdb"),  # the README's --model-name imdb
    ({"MODEL_NAME": "notebook", "MODEL_BASE": "/abs/out/saved_models"}, "/abs/out/saved_models/notebook"),
])
def test_docker_compose_serves_the_folder_app_train_exports_to(env, model_dir):
    import yaml

    compose = ROOT / "serving" / "docker-compose.yml"
    service = yaml.safe_load(_compose(compose.read_text(), env))["services"]["tf-serving"]
    source, target = service["volumes"][0].split(":")[:2]
    assert (compose.parent / source).resolve() == (ROOT / model_dir).resolve()
    name = env.get("MODEL_NAME", "bertclf")
    assert f"--model_name={name}" in service["command"]
    assert f"--model_base_path={target}" in service["command"] and target == f"/models/{name}"


def test_the_ngram_model_is_served_only_with_a_weight_or_a_pooling(trained_tiny, tmp_path):
    """A weight of 0 (or --no-ngram-model) leaves the n-gram model out of the export; a weight
    averages it in, a pooling pools log-probabilities."""
    from app.model import ngram
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    _, cfg = trained_tiny
    tok = Tokenizer(str(Path(cfg.encoder) / "preprocess"), 32)
    classifier = build_classifier(str(Path(cfg.encoder) / "encoder"), 2, seq_length=None)
    grams = ngram.fit(["good film", "bad film", "good plot", "bad plot"], np.array([1, 0, 1, 0]), 2).model
    without = export.ServingModel(classifier, tok, ["neg", "pos"], {}, grams, ngram_weight=0.0)
    assert without.ngram is None and not hasattr(without, "ngram_probabilities")
    mixed = export.ServingModel(classifier, tok, ["neg", "pos"], {}, grams, ngram_weight=0.25)
    text = tf.constant(["good film", "bad plot"])
    expected = 0.75 * mixed.encoder_probabilities(text) + 0.25 * grams(text)
    np.testing.assert_allclose(mixed.serve(text)["probabilities"], expected, atol=1e-6)
    # Log-linear pooling (app.model.ngram.choose_ensemble's other rule), as app.model.ngram.log_linear
    # computes it.
    pooling = {"encoder": 0.4, "ngram": 1.3, "bias": [0.0, -0.2]}
    pooled = export.ServingModel(classifier, tok, ["neg", "pos"], {}, grams, pooling=pooling)
    expected = ngram.log_linear(pooled.encoder_probabilities(text).numpy(), grams(text).numpy(), 0.4, 1.3,
                                [0.0, -0.2])
    np.testing.assert_allclose(pooled.serve(text)["probabilities"], expected, atol=1e-5)
    assert pooled.pooling.numpy().tolist() == pytest.approx([0.4, 1.3])  # inspectable in the export
    folder = export.export_model(classifier, tok, ["neg", "pos"], "{}", tmp_path, "pooled", ngram=grams,
                                 pooling=pooling)
    reloaded = tf.saved_model.load(str(folder))
    np.testing.assert_allclose(reloaded.signatures["serving_default"](text=text)["probabilities"], expected,
                               atol=1e-5)
    assert reloaded.pooling_bias.numpy().tolist() == pytest.approx([0.0, -0.2])
    # A text of words the n-grams never saw is the encoder's alone, under either rule, as
    # app.model.ngram.combine computes it; the parts are saved for inspection.
    unseen = tf.constant(["zyzzyva quux", "good film"])
    for model in (mixed, pooled):
        served = model.serve(unseen)["probabilities"].numpy()
        np.testing.assert_allclose(served[0], model.encoder_probabilities(unseen)[0], atol=1e-6)
    assert reloaded.ngram_known(unseen).numpy().tolist() == [False, True]
    np.testing.assert_allclose(reloaded.signatures["serving_default"](text=unseen)["probabilities"][0],
                               reloaded.encoder_part(unseen)[0], atol=1e-6)


def test_a_model_of_text_pairs_serves_both_texts_in_a_bare_tensorflow_process(trained_pairs, tmp_path):
    """Both signatures take the pair (`text`, `text_pair`; `classify` reads both features), and
    a process importing only TensorFlow and TF Text answers as the in-memory (mean-pooled) model
    does."""
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    result, cfg = trained_pairs
    texts, pairs = ["good great film", "bad plot", ""], ["the best music", "a great story", "dull"]
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        assert "app" not in sys.modules and "tf_keras" not in sys.modules
        model = tf.saved_model.load(sys.argv[1])
        texts, pairs = json.loads(open(sys.argv[2]).read())
        sig = model.signatures["serving_default"]
        served = sig(text=tf.constant(texts), text_pair=tf.constant(pairs))["probabilities"].numpy()
        examples = [tf.train.Example(features=tf.train.Features(feature={
            k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
            for k, v in (("text", t), ("text_pair", p))})).SerializeToString() for t, p in zip(texts, pairs)]
        scores = model.signatures["classify"](inputs=tf.constant(examples))["scores"].numpy()
        print(json.dumps({"served": served.tolist(), "classify": scores.tolist(),
                          "inputs": sorted(sig.structured_input_signature[1])}))
    """)
    (tmp_path / "pairs.json").write_text(json.dumps([texts, pairs]))
    env = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    argv = [sys.executable, "-c", script, str(result.export_dir), str(tmp_path / "pairs.json")]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["inputs"] == ["text", "text_pair"]
    model = build_classifier(str(Path(cfg.encoder) / "encoder"), 2, seq_length=None, pooling="mean")
    model.load_weights(fit.best_checkpoint(result.run_dir))
    tok = Tokenizer(str(Path(cfg.encoder) / "preprocess"), cfg.max_seq_length, cfg.truncation)
    in_memory = model(tok(tf.constant(texts), tf.constant(pairs)), training=False).numpy()
    in_memory = apply_temperature(in_memory, result.record.calibration["temperature"])
    np.testing.assert_allclose(answer["served"], in_memory, atol=1e-5)
    np.testing.assert_allclose(answer["classify"], in_memory, atol=1e-5)
    assert not hasattr(tf.saved_model.load(str(result.export_dir)), "ngram_probabilities")  # none for pairs


def test_a_multi_label_export_serves_label_sets_in_a_bare_tensorflow_process(trained_tags, tmp_path):
    """`serving_default` returns per-label probabilities, the 0/1 decisions at the recorded
    thresholds and the predicted names (most probable first, padded with ""); `classify` the
    same scores; a process importing only TensorFlow and TF Text gets what app.serving.inference gets."""
    result, _ = trained_tags
    texts = ["good great music", "bad dull film", "the plot", ""]
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        assert "app" not in sys.modules and "tf_keras" not in sys.modules
        model = tf.saved_model.load(sys.argv[1])
        texts = json.loads(sys.argv[2])
        out = model.signatures["serving_default"](text=tf.constant(texts))
        examples = [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in texts]
        scores = model.signatures["classify"](inputs=tf.constant(examples))["scores"].numpy()
        print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                          "predicted": out["predicted"].numpy().tolist(),
                          "labels": [[v.decode() for v in row] for row in out["labels"].numpy()],
                          "classify": scores.tolist(), "outputs": sorted(out)}))
    """)
    env = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    proc = subprocess.run([sys.executable, "-c", script, str(result.export_dir), json.dumps(texts)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["outputs"] == ["labels", "predicted", "probabilities"]
    classes = result.config.classes
    thresholds = np.array([result.record.thresholds[c] for c in classes], np.float32)
    probabilities = np.array(answer["probabilities"], np.float32)
    np.testing.assert_array_equal(answer["predicted"], (probabilities >= thresholds).astype(int))
    for row, hot, p in zip(answer["labels"], answer["predicted"], probabilities, strict=True):
        chosen = sorted((c for c, h in zip(classes, hot, strict=True) if h),
                        key=lambda c, p=p: -p[classes.index(c)])
        assert row == chosen + [""] * (len(classes) - len(chosen))
    np.testing.assert_allclose(answer["classify"], probabilities, atol=1e-6)
    local, _ = inference.load(result.export_dir).predict_outputs(texts)
    np.testing.assert_allclose(local["probabilities"], probabilities, atol=1e-6)
    assert answer["predicted"][0][0] == 1 and answer["predicted"][1][1] == 1  # praise; complaint


def test_a_decision_threshold_decides_class_id_and_label_but_leaves_the_probabilities(trained_tiny):
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    _, cfg = trained_tiny
    tok = Tokenizer(str(Path(cfg.encoder) / "preprocess"), 32)
    classifier = build_classifier(str(Path(cfg.encoder) / "encoder"), 2, seq_length=None)
    texts = tf.constant(["good film", "bad plot", "the story"])
    plain = export.ServingModel(classifier, tok, ["neg", "pos"], {}).serve(texts)
    p = plain["probabilities"].numpy()[:, 1]
    threshold = float(np.sort(p)[1])  # between: the two highest reach it
    strict = export.ServingModel(classifier, tok, ["neg", "pos"], {}, decision_threshold=threshold)
    strict = strict.serve(texts)
    np.testing.assert_allclose(strict["probabilities"], plain["probabilities"])
    np.testing.assert_array_equal(strict["class_id"].numpy(), (p >= threshold).astype(int))
    assert [v.decode() for v in strict["label"].numpy()] == ["pos" if v >= threshold else "neg" for v in p]


def test_a_trained_runs_export_leaves_texts_its_ngrams_never_saw_to_the_encoder(trained_tiny):
    """On a trained run (here pooled, the n-grams weighing 7 times the encoder's log-probabilities):
    texts whose every word the n-gram model never saw ("greatest" is not "great") are answered by
    the calibrated encoder alone, so no confident encoder is dragged towards the n-grams' prior."""
    from app.training.calibration import apply_temperature

    result, _ = trained_tiny
    loaded = tf.saved_model.load(str(result.export_dir))
    texts = tf.constant(["greatest wonderfulness", "terribleness awfulness", "zyzzyva", "great film"])
    known = loaded.ngram_known(texts).numpy()
    assert known.tolist() == [False, False, False, True]
    served = loaded.signatures["serving_default"](text=texts)["probabilities"].numpy()
    temperature = result.record.calibration.get("temperature", 1.0)
    alone = apply_temperature(loaded.encoder_part(texts).numpy(), temperature)
    np.testing.assert_allclose(served[~known], alone[~known], atol=1e-5)
    assert not np.allclose(served[known], alone[known], atol=1e-2)  # where it knows, the n-grams count
