"""app.predict: local SavedModel, TF Serving's REST API (a stand-in server) and its errors."""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from app import predict
from tests.conftest import assert_clear_failure, run_in_process, run_module
from tests.rest_server import FakeTFServing, FakeTFServingGrpc


@pytest.fixture(scope="module")
def model_base(exported) -> Path:
    return exported.parent


def cli(*args, stdin: str | None = None, timeout: int = 300):
    return run_module("predict", *args, stdin=stdin, timeout=timeout)


def test_one_text_prints_its_answer_and_nothing_from_tensorflow(model_base):
    proc = cli("--model", str(model_base), "good great film")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("pos ") and len(proc.stdout.splitlines()) == 1
    assert proc.stderr == ""
    proc = cli("--model", str(model_base), stdin="bad awful plot\n")  # texts on standard input
    assert proc.returncode == 0 and proc.stdout.startswith("neg") and proc.stderr == ""


def test_local_json_lines(model_base):
    proc = run_in_process("predict", "--model", model_base, "--json", "good great film", "bad awful plot")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [r["text"] for r in rows] == ["good great film", "bad awful plot"]
    assert [r["label"] for r in rows] == ["pos", "neg"]
    for r in rows:
        assert set(r["probabilities"]) == {"neg", "pos"}
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_local_table_from_file(model_base, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("good great film\n\nbad awful plot\n")
    proc = run_in_process("predict", "--model", str(model_base / "1"), "--file", str(texts))
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 2 and lines[0].startswith("pos")


def test_rest_client_against_tf_serving_contract(model_base):
    local = predict.predict_local(str(model_base), ["good great film", "bad awful plot", ""])
    with FakeTFServing(model_base, "tiny") as server:
        remote = predict.predict_rest(server.url, "tiny", ["good great film", "bad awful plot", ""],
                                      batch_size=2)
        assert server.requests == {"classify": 1, "predict": 2}  # names once, then batches
    for a, b in zip(local, remote, strict=True):
        assert a["label"] == b["label"]
        for c in a["probabilities"]:
            assert a["probabilities"][c] == pytest.approx(b["probabilities"][c], abs=1e-6)


def test_rest_cli_and_server_errors(model_base):
    with FakeTFServing(model_base, "tiny") as server:
        ok = cli("--server", server.url, "--model-name", "tiny", "--json", "good great film")
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert json.loads(ok.stdout)["label"] == "pos"
        wrong = cli("--server", server.url, "--model-name", "other", "good")
        assert wrong.returncode == 2
        assert "HTTP 404" in wrong.stderr and "Servable not found" in wrong.stderr
        assert "Traceback" not in wrong.stderr
    gone = cli("--server", server.url, "--model-name", "tiny", "good", "--timeout", "5")
    assert gone.returncode == 2 and "cannot connect" in gone.stderr


def test_grpc_client_against_prediction_service(model_base):
    local = predict.predict_local(str(model_base), ["good great film", "bad awful plot"])
    with FakeTFServingGrpc(model_base, "tiny") as server:
        remote = predict.predict_grpc(server.address, "tiny", ["good great film", "bad awful plot"])
        with pytest.raises(predict.ServerError, match="NOT_FOUND"):
            predict.predict_grpc(server.address, "other", ["good"])
    assert [r["label"] for r in remote] == [r["label"] for r in local]
    for a, b in zip(local, remote, strict=True):
        assert a["probabilities"]["pos"] == pytest.approx(b["probabilities"]["pos"], abs=1e-6)


class _Hostile(BaseHTTPRequestHandler):
    """A server whose replies are malformed or try to smuggle something in."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        if "garbage" in self.path:
            data = b"<html>not json</html>"
        elif self.path.endswith(":classify"):
            data = json.dumps({"results": [[["__import__('os').system('touch /tmp/pwned')", 1.0]]]}).encode()
        else:
            data = json.dumps({"predictions": [{"probabilities": "rm -rf /"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_malformed_server_replies_are_refused_not_executed(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(predict.ServerError, match="no list of probabilities"):
            predict.predict_rest(url, "m", ["text"])
        with pytest.raises(predict.ServerError, match="reply is not JSON"):
            predict.predict_rest(url, "garbage", ["text"])
    finally:
        server.shutdown()
    assert not Path("/tmp/pwned").exists()


def test_usage_errors(model_base, tmp_path):
    assert "--model is required" in cli("text").stderr
    assert "--model-name is required" in cli("--server", "http://127.0.0.1:1", "text").stderr
    assert "must be an http" in cli("--server", "ftp://x", "--model-name", "m", "t").stderr
    assert_clear_failure(run_in_process("predict", "--model", str(tmp_path), "text"), "no exported versions")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_base / "1", corrupt / "1")
    (corrupt / "1" / "saved_model.pb").write_bytes(os.urandom(2048))
    assert_clear_failure(run_in_process("predict", "--model", str(corrupt), "text"),
                         "cannot load the SavedModel")


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["good", "great", "bad", "awful", "film", "plot", "the", "was", "very", "boring", "loved"]
    return [" ".join(rng.choice(words, size=rng.integers(1, 40))) for _ in range(n)]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_fifty_thousand_predictions_through_the_cli(model_base, tmp_path):
    texts = _texts(50_000)
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    start = time.perf_counter()
    proc = cli("--model", model_base, "--file", tmp_path / "texts.txt", "--json", "--batch-size", "256",
               timeout=1200)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 50_000 and [r["text"] for r in rows] == texts
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"50,000 predictions in {seconds:.1f}s; child peak RSS {peak_mb:.0f} MB")
    # Batched results equal one-at-a-time results.
    sig = tf.saved_model.load(str(model_base / "1")).signatures["serving_default"]
    for i in random.Random(0).sample(range(50_000), 100):
        single = sig(text=tf.constant([texts[i]]))["probabilities"].numpy()[0]
        np.testing.assert_allclose([rows[i]["probabilities"][c] for c in ("neg", "pos")], single, atol=1e-5)


@pytest.mark.slow
def test_rest_server_under_eight_concurrent_clients(model_base):
    texts = _texts(4_000, seed=1)
    expected = predict.predict_local(str(model_base), texts, batch_size=256)
    errors, answers = [], {}
    with FakeTFServing(model_base, "tiny") as server:
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


def test_text_pairs_locally_and_through_rest_and_grpc(trained_pairs, tmp_path):
    base = trained_pairs[0].export_dir.parent
    lines = ["good great film\tthe best music", "bad plot\ta great story"]
    texts, pairs = predict.split_pairs(lines)
    local = predict.predict_local(str(base), texts, pairs=pairs)
    assert [r["text_pair"] for r in local] == ["the best music", "a great story"]
    with FakeTFServing(base, "pairs") as server:
        rest = predict.predict_rest(server.url, "pairs", texts, batch_size=1, pairs=pairs)
    with FakeTFServingGrpc(base, "pairs") as server:
        grpc = predict.predict_grpc(server.address, "pairs", texts, pairs=pairs)
    for remote in (rest, grpc):
        for a, b in zip(local, remote, strict=True):
            assert (a["text"], a["text_pair"], a["label"]) == (b["text"], b["text_pair"], b["label"])
            assert a["probabilities"]["same"] == pytest.approx(b["probabilities"]["same"], abs=1e-6)
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    proc = run_in_process("predict", "--model", base, "--pairs", "--file", tmp_path / "pairs.txt", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == [r["label"] for r in local]
    # A pair model needs pairs; a line without a tab is named.
    assert_clear_failure(run_in_process("predict", "--model", base, "good film"), "classifies text pairs")
    assert_clear_failure(run_in_process("predict", "--model", base, "--pairs", "no tab here"),
                         "--pairs: text 1 has no tab")


def test_label_sets_locally_and_through_rest_and_grpc(trained_tags, tmp_path):
    base = trained_tags[0].export_dir.parent
    texts = ["good great music", "bad dull film", "the plot"]
    local = predict.predict_local(str(base), texts)
    assert all("labels" in r and "label" not in r for r in local)
    assert "praise" in local[0]["labels"] and "complaint" in local[1]["labels"]
    with FakeTFServing(base, "tags") as server:
        rest = predict.predict_rest(server.url, "tags", texts, batch_size=2)
    with FakeTFServingGrpc(base, "tags") as server:
        grpc = predict.predict_grpc(server.address, "tags", texts)
    for remote in (rest, grpc):
        for a, b in zip(local, remote, strict=True):
            assert (a["text"], a["labels"]) == (b["text"], b["labels"])
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)
    proc = run_in_process("predict", "--model", base, *texts)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split()[0] == ",".join(local[0]["labels"])
    assert lines[2].split()[0] == (",".join(local[2]["labels"]) or "(none)")
    proc = run_in_process("predict", "--model", base, "--json", texts[0])
    assert json.loads(proc.stdout)["labels"] == local[0]["labels"]
