"""Classify texts with an exported model, locally or through TensorFlow Serving.

    python -m app.predict --model saved_models/bertclf "An unforgettable film." "Dull."
    python -m app.predict --model saved_models/bertclf --file reviews.txt --json
    echo "Great cast" | python -m app.predict --model saved_models/bertclf
    python -m app.predict --server http://localhost:8501 --model-name bertclf "Great cast"
    python -m app.predict --grpc localhost:8500 --model-name bertclf "Great cast"
    python -m app.predict --model saved_models/pairs --pairs $'A man sings.\tSomeone is singing.'

With `--pairs`, a model of text pairs gets each line (or argument) as its two texts separated by
a tab. A multi-label model answers each text with its set of labels (`labels`, most probable
first; possibly empty) and every label's probability.

The server clients send the texts to `:predict` (REST row format, or gRPC Predict) and learn the
class names once from the `classify` signature. A server's reply is only parsed as data and printed.
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


def predict_local(model: str, texts: Sequence[str], batch_size: int = 64,
                  pairs: Sequence[str] | None = None) -> list[dict]:
    """Run the export's `serving_default` signature; one dict per text (or text pair)."""
    from app import inference

    loaded = inference.load(model)
    outputs, _ = loaded.predict_outputs(texts, batch_size, pairs)
    predicted = outputs.get("predicted")
    return [_result(text, loaded.classes, p, None if pairs is None else pairs[i],
                    None if predicted is None else predicted[i])
            for i, (text, p) in enumerate(zip(texts, outputs.get("probabilities", []), strict=True))]


def _result(text: str, classes: Sequence[str], probabilities, pair: str | None = None,
            predicted=None) -> dict:
    """One answer; `predicted` (a multi-label model's 0/1 decisions) makes it a label set."""
    probs = {c: float(p) for c, p in zip(classes, probabilities, strict=True)}
    out = {"text": text, **({"text_pair": pair} if pair is not None else {})}
    if predicted is None:
        return {**out, "label": max(probs, key=probs.get), "probabilities": probs}
    chosen = sorted((c for c, hit in zip(classes, predicted, strict=True) if int(hit)),
                    key=lambda c: -probs[c])
    return {**out, "labels": chosen, "probabilities": probs}


def _inputs(texts: Sequence[str], pairs: Sequence[str] | None, i: int) -> dict[str, str]:
    """One instance as the export's signatures name their inputs."""
    return {"text": texts[i], **({"text_pair": pairs[i]} if pairs is not None else {})}


def _check_predictions(text_batch: Sequence[str], rows, classes: Sequence[str],
                       pair_batch: Sequence[str] | None = None) -> list[dict]:
    """Validate TF Serving's predict reply (row format) and pair probabilities with class names."""
    if not isinstance(rows, list) or len(rows) != len(text_batch):
        raise ServerError(f"server reply has {len(rows) if isinstance(rows, list) else 'no'} "
                          f"predictions for {len(text_batch)} texts")
    out = []
    for i, (text, row) in enumerate(zip(text_batch, rows, strict=True)):
        try:
            probabilities = [float(p) for p in row["probabilities"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ServerError(f"server reply has no list of probabilities: {row!r:.200}") from e
        if len(probabilities) != len(classes):
            raise ServerError(f"server returned {len(probabilities)} probabilities "
                              f"for {len(classes)} classes")
        predicted = row.get("predicted")  # a multi-label model's decisions
        if predicted is not None and (not isinstance(predicted, list) or len(predicted) != len(classes)):
            raise ServerError(f"server reply's 'predicted' is not one 0/1 a class: {predicted!r:.200}")
        out.append(_result(text, classes, probabilities, None if pair_batch is None else pair_batch[i],
                           predicted))
    return out


def _class_names(pairs) -> list[str]:
    """Class names, in the model's order, from one classify result ([[name, score], ...])."""
    try:
        return [str(name) for name, _ in pairs]
    except (TypeError, ValueError) as e:
        raise ServerError(f"server reply is not a list of [class, score] pairs: {pairs!r:.200}") from e


def _post(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
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
        raise ServerError(f"{url}: HTTP {e.code}: {str(detail)[:500]}") from e
    except urllib.error.URLError as e:
        raise ServerError(f"{url}: cannot connect ({e.reason})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ServerError(f"{url}: reply is not JSON ({e})") from e
    except TimeoutError as e:
        raise ServerError(f"{url}: no reply within {timeout:g}s") from e
    if not isinstance(reply, dict):
        raise ServerError(f"{url}: reply is not a JSON object: {str(reply)[:200]}")
    return reply


def predict_rest(server: str, model_name: str, texts: Sequence[str], batch_size: int = 64,
                 timeout: float = 30.0, version: int | None = None,
                 pairs: Sequence[str] | None = None) -> list[dict]:
    """TF Serving's REST API: `:predict` in row format for the texts (with `pairs`, each
    instance has `text` and `text_pair`).

    The class names (the order of `probabilities`) come from one `:classify` call, whose reply
    names every class.
    """
    base = server.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"--server must be an http:// or https:// URL, got {server!r}")
    model = f"{base}/v1/models/{model_name}" + (f"/versions/{version}" if version else "")
    if not texts:
        return []
    reply = _post(model + ":classify", {"signature_name": "classify", "examples": [_inputs(texts, pairs, 0)]},
                  timeout)
    results = reply.get("results")
    if not isinstance(results, list) or not results:
        raise ServerError(f"{model}:classify: reply has no 'results': {str(reply)[:200]}")
    classes = _class_names(results[0])
    out = []
    for i in range(0, len(texts), batch_size):
        batch = list(texts[i:i + batch_size])
        pair_batch = None if pairs is None else list(pairs[i:i + batch_size])
        body = {"signature_name": "serving_default",
                "instances": [_inputs(texts, pairs, j) for j in range(i, i + len(batch))]}
        reply = _post(model + ":predict", body, timeout)
        if "predictions" not in reply:
            raise ServerError(f"{model}:predict: reply has no 'predictions': {str(reply)[:200]}")
        out.extend(_check_predictions(batch, reply["predictions"], classes, pair_batch))
    return out


def predict_grpc(address: str, model_name: str, texts: Sequence[str], batch_size: int = 64,
                 timeout: float = 30.0, pairs: Sequence[str] | None = None) -> list[dict]:
    """TF Serving's gRPC PredictionService (tensorflow-serving-api): Predict, names from Classify."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(address)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    out: list[dict] = []
    try:
        if not texts:
            return out
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = "classify"
        example = request.input.example_list.examples.add()
        for name, value in _inputs(texts, pairs, 0).items():
            example.features.feature[name].bytes_list.value.append(value.encode("utf-8"))
        try:
            reply = stub.Classify(request, timeout=timeout)
            classes = [c.label for c in reply.result.classifications[0].classes]
            for i in range(0, len(texts), batch_size):
                batch = list(texts[i:i + batch_size])
                pair_batch = None if pairs is None else list(pairs[i:i + batch_size])
                request = predict_pb2.PredictRequest()
                request.model_spec.name = model_name
                request.model_spec.signature_name = "serving_default"
                request.inputs["text"].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
                if pair_batch is not None:
                    request.inputs["text_pair"].CopyFrom(tf.make_tensor_proto(pair_batch, dtype=tf.string))
                reply = stub.Predict(request, timeout=timeout)
                probabilities = tf.make_ndarray(reply.outputs["probabilities"]).tolist()
                rows = [{"probabilities": p} for p in probabilities]
                if "predicted" in reply.outputs:  # a multi-label model
                    hots = tf.make_ndarray(reply.outputs["predicted"]).tolist()
                    for row, hot in zip(rows, hots, strict=True):
                        row["predicted"] = hot
                out.extend(_check_predictions(batch, rows, classes, pair_batch))
        except grpc.RpcError as e:
            raise ServerError(f"{address}: {e.code().name}: {e.details()}") from e
        except (KeyError, IndexError) as e:
            raise ServerError(f"{address}: unexpected reply ({e!r})") from e
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


def split_pairs(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    """(first texts, second texts) of `--pairs` lines, each two texts separated by a tab."""
    firsts, seconds = [], []
    for number, line in enumerate(lines, start=1):
        if "\t" not in line:
            raise ValueError(f"--pairs: text {number} has no tab between its two texts: {line[:80]!r}")
        first, second = line.split("\t", 1)
        firsts.append(first)
        seconds.append(second)
    return firsts, seconds


def _print_table(results: Iterable[dict]) -> None:
    for r in results:
        probs = "  ".join(f"{c}={p:.3f}" for c, p in r["probabilities"].items())
        text = " / ".join(" ".join(r[k].split()) for k in ("text", "text_pair") if k in r)
        text = text if len(text) <= 60 else text[:59] + "…"
        label = r["label"] if "label" in r else ",".join(r["labels"]) or "(none)"
        print(f"{label:<12} {probs}  {text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="texts to classify (default: --file, else stdin)")
    parser.add_argument("--model", help="saved_models/NAME (latest version) or saved_models/NAME/VERSION")
    parser.add_argument("--file", help="a file with one text per line")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--pairs", action="store_true",
                        help="each text is a text pair, its two texts separated by a tab")
    parser.add_argument("--server", help="TF Serving REST address, e.g. http://localhost:8501")
    parser.add_argument("--grpc", help="TF Serving gRPC address, e.g. localhost:8500")
    parser.add_argument("--model-name", help="model name on the server")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per call (default 64)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for a server (default 30)")
    parser.add_argument("--verbose", action="store_true", help="keep TensorFlow's own start-up lines")
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
        pairs = None
        if args.pairs:
            texts, pairs = split_pairs(texts)
        if not args.server:  # the REST client needs no TensorFlow
            from app import runtime

            runtime.setup(args.verbose, logging.WARNING)
        if args.server:
            results = predict_rest(args.server, args.model_name, texts, args.batch_size, args.timeout,
                                   pairs=pairs)
        elif args.grpc:
            results = predict_grpc(args.grpc, args.model_name, texts, args.batch_size, args.timeout, pairs)
        else:
            results = predict_local(args.model, texts, args.batch_size, pairs)
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
    sys.exit(main())

