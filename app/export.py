"""Export a trained classifier as a SavedModel that TensorFlow Serving loads as is.

Layout: `OUTPUT_DIR/MODEL_NAME/VERSION/` with an integer version. The model is written to a
hidden staging folder beside it and renamed into place when complete: TF Serving watches the
base folder and only loads integer-named versions, so it never sees half a model.

Signatures:
* `serving_default`: `text` (string `[None]`) -> `probabilities` (float32 `[None, classes]`),
  `class_id` (int64 `[None]`), `label` (string `[None]`). The tokenizer is inside.
* `classify`: serialized `tf.Example`s with a `text` feature -> `classes`, `scores`
  (a Classification signature, so TF Serving's `:classify` API works).

Assets: `labels.txt` (class names in order), `config.json` (the training config), and
`assets.extra/tf_serving_warmup_requests` (PredictRequests TF Serving replays on load).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from app.data import Tokenizer

logger = logging.getLogger(__name__)

WARMUP_TEXTS = ("An unforgettable film.", "", "Dull, slow and far too long.")
_STAGING = re.compile(r"^\.tmp-v(\d+)-pid(\d+)-")


class ServingModel(tf.Module):
    """Raw text in, class probabilities and labels out: what TF Serving runs."""

    def __init__(self, classifier: tf.keras.Model, tokenizer: Tokenizer, classes: Sequence[str],
                 assets: dict[str, str]):
        super().__init__(name="serving_model")
        self.classifier = classifier
        self.tokenizer = tokenizer
        self.class_names = tf.Variable(list(classes), trainable=False, name="class_names")
        self.assets = {name: tf.saved_model.Asset(path) for name, path in assets.items()}
        # A classifier built for any length (trained with length buckets) gets each request
        # padded to its bucket only: short texts don't pay for max_seq_length positions.
        self._buckets = classifier.inputs[0].shape[-1] is None

    def _probabilities(self, text: tf.Tensor) -> tf.Tensor:
        inputs = self.tokenizer(text, bucket=self._buckets)
        return tf.cast(self.classifier(inputs, training=False), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        probabilities = self._probabilities(text)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"probabilities": probabilities, "class_id": class_id,
                "label": tf.gather(self.class_names, class_id)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        features = tf.io.parse_example(inputs, {"text": tf.io.FixedLenFeature([], tf.string)})
        scores = self._probabilities(features["text"])
        classes = tf.tile(self.class_names[tf.newaxis], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}


def versions(base: Path) -> list[int]:
    """Integer-named sub-folders: the versions TF Serving would load."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def _remove_stale_staging(base: Path) -> None:
    """Staging folders left by a killed export (their process is gone) are removed."""
    for p in base.glob(".tmp-v*"):
        m = _STAGING.match(p.name)
        if not m:
            continue
        try:
            os.kill(int(m.group(2)), 0)
        except ProcessLookupError:
            logger.info("removing %s, left by an interrupted export", p)
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def _set_classify_method(export_dir: Path) -> None:
    """TF2 saves every signature as Predict; TF Serving's :classify needs the Classify method."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = export_dir / "saved_model.pb"
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(path.read_bytes())
    for meta_graph in proto.meta_graphs:
        # TF Serving finds the serialized examples under the standard key "inputs".
        meta_graph.signature_def["classify"].method_name = "tensorflow/serving/classify"
    path.write_bytes(proto.SerializeToString())


def _write_warmup(export_dir: Path, texts: Sequence[str]) -> None:
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    extra = export_dir / "assets.extra"
    extra.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as writer:
        for text in texts:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = "serving_default"
            request.inputs["text"].CopyFrom(tf.make_tensor_proto([text], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def export_model(
    classifier: tf.keras.Model,
    tokenizer: Tokenizer,
    classes: Sequence[str],
    config_json: str,
    output_dir: str | os.PathLike,
    model_name: str,
    version: int | None = None,
) -> Path:
    """Write `output_dir/model_name/VERSION` atomically and return it.

    An existing version is never overwritten; without `version`, the next free number is used.
    """
    base = Path(output_dir) / model_name
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--output-dir {output_dir}: cannot create {base} ({e.strerror})") from e
    if not os.access(base, os.W_OK):
        raise ValueError(f"--output-dir {output_dir}: {base} is not writable")
    _remove_stale_staging(base)
    existing = versions(base)
    if version is None:
        version = (existing[-1] + 1) if existing else 1
    elif version in existing:
        raise ValueError(f"--version {version}: {base / str(version)} exists and is never overwritten")
    final = base / str(version)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-v{version}-pid{os.getpid()}-", dir=base))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            labels_path = Path(scratch) / "labels.txt"
            labels_path.write_text("\n".join(classes) + "\n", encoding="utf-8")
            config_path = Path(scratch) / "config.json"
            config_path.write_text(config_json, encoding="utf-8")
            module = ServingModel(classifier, tokenizer, classes,
                                  {"labels": str(labels_path), "config": str(config_path)})
            tf.saved_model.save(module, str(staging),
                                signatures={"serving_default": module.serve, "classify": module.classify})
        _set_classify_method(staging)
        _write_warmup(staging, WARMUP_TEXTS)
        staging.chmod(0o755)
        if final.exists():  # another export took this number meanwhile
            raise ValueError(f"{final} appeared during export; not overwriting it")
        staging.rename(final)
    except (OSError, tf.errors.OpError) as e:
        # A full disk or an unwritable folder surfaces here, from Python or from TensorFlow's writers.
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[0]
        raise ValueError(f"export to {base} failed: {reason}") from e
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s", final)
    return final


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """`saved_models/NAME` (latest version) or `saved_models/NAME/VERSION` to a version folder."""
    path = Path(model)
    if (path / "saved_model.pb").is_file():
        return path
    if not path.is_dir():
        raise ValueError(f"--model {model}: no such folder")
    found = versions(path)
    if not found:
        raise ValueError(f"--model {model}: no exported versions (integer sub-folders with saved_model.pb)")
    latest = path / str(found[-1])
    if not (latest / "saved_model.pb").is_file():
        raise ValueError(f"--model {model}: {latest} has no saved_model.pb")
    return latest


def load_exported(model: str | os.PathLike):
    """Load an export for local use; returns (loaded object, version folder, class names)."""
    import tensorflow_text  # noqa: F401  (the tokenizer's ops must be registered first)

    folder = resolve_model_dir(model)
    try:
        loaded = tf.saved_model.load(str(folder))
    except Exception as e:  # noqa: BLE001  (a corrupt file raises parser errors of many kinds)
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"--model {folder}: cannot load the SavedModel ({first_line})") from e
    labels_file = folder / "assets" / "labels.txt"
    if "serving_default" not in loaded.signatures or not labels_file.is_file():
        raise ValueError(f"--model {folder}: not a bertclf export (no serving_default or labels.txt)")
    classes = labels_file.read_text(encoding="utf-8").splitlines()
    return loaded, folder, classes
