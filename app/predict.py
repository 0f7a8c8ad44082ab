"""Classify texts with an exported model, locally or through TensorFlow Serving.

    python -m app.predict --model saved_models/bertclf "An unforgettable film." "Dull."
    python -m app.predict --model saved_models/bertclf --file reviews.txt --json
    echo "Great cast" | python -m app.predict --model saved_models/bertclf
    python -m app.predict --server http://localhost:8501 --model-name bertclf "Great cast"
    python -m app.predict --grpc localhost:8500 --model-name bertclf "Great cast"
    python -m app.predict --model saved_models/pairs --pairs $'A man sings.\tSomeone is singing.'
    python -m app.predict --model saved_models/bertclf --file reviews.csv --output scored.csv
    cat big.txt | python -m app.predict --model saved_models/bertclf --output - > scored.jsonl

`--file` is a table (.csv, .tsv, .jsonl, .parquet; or `--format`) read as `app.train` reads one,
its texts from `--text-column` (found by name if not given), or else a file of one text a line;
`-` is standard input. With `--output` (.jsonl, .csv, .tsv, or `-` for JSON lines on standard
output) the input streams through in chunks, memory flat whatever its size, with progress on
standard error; each row is written back with its own columns plus `predicted_label` (a
multi-label model: `predicted_labels`) and each class's probability. The output file appears
only when complete.

With `--pairs`, a model of text pairs gets each line (or argument) as its two texts separated by
a tab. A multi-label model answers each text with its set of labels (`labels`, most probable
first; possibly empty) and every label's probability.

The server clients send the texts to `:predict` (REST row format, or gRPC Predict) and learn the
class names once from the `classify` signature. A server's reply is only parsed as data and printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from app.config import add_table_arguments
from app.options import INPUT_KINDS

logger = logging.getLogger(__name__)


class ServerError(ValueError):
    """TF Serving answered with an error, or not at all."""


def predict_local(model: str, texts: Sequence[str], batch_size: int = 64,
                  pairs: Sequence[str] | None = None) -> list[dict]:
    """Run the export's `serving_default` signature; one dict per text (or text pair)."""
    from app.serving import inference

    return _predict_loaded(inference.load(model), texts, batch_size, pairs)


def _predict_loaded(loaded, texts: Sequence[str], batch_size: int, pairs: Sequence[str] | None) -> list[dict]:
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


def _scorer(args) -> Callable[[list[str], list[str] | None], list[dict]]:
    """(texts, pairs) -> results, from the local export (loaded once) or the server."""
    if args.server:
        return lambda texts, pairs: predict_rest(args.server, args.model_name, texts, args.batch_size,
                                                 args.timeout, pairs=pairs)
    if args.grpc:
        return lambda texts, pairs: predict_grpc(args.grpc, args.model_name, texts, args.batch_size,
                                                 args.timeout, pairs)
    from app.serving import inference

    loaded = inference.load(args.model)
    return lambda texts, pairs: _predict_loaded(loaded, texts, args.batch_size, pairs)


def _chunks(args) -> Iterator:
    """The input as `data.Chunk`s: the arguments in one, else `--file` (or standard input) streamed."""
    from app import data

    if args.texts:
        texts = list(args.texts)
        yield data.Chunk(None, texts, None, None)
        return
    if not args.file and sys.stdin.isatty():
        raise ValueError("no texts: give them as arguments, with --file, or on standard input")
    table = data.TableFormat(text_column=args.text_column, header=args.header,
                             text_pair_column=args.text_pair_column)
    yield from data.stream_texts(args.file or "-", table, args.format, chunk_rows=max(args.batch_size, 1024))


class _Output:
    """Where the results go: the terminal (a table, or `--json` lines), or `--output` rows with
    their own columns (JSON lines, CSV or TSV), written to a temporary file renamed when done."""

    def __init__(self, output: str | None, json_lines: bool):
        self.output, self.json_lines = output, json_lines
        self.format = None
        if output is not None:
            suffix = Path(output).suffix.lower()
            self.format = "jsonl" if output == "-" or suffix in (".jsonl", ".json") else suffix[1:]
            if self.format not in ("jsonl", "csv", "tsv"):
                raise ValueError(f"--output must end in .jsonl, .csv or .tsv (or be - for JSON lines on "
                                 f"standard output), got {output!r}")
        self._file = None
        self._partial: Path | None = None
        self._first = True

    def __enter__(self):
        if self.output == "-":
            self._file = sys.stdout
        elif self.output is not None:
            target = Path(self.output)
            self._partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
            try:
                self._file = open(self._partial, "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as e:
                raise ValueError(f"--output {self.output}: cannot write ({e.strerror})") from e
        return self

    def __exit__(self, kind, error, trace):
        if self._partial is None:
            return
        self._file.close()
        if kind is None:
            os.replace(self._partial, self.output)
        else:
            self._partial.unlink(missing_ok=True)

    def write(self, chunk, results: list[dict]) -> None:
        if self.output is None:
            if self.json_lines:
                for r in results:
                    print(json.dumps(r, ensure_ascii=False))
            else:
                _print_table(results)
            return
        import pandas as pd

        rows = chunk.rows if chunk.rows is not None else pd.DataFrame({"text": chunk.texts})
        rows = rows.reset_index(drop=True)
        multi = bool(results) and "labels" in results[0]
        if self.format == "jsonl":
            records = json.loads(rows.to_json(orient="records", force_ascii=False))  # NaN as null
            for record, r in zip(records, results, strict=True):
                if multi:
                    record["predicted_labels"] = r["labels"]
                else:
                    record["predicted_label"] = r["label"]
                record["probabilities"] = r["probabilities"]
                self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            out = rows.copy()
            out["predicted_labels" if multi else "predicted_label"] = [
                ",".join(r["labels"]) if multi else r["label"] for r in results]
            for name in results[0]["probabilities"] if results else []:
                out[f"probability_{name}"] = [round(r["probabilities"][name], 6) for r in results]
            out.to_csv(self._file, sep="\t" if self.format == "tsv" else ",", index=False, header=self._first,
                       quoting=csv.QUOTE_NONE if self.format == "tsv" else csv.QUOTE_MINIMAL, escapechar="\\")
        self._first = False
        self._file.flush()


class _Progress:
    """Texts scored so far on standard error: a line rewritten in place on a terminal, else one
    every `every` seconds; then the total."""

    def __init__(self, enabled: bool, every: float = 10.0):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else every
        self.count = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int, read: float | None) -> None:
        self.count += n
        now = time.monotonic()
        if not self.enabled or now - self.last < self.every:
            return
        self.last = now
        share = f" ({read:.0%} of the input)" if read is not None else ""
        line = f"scored {self.count:,} texts{share}, {self.count / max(now - self.start, 1e-9):,.0f} a second"
        print("\r" + line if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            seconds = time.monotonic() - self.start
            print(f"{chr(13) * self.tty}scored {self.count:,} texts in {seconds:.0f} s "
                  f"({self.count / max(seconds, 1e-9):,.0f} a second)", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m app.predict` (docs/flags.md is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m app.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="texts to classify (default: --file, else stdin)")
    parser.add_argument("--model", help="saved_models/NAME (latest version) or saved_models/NAME/VERSION")
    parser.add_argument("--file", help="a table (.csv, .tsv, .jsonl, .parquet) or a file of one text a "
                        "line; - for standard input")
    parser.add_argument("--output", help="write each row with its predictions to OUT.jsonl, OUT.csv or "
                        "OUT.tsv (- : JSON lines on standard output), streaming")
    parser.add_argument("--format", choices=INPUT_KINDS, help="how to read --file or standard input "
                        "(default: a table by its suffix, else lines)")
    add_table_arguments(parser, ("text_column", "text_pair_column", "header"))
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
        if args.pairs and (args.text_pair_column or args.format not in (None, "lines")):
            raise ValueError("--pairs splits lines at a tab; a table names its second texts with "
                             "--text-pair-column")
        output = _Output(args.output, args.json)
        if not args.server:  # the REST client needs no TensorFlow
            from app import runtime

            runtime.setup(args.verbose, logging.WARNING)
        score = None
        progress = _Progress(args.output is not None and not args.texts)
        with output:
            for chunk in _chunks(args):
                texts, pairs = chunk.texts, chunk.pairs
                if args.pairs:
                    texts, pairs = split_pairs(texts)
                score = score or _scorer(args)
                output.write(chunk, score(texts, pairs))
                progress.update(len(texts), chunk.read)
        progress.done()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

