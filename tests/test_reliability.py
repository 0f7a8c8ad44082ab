"""Reliability: every CLI refuses bad input clearly, training survives kills, serving survives load.

The slow part (ten random kill points) runs in `make test-slow`.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import bad_data_inputs, tiny_train_args
from tests.rest_server import FakeTFServing

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}


def run(module: str, *args, preexec=None, timeout: int = 600):
    return subprocess.run([sys.executable, "-m", f"app.{module}", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=ENV, timeout=timeout, preexec_fn=preexec)


def run_in_process(module: str, *args):
    """`python -m app.MODULE ARGS` as a call of its `main(argv)`: the same code path, without
    the ~4 s TensorFlow import of a new process. Each test keeps one real subprocess too."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = importlib.import_module(f"app.{module}").main([*map(str, args)])
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def assert_clear_failure(proc, message: str):
    """Non-zero exit, the message on stderr, and no Python traceback."""
    assert proc.returncode != 0, proc.stdout[-1000:]
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def no_export(base: Path) -> bool:
    return not base.exists() or not any(p.name.isdigit() for p in base.iterdir())


# ----------------------------------------------------------------------------- bad input


def test_data_cli_refuses_every_bad_input(tmp_path):
    for i, (path, message) in enumerate(bad_data_inputs(tmp_path).values()):
        cli = run if i == 0 else run_in_process
        assert_clear_failure(cli("data", "inspect", "--data", path, "--no-tokens"), message)


@pytest.fixture(scope="module")
def bad_train_cases(tiny_hub, tiny_reviews, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_train")
    cases = {
        "negative epochs": (["--epochs", "-2"], "--epochs must be at least 1, got -2"),
        "unknown encoder": (["--encoder", "bert_gigantic"], "neither a known encoder name"),
        "seq length above the encoder's limit": (["--max-seq-length", "512"], "above the encoder's limit"),
        "batch larger than the data": (["--batch-size", "4096"], "larger than the"),
        "bad config file": (["--config", str(tmp / "missing.yaml")], "no such file"),
        "unknown flag value": (["--truncation", "middle"], "--truncation must be one of"),
        "missing data": (["--data", str(tmp / "nope")], "no such file or directory"),
    }
    return tmp, cases


def test_train_cli_refuses_bad_flags_and_leaves_nothing(bad_train_cases, tiny_hub, tiny_reviews):
    tmp, cases = bad_train_cases
    for i, (name, (flags, message)) in enumerate(cases.items()):
        base = tiny_train_args(tiny_hub, tiny_reviews, tmp / str(i))
        proc = (run if i == 0 else run_in_process)("train", *base, *flags)
        assert_clear_failure(proc, message)
        assert no_export(tmp / str(i) / "models" / "tiny"), name


def test_unwritable_output_and_run_folders(tiny_hub, tiny_reviews, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = run("train", *tiny_train_args(tiny_hub, tiny_reviews, tmp_path, run_dir=blocker / "run"))
    assert_clear_failure(proc, "--run-dir")
    proc = run("train", *tiny_train_args(tiny_hub, tiny_reviews, tmp_path, output_dir=blocker / "models",
                                         epochs=1))
    assert_clear_failure(proc, "--output-dir")


def _small_file_limit():
    """In the child: files may not grow past 64 KiB, like a nearly full disk (EFBIG, not a kill)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_full_disk_during_export_fails_cleanly(trained_tiny, tmp_path):
    """A writer that fails part-way (the disk fills up) ends in one message and no half export."""
    result, cfg = trained_tiny
    script = f"""
import sys
from pathlib import Path
from app.data import Tokenizer
from app.export import export_model
from app.model import build_classifier
enc = Path({cfg.encoder!r})
model = build_classifier(str(enc / "encoder"), 2, seq_length=16)
try:
    tokenizer = Tokenizer(str(enc / "preprocess"), 16)
    export_model(model, tokenizer, ["neg", "pos"], "{{}}", {str(tmp_path)!r}, "m")
except ValueError as e:
    print(f"error: {{e}}", file=sys.stderr)
    sys.exit(2)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=ENV,
                          timeout=300, preexec_fn=_small_file_limit)
    assert_clear_failure(proc, "export to")
    assert no_export(tmp_path / "m")
    assert not list((tmp_path / "m").glob(".tmp-*"))  # the staging folder was removed


def test_evaluate_and_predict_refuse_broken_models(trained_tiny, tiny_reviews, tmp_path):
    result, _ = trained_tiny
    (tmp_path / "no_versions").mkdir()
    corrupt = tmp_path / "corrupt"
    shutil.copytree(result.export_dir, corrupt / "1")
    (corrupt / "1" / "saved_model.pb").write_bytes(os.urandom(2048))
    cases = [(tmp_path / "no_versions", "no exported versions"), (corrupt, "cannot load the SavedModel"),
             (tmp_path / "missing", "no such folder")]
    for model, message in cases:
        assert_clear_failure(run("evaluate", "--model", model, "--data", tiny_reviews,
                                 "--output", tmp_path / "r"), message)
        assert_clear_failure(run("predict", "--model", model, "some text"), message)


def test_convert_cli_refuses_bad_checkpoints(tmp_path):
    from tests.conftest import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 64)
    assert_clear_failure(run("convert", "--checkpoint", ckpt, "--output", tmp_path / "out"),
                         "cannot read safetensors")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- kills


def _kill_after(args: list[str], delay: float) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "app.train", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


def _survives_kills(tiny_hub, tiny_reviews, tmp: Path, delays: list[float]) -> dict:
    """Kill the same command at each delay, then run it to the end: it must finish and load."""
    args = tiny_train_args(tiny_hub, tiny_reviews, tmp, epochs=4)
    killed = 0
    for delay in delays:
        if _kill_after(args, delay) == -signal.SIGKILL:
            killed += 1
    final = subprocess.run([sys.executable, "-m", "app.train", *args], capture_output=True, text=True,
                           cwd=ROOT, env=ENV, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    base = tmp / "models" / "tiny"
    versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
    assert versions, "no export after the final run"
    assert not list(base.glob(".tmp-*")), "a killed export's staging folder was left behind"
    for v in versions:  # every version TF Serving could see loads and answers
        loaded = tf.saved_model.load(str(base / str(v)))
        out = loaded.signatures["serving_default"](text=tf.constant(["good great film"]))
        assert out["probabilities"].shape == (1, 2)
    return {"kills": killed, "versions": versions}


def test_training_survives_a_kill_at_a_random_point(tiny_hub, tiny_reviews, tmp_path):
    delay = random.Random(1).uniform(8, 25)
    outcome = _survives_kills(tiny_hub, tiny_reviews, tmp_path, [delay])
    assert outcome["kills"] == 1


@pytest.mark.slow
def test_training_survives_ten_kills(tiny_hub, tiny_reviews, tmp_path):
    rng = random.Random(7)
    delays = [rng.uniform(6, 30) for _ in range(10)]  # start-up, epochs, checkpoints and export
    outcome = _survives_kills(tiny_hub, tiny_reviews, tmp_path, delays)
    print(f"kill delays {[round(d, 1) for d in delays]}: {outcome}")
    assert outcome["kills"] >= 8


# ----------------------------------------------------------------------------- load


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["good", "great", "bad", "awful", "film", "plot", "the", "was", "very", "boring", "loved"]
    return [" ".join(rng.choice(words, size=rng.integers(1, 40))) for _ in range(n)]


def test_fifty_thousand_predictions_through_the_cli(trained_tiny, tmp_path):
    result, _ = trained_tiny
    texts = _texts(50_000)
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    start = time.perf_counter()
    proc = run("predict", "--model", result.export_dir.parent, "--file", tmp_path / "texts.txt", "--json",
               "--batch-size", "256", timeout=1200)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 50_000 and [r["text"] for r in rows] == texts
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"50,000 predictions in {seconds:.1f}s; child peak RSS {peak_mb:.0f} MB")
    # Batched results equal one-at-a-time results.
    loaded = tf.saved_model.load(str(result.export_dir))
    sig = loaded.signatures["serving_default"]
    for i in random.Random(0).sample(range(50_000), 100):
        single = sig(text=tf.constant([texts[i]]))["probabilities"].numpy()[0]
        np.testing.assert_allclose([rows[i]["probabilities"][c] for c in ("neg", "pos")], single, atol=1e-5)


def test_rest_server_under_eight_concurrent_clients(trained_tiny):
    from app import predict

    result, _ = trained_tiny
    texts = _texts(4_000, seed=1)
    expected = predict.predict_local(str(result.export_dir), texts, batch_size=256)
    errors, answers = [], {}
    with FakeTFServing(result.export_dir.parent, "tiny") as server:
        predict.predict_rest(server.url, "tiny", texts[:64])  # warm up
        rss = {"before": _rss_mb()}

        def client(k: int):
            try:
                chunk = list(range(k, len(texts), 8))
                got = predict.predict_rest(server.url, "tiny", [texts[i] for i in chunk], batch_size=25)
                answers.update(zip(chunk, got, strict=True))
            except Exception as e:  # noqa: BLE001  (collected and asserted below)
                errors.append(repr(e))

        for round_ in ("round1", "round2"):
            threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rss[round_] = _rss_mb()
    print(f"REST: 2 x {len(texts)} predictions by 8 clients, RSS MB {rss}")
    assert errors == []
    assert len(answers) == len(texts)
    for i, want in enumerate(expected):
        assert answers[i]["label"] == want["label"]
        assert answers[i]["probabilities"]["pos"] == pytest.approx(want["probabilities"]["pos"], abs=1e-5)
    assert rss["round2"] - rss["round1"] < 100, rss  # a second identical round does not keep growing


def test_untrusted_texts_are_all_answered(trained_tiny):
    result, _ = trained_tiny
    texts = [
        "".join(chr(c) for c in range(32)) + "control characters",
        "x" * 1_000_000,
        "zero\u200b\u200c\u200dwidth\ufeff joiners",
        "mixed: Привет, 世界, مرحبا, שלום, नमस्ते, 😀 " * 50,
        "\ud7ff\ue000\uffff" + "private use and noncharacters",
        "<script>alert(1)</script> '; DROP TABLE reviews; --",
        "",
    ]
    loaded = tf.saved_model.load(str(result.export_dir))
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
