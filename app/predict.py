"""Classify texts with an exported model, locally or through TensorFlow Serving.

    python -m app.predict --model saved_models/bertclf "An unforgettable film." "Dull."
    python -m app.predict --model saved_models/bertclf --file reviews.txt --json
    echo "Great cast" | python -m app.predict --model saved_models/bertclf
    python -m app.predict --server http://localhost:8501 --model-name bertclf "Great cast"
    python -m app.predict --grpc localhost:8500 --model-name bertclf "Great cast"

The server clients use the `classify` signature, whose reply carries class names with their
scores. A server's reply is only ever parsed as data and printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence

logger = logging.getLogger(__name__)


class ServerError(ValueError):
    """TF Serving answered with an error, or not at all."""


def predict_local(model: str, texts: Sequence[str], batch_size: int = 64) -> list[dict]:
    """Run the export's `serving_default` signature; one dict per text."""
    from app.evaluate import predict_texts
    from app.export import load_exported

    loaded, _, classes = load_exported(model)
    probabilities, _ = predict_texts(loaded.signatures["serving_default"], texts, batch_size)
    return [_result(text, classes, p) for text, p in zip(texts, probabilities, strict=True)]


def _result(text: str, classes: Sequence[str], probabilities) -> dict:
    probs = {c: float(p) for c, p in zip(classes, probabilities, strict=True)}
    return {"text": text, "label": max(probs, key=probs.get), "probabilities": probs}


def _classify_results(text_batch: Sequence[str], results) -> list[dict]:
    """Validate TF Serving's classify reply: per text, a list of [class, score] pairs."""
    if not isinstance(results, list) or len(results) != len(text_batch):
        raise ServerError(f"server reply has {len(results) if isinstance(results, list) else 'no'} "
                          f"results for {len(text_batch)} texts")
    out = []
    for text, pairs in zip(text_batch, results, strict=True):
        try:
            classes = [str(c) for c, _ in pairs]
            scores = [float(s) for _, s in pairs]
        except (TypeError, ValueError) as e:
            raise ServerError(f"server reply is not a list of [class, score] pairs: {pairs!r:.200}") from e
        out.append(_result(text, classes, scores))
    return out


def predict_rest(server: str, model_name: str, texts: Sequence[str], batch_size: int = 64,
                 timeout: float = 30.0, version: int | None = None) -> list[dict]:
    """POST to TF Serving's REST `:classify` API (`/v1/models/NAME[/versions/N]:classify`)."""
    base = server.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"--server must be an http:// or https:// URL, got {server!r}")
    path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version else "") + ":classify"
    out = []
    for i in range(0, len(texts), batch_size):
        batch = list(texts[i:i + batch_size])
        body = json.dumps({"signature_name": "classify", "examples": [{"text": t} for t in batch]})
        request = urllib.request.Request(base + path, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                reply = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except (json.JSONDecodeError, AttributeError):
                pass
            raise ServerError(f"{base + path}: HTTP {e.code}: {str(detail)[:500]}") from e
        except urllib.error.URLError as e:
            raise ServerError(f"{base + path}: cannot connect ({e.reason})") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ServerError(f"{base + path}: reply is not JSON ({e})") from e
        except TimeoutError as e:
            raise ServerError(f"{base + path}: no reply within {timeout:g}s") from e
        if not isinstance(reply, dict) or "results" not in reply:
            raise ServerError(f"{base + path}: reply has no 'results': {str(reply)[:200]}")
        out.extend(_classify_results(batch, reply["results"]))
    return out


def predict_grpc(address: str, model_name: str, texts: Sequence[str], batch_size: int = 64,
                 timeout: float = 30.0) -> list[dict]:
    """TF Serving's gRPC PredictionService.Classify, through tensorflow-serving-api."""
    import grpc
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(address)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    out = []
    try:
        for i in range(0, len(texts), batch_size):
            batch = list(texts[i:i + batch_size])
            request = classification_pb2.ClassificationRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = "classify"
            for text in batch:
                example = request.input.example_list.examples.add()
                example.features.feature["text"].bytes_list.value.append(text.encode("utf-8"))
            try:
                reply = stub.Classify(request, timeout=timeout)
            except grpc.RpcError as e:
                raise ServerError(f"{address}: {e.code().name}: {e.details()}") from e
            results = [[[c.label, c.score] for c in r.classes] for r in reply.result.classifications]
            out.extend(_classify_results(batch, results))
    finally:
        channel.close()
    return out


def _read_texts(args) -> list[str]:
    if args.texts:
        return list(args.texts)
    if args.file:
        try:
            with open(args.file, encoding="utf-8", errors="replace") as f:
                return [line.rstrip("\n") for line in f if line.strip()]
        except OSError as e:
            raise ValueError(f"--file {args.file}: {e.strerror}") from e
    if sys.stdin.isatty():
        raise ValueError("no texts: give them as arguments, with --file, or on standard input")
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


def _print_table(results: Iterable[dict]) -> None:
    for r in results:
        probs = "  ".join(f"{c}={p:.3f}" for c, p in r["probabilities"].items())
        text = " ".join(r["text"].split())
        text = text if len(text) <= 60 else text[:59] + "…"
        print(f"{r['label']:<12} {probs}  {text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--model", help="saved_models/NAME (latest version) or saved_models/NAME/VERSION")
    parser.add_argument("--file", help="a file with one text per line")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--server", help="TF Serving REST address, e.g. http://localhost:8501")
    parser.add_argument("--grpc", help="TF Serving gRPC address, e.g. localhost:8500")
    parser.add_argument("--model-name", help="model name on the server")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a server")
    args = parser.parse_args(argv)
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
        remote = args.server or args.grpc
        if args.server and args.grpc:
            raise ValueError("give --server or --grpc, not both")
        if remote and not args.model_name:
            raise ValueError("--model-name is required with --server / --grpc")
        if not remote and not args.model:
            raise ValueError("--model is required (or --server/--grpc with --model-name)")
        texts = _read_texts(args)
        if args.server:
            results = predict_rest(args.server, args.model_name, texts, args.batch_size, args.timeout)
        elif args.grpc:
            results = predict_grpc(args.grpc, args.model_name, texts, args.batch_size, args.timeout)
        else:
            results = predict_local(args.model, texts, args.batch_size)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        for r in results:
            print(json.dumps(r, ensure_ascii=False))
    else:
        _print_table(results)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())

