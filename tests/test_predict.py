"""app.predict: local SavedModel, TF Serving's REST API (a stand-in server) and its errors."""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from app import predict
from tests.conftest import ENV, ROOT, assert_clear_failure, run_in_process, run_module
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


# ----------------------------------------------------------------------------- streamed files


def test_a_table_is_scored_row_by_row_with_its_own_columns(model_base, tmp_path):
    table = tmp_path / "reviews.csv"
    table.write_text('review,stars\n"good great film, loved it",5\nbad awful plot,1\n,3\n')
    out = tmp_path / "scored.csv"
    proc = cli("--model", model_base, "--file", table, "--output", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scored = pd.read_csv(out, keep_default_na=False)
    assert list(scored.columns) == ["review", "stars", "predicted_label", "probability_neg",
                                    "probability_pos"]
    assert scored["review"].tolist() == ["good great film, loved it", "bad awful plot", ""]  # no header row
    assert scored["stars"].tolist() == [5, 1, 3] and scored["predicted_label"].tolist()[:2] == ["pos", "neg"]
    direct = predict.predict_local(str(model_base), ["good great film, loved it", "bad awful plot", ""])
    np.testing.assert_allclose(scored["probability_pos"], [r["probabilities"]["pos"] for r in direct],
                               atol=1e-5)
    assert "1 row(s) have an empty text; they are scored as the empty string" in proc.stderr
    assert "scored 3 texts in" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv", "scored.csv"]  # no partial file


def test_tables_of_every_kind_stream_to_json_lines(model_base, tmp_path):
    rows = pd.DataFrame({"id": [7, 8], "body": ["good great film", "bad awful plot"]})
    rows.to_parquet(tmp_path / "t.parquet")
    rows.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    (tmp_path / "t.tsv").write_text('7\t"good great film\n8\tbad awful plot\n')  # no header, a quote mark
    for name, flags in [("t.parquet", []), ("t.jsonl", []), ("t.tsv", ["--header", "none"])]:
        column = "1" if name == "t.tsv" else "body"
        proc = cli("--model", model_base, "--file", tmp_path / name, "--text-column", column, "--output", "-",
                   *flags)
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        out = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [r["predicted_label"] for r in out] == ["pos", "neg"], name
        assert set(out[0]) == {"id" if name != "t.tsv" else "0", column, "predicted_label", "probabilities"}
    assert out[0]["1"] == '"good great film'


def test_standard_input_streams_to_standard_output(model_base):
    proc = cli("--model", model_base, "--output", "-", stdin="good great film\n\nbad awful plot\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["text"], r["predicted_label"]) for r in out] == [("good great film", "pos"),
                                                                 ("bad awful plot", "neg")]
    assert "scored 2 texts in" in proc.stderr


def test_streaming_refuses_what_it_cannot_read_and_writes_nothing(model_base, tmp_path):
    (tmp_path / "no_text.csv").write_text("a,b\nx,y\n")
    proc = cli("--model", model_base, "--file", tmp_path / "no_text.csv", "--output", tmp_path / "o.jsonl")
    assert_clear_failure(proc, "no text column found (looked for ['text', 'review'")
    assert "columns are ['a', 'b']" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_text.csv"]  # no output, no partial file
    assert_clear_failure(cli("--model", model_base, "--output", tmp_path / "o.xlsx", "t"),
                         "--output must end in .jsonl, .csv or .tsv")
    assert_clear_failure(cli("--model", model_base, "--file", tmp_path / "missing.csv", "--output", "-"),
                         "no such file")


@pytest.mark.slow
def test_two_hundred_thousand_lines_stream_in_flat_memory(model_base, tmp_path):
    texts = _texts(200_000, seed=1)
    (tmp_path / "big.txt").write_text("\n".join(texts) + "\n")
    out = tmp_path / "scored.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "app.predict", "--model", str(model_base), "--file",
                             str(tmp_path / "big.txt"), "--output", str(out), "--batch-size", "256"],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []  # (bytes written so far, resident MB)
    while proc.poll() is None:
        partial = list(tmp_path.glob(".scored.jsonl.partial-*"))
        status = Path(f"/proc/{proc.pid}/status")
        try:
            rss = next(int(line.split()[1]) / 1024 for line in status.read_text().splitlines()
                       if line.startswith("VmRSS:"))
            samples.append((partial[0].stat().st_size if partial else 0, rss))
        except (OSError, StopIteration, IndexError):
            pass
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    total = out.stat().st_size
    first = [rss for size, rss in samples if 0 < size <= 0.1 * total]
    last = [rss for size, rss in samples if size >= 0.9 * total]
    assert first and last, f"{len(samples)} samples"
    growth = float(np.median(last) - np.median(first))
    print(f"200,000 lines: resident {np.median(first):.0f} MB over the first 10 % of the output, "
          f"{np.median(last):.0f} MB over the last 10 % (growth {growth:+.0f} MB)")
    assert growth < 100
    with open(out) as f:
        assert sum(1 for _ in f) == 200_000
