"""A stand-in for TensorFlow Serving's REST API, for tests only.

The TF Serving binary cannot be installed on our machines, so the client is tested against
this small server. It answers the documented contract (model status, `:predict` in row and
columnar form, `:classify`, and `{"error": ...}` bodies with HTTP error codes) by running the
exported SavedModel, as TF Serving would. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401

_ROUTE = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(?::(predict|classify))?$")


def load_latest(base_dir: Path):
    """(version, loaded SavedModel) of the highest numbered version, as TF Serving picks it."""
    version = max(int(p.name) for p in Path(base_dir).iterdir() if p.name.isdigit())
    return version, tf.saved_model.load(str(Path(base_dir) / str(version)))


class FakeTFServing:
    def __init__(self, base_dir: Path, model_name: str):
        self.model_name = model_name
        self.version, self.model = load_latest(base_dir)
        self.requests = {"predict": 0, "classify": 0}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _predict(self, body: dict) -> dict:
        """Row format: each instance maps the signature's input names to values (a bare value for
        a one-input signature); columnar: `inputs` maps each name to its list."""
        sig = self.model.signatures[body.get("signature_name", "serving_default")]
        names = list(sig.structured_input_signature[1])
        if "instances" in body:
            rows = body["instances"]
            columns = {n: [r[n] if isinstance(r, dict) else r for r in rows] for n in names}
            out = {k: v.numpy() for k, v in sig(**{n: tf.constant(c) for n, c in columns.items()}).items()}
            return {"predictions": [{k: _json(v[i]) for k, v in out.items()} for i in range(len(rows))]}
        inputs = body["inputs"] if isinstance(body["inputs"], dict) else {names[0]: body["inputs"]}
        out = sig(**{n: tf.constant(inputs[n]) for n in names})
        return {"outputs": {k: _json(v.numpy()) for k, v in out.items()}}

    def _classify(self, body: dict) -> dict:
        examples = []
        for ex in body["examples"]:
            features = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
                        for k, v in ex.items()}
            examples.append(tf.train.Example(features=tf.train.Features(feature=features))
                            .SerializeToString())
        out = self.model.signatures[body.get("signature_name", "classify")](inputs=tf.constant(examples))
        classes, scores = out["classes"].numpy(), out["scores"].numpy()
        return {"results": [[[c.decode(), float(s)] for c, s in zip(cs, ss, strict=True)]
                            for cs, ss in zip(classes, scores, strict=True)]}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self):
                m = _ROUTE.match(self.path)
                if not m or m.group(1) != server.model_name:
                    name = m.group(1) if m else self.path
                    self._send(404, {"error": f"Servable not found for request: Latest({name})"})
                    return None
                if m.group(2) and int(m.group(2)) != server.version:
                    self._send(404, {"error": f"Servable not found for request: "
                                              f"Specific({server.model_name}, {m.group(2)})"})
                    return None
                return m.group(3)

            def do_GET(self):
                if self._route() is None and not self.path.endswith(server.model_name):
                    return
                self._send(200, {"model_version_status": [
                    {"version": str(server.version), "state": "AVAILABLE",
                     "status": {"error_code": "OK", "error_message": ""}}]})

            def do_POST(self):
                verb = self._route()
                if verb is None:
                    return
                server.requests[verb] += 1
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    payload = server._predict(body) if verb == "predict" else server._classify(body)
                except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
                    self._send(400, {"error": f"JSON Parse error: {e}"})
                    return
                self._send(200, payload)

        return Handler


def _json(value):
    if isinstance(value, np.ndarray):
        return [_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class FakeTFServingGrpc:
    """The same stand-in for TF Serving's gRPC PredictionService (Predict and Classify)."""

    def __init__(self, base_dir: Path, model_name: str):
        from concurrent import futures

        import grpc
        from tensorflow_serving.apis import (
            classification_pb2,
            predict_pb2,
            prediction_service_pb2_grpc,
        )

        _, self.model = load_latest(base_dir)
        self.model_name = model_name
        outer = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def _check(self, request, context):
                if request.model_spec.name != outer.model_name:
                    context.abort(grpc.StatusCode.NOT_FOUND,
                                  f"Servable not found for request: Latest({request.model_spec.name})")

            def Predict(self, request, context):
                self._check(request, context)
                inputs = {name: tf.constant(tf.make_ndarray(t)) for name, t in request.inputs.items()}
                out = outer.model.signatures["serving_default"](**inputs)
                reply = predict_pb2.PredictResponse()
                for key, value in out.items():
                    reply.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
                return reply

            def Classify(self, request, context):
                self._check(request, context)
                examples = [e.SerializeToString() for e in request.input.example_list.examples]
                out = outer.model.signatures["classify"](inputs=tf.constant(examples))
                reply = classification_pb2.ClassificationResponse()
                for names, scores in zip(out["classes"].numpy(), out["scores"].numpy(), strict=True):
                    result = reply.result.classifications.add()
                    for name, score in zip(names, scores, strict=True):
                        result.classes.add(label=name.decode(), score=float(score))
                return reply

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self):
        self._server.start()
        return self

    def __exit__(self, *exc):
        self._server.stop(grace=None)
