"""app.predict: local SavedModel, TF Serving's REST API (a stand-in server) and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app import predict
from tests.rest_server import FakeTFServing, FakeTFServingGrpc

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_base(trained_tiny) -> Path:
    return trained_tiny[0].export_dir.parent


def cli(*args, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "app.predict", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, input=stdin)


def test_local_json_lines(model_base):
    proc = cli("--model", str(model_base), "--json", "good great film", "bad awful plot")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [r["text"] for r in rows] == ["good great film", "bad awful plot"]
    assert [r["label"] for r in rows] == ["pos", "neg"]
    for r in rows:
        assert set(r["probabilities"]) == {"neg", "pos"}
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_local_table_from_file_and_stdin(model_base, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("good great film\n\nbad awful plot\n")
    proc = cli("--model", str(model_base / "1"), "--file", str(texts))
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 2 and lines[0].startswith("pos")
    proc = cli("--model", str(model_base), stdin="bad awful plot\n")
    assert proc.returncode == 0 and proc.stdout.startswith("neg")


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
    proc = cli("--model", str(tmp_path), "text")
    assert proc.returncode == 2 and "no exported versions" in proc.stderr
