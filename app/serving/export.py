"""Export a trained classifier as a SavedModel that TensorFlow Serving loads as is.

Layout: `OUTPUT_DIR/MODEL_NAME/VERSION/` with an integer version. The model is written to a
hidden staging folder beside it and renamed into place when complete: TF Serving watches the
base folder and only loads integer-named versions, so it never sees half a model.

Signatures:
* `serving_default`: `text` (string `[None]`) -> `probabilities` (float32 `[None, classes]`),
  `class_id` (int64 `[None]`), `label` (string `[None]`). The tokenizer is inside, and the
  n-gram model (`app.model.ngram`) whose probabilities are averaged in, when the run has one. A model
  of text pairs takes `text` and `text_pair`. A multi-label model returns `probabilities` (one
  sigmoid a label), `predicted` (int64 `[None, labels]`, 1 where the probability reaches the
  label's threshold) and `labels` (string `[None, labels]`: the predicted labels' names, most
  probable first, then empty strings), fixed-size tensors that TF Serving's REST and gRPC
  replies carry as they are.
* `classify`: serialized `tf.Example`s with a `text` feature (and `text_pair`) -> `classes`,
  `scores` (a Classification signature, so TF Serving's `:classify` API works).

Also saved (not a signature): `tokenize(text[, text_pair])`, the encoder inputs the model
computes on, and with an n-gram model the ensemble's parts: `encoder_part(text)` and
`ngram_probabilities(text)` (before calibration), and `ngram_known(text)`, whether the n-gram
model knows any n-gram of the text (where it knows none, the encoder answers alone).
Assets: `labels.txt` (class names in order), `config.json` (what the run was told,
`app.config.RunConfig`), `record.json` (what it did, `app.record.RunRecord`), and
`assets.extra/tf_serving_warmup_requests` (PredictRequests TF Serving replays on load).
Loading an export is `app.serving.inference`.
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

from app.model.preprocessing import Tokenizer
from app.serving.inference import versions, warmup_texts

logger = logging.getLogger(__name__)

_STAGING = re.compile(r"^\.tmp-v(\d+)-pid(\d+)-")
_TEXT = tf.TensorSpec([None], tf.string, name="text")
_PAIR = tf.TensorSpec([None], tf.string, name="text_pair")


class ServingModel(tf.Module):
    """Raw text in, class probabilities and labels out: what TF Serving runs.

    It saves only what its functions use: the classifier's weights, the tokenizer's vocabulary
    table, the class names and the assets. The Keras model itself is held as a plain attribute:
    saved, it would bring its optimizer's slots (twice the weights again) and every variant the
    encoder was traced in (training, full outputs), which made an export several times larger
    and slower to load.
    """

    def __init__(self, classifier: tf.keras.Model, tokenizer: Tokenizer, classes: Sequence[str],
                 assets: dict[str, str], ngram: tf.Module | None = None, ngram_weight: float = 0.0,
                 pairs: bool = False, thresholds: Sequence[float] | None = None,
                 temperature: float | Sequence[float] | None = None, decision_threshold: float | None = None,
                 pooling: dict | None = None):
        super().__init__(name="serving_model")
        object.__setattr__(self, "_classifier", classifier)  # not tracked: see above
        object.__setattr__(self, "_tokenizer", tokenizer)
        self.model_weights = list(classifier.weights)
        self.tokenizer_resources = [o for o in tf.train.TrackableView(tokenizer).descendants()
                                    if isinstance(o, tf.saved_model.experimental.TrackableResource)]
        self.class_names = tf.Variable(list(classes), trainable=False, name="class_names")
        # The calibration's temperature (app.training.calibration; one a label for multi-label), or none.
        self.temperature = None if temperature is None else tf.Variable(
            temperature, dtype=tf.float32, trainable=False, name="temperature")
        # Two classes: the second is predicted from this probability on (app.training.decision); else argmax.
        self.decision_threshold = None if decision_threshold is None else tf.Variable(
            float(decision_threshold), dtype=tf.float32, trainable=False, name="decision_threshold")
        # Multi-label: each label's decision threshold (app.training.decision); None for one class a text.
        self.thresholds = None if thresholds is None else tf.Variable(
            list(map(float, thresholds)), dtype=tf.float32, trainable=False, name="thresholds")
        self.assets = {name: tf.saved_model.Asset(path) for name, path in assets.items()}
        # A classifier built for any length (trained with length buckets) gets each request
        # padded to its bucket only: short texts don't pay for max_seq_length positions.
        self._buckets = classifier.inputs[0].shape[-1] is None
        # The n-gram model (app.model.ngram) and its share of the probabilities, when it has one.
        # `pooling` ({"encoder": a, "ngram": b, "bias": [...]}, app.model.ngram.choose_ensemble) combines
        # the two by log-linear pooling instead of the weighted average.
        self.ngram = ngram if ngram is not None and (ngram_weight > 0 or pooling) else None
        self._ngram_weight = float(ngram_weight) if self.ngram is not None else 0.0
        self.pooling = None if self.ngram is None or not pooling else tf.Variable(
            [float(pooling["encoder"]), float(pooling["ngram"])], trainable=False, name="pooling")
        self.pooling_bias = None if self.pooling is None else tf.Variable(
            [float(b) for b in pooling["bias"]], trainable=False, name="pooling_bias")
        # The functions' inputs: a text, or a text pair (their signatures are fixed at saving).
        self._pairs = pairs
        inputs = [_TEXT, _PAIR] if pairs else [_TEXT]
        if self.ngram is not None:  # the ensemble's parts, saved beside `tokenize` for inspection
            self.ngram_probabilities = tf.function(self.ngram.__call__, input_signature=[_TEXT])
            self.ngram_known = tf.function(self.ngram.known, input_signature=[_TEXT])
            self.encoder_part = tf.function(self.encoder_probabilities, input_signature=inputs)
        self.serve = tf.function(self._serve, input_signature=inputs)
        self.tokenize = tf.function(self._tokenize, input_signature=inputs)
        self.classify = tf.function(self._classify, input_signature=[
            tf.TensorSpec([None], tf.string, name="inputs")])

    def encoder_probabilities(self, text: tf.Tensor, text_pair: tf.Tensor | None = None) -> tf.Tensor:
        """The fine-tuned encoder's probabilities alone."""
        return tf.cast(self._classifier(self._tokenize(text, text_pair), training=False), tf.float32)

    def _probabilities(self, text: tf.Tensor, text_pair: tf.Tensor | None = None) -> tf.Tensor:
        probabilities = self.encoder_probabilities(text, text_pair)
        if self.ngram is not None:  # as app.model.ngram.combine computes it
            if self.pooling is not None:  # app.model.ngram.log_linear
                logits = (self.pooling[0] * tf.math.log(tf.maximum(probabilities, 1e-7))
                          + self.pooling[1] * tf.math.log(tf.maximum(self.ngram(text), 1e-7))
                          + self.pooling_bias)
                combined = tf.nn.softmax(logits, axis=-1)
            else:
                w = self._ngram_weight
                combined = (1.0 - w) * probabilities + w * self.ngram(text)
            # A text the n-gram model knows no n-gram of is the encoder's alone.
            probabilities = tf.where(self.ngram.known(text)[:, None], combined, probabilities)
        if self.temperature is not None:  # as app.training.calibration.apply_temperature computes it
            if self.thresholds is not None:  # multi-label: each label's log-odds
                p = tf.clip_by_value(probabilities, 1e-7, 1 - 1e-7)
                return tf.sigmoid((tf.math.log(p) - tf.math.log1p(-p)) / self.temperature)
            return tf.nn.softmax(tf.math.log(tf.maximum(probabilities, 1e-7)) / self.temperature, axis=-1)
        return probabilities

    def _serve(self, text, text_pair=None):
        probabilities = self._probabilities(text, text_pair)
        if self.thresholds is not None:
            predicted = probabilities >= self.thresholds
            # The predicted labels first, each group most probable first.
            order = tf.argsort(probabilities + 2.0 * tf.cast(predicted, tf.float32), axis=-1,
                               direction="DESCENDING", stable=True)
            names = tf.where(tf.gather(predicted, order, batch_dims=1), tf.gather(self.class_names, order),
                             "")
            return {"probabilities": probabilities, "predicted": tf.cast(predicted, tf.int64),
                    "labels": names}
        if self.decision_threshold is not None:
            class_id = tf.cast(probabilities[:, 1] >= self.decision_threshold, tf.int64)
        else:
            class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"probabilities": probabilities, "class_id": class_id,
                "label": tf.gather(self.class_names, class_id)}

    def _classify(self, inputs):
        names = ["text", "text_pair"] if self._pairs else ["text"]
        features = tf.io.parse_example(inputs, {n: tf.io.FixedLenFeature([], tf.string) for n in names})
        scores = self._probabilities(*(features[n] for n in names))
        classes = tf.tile(self.class_names[tf.newaxis], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    def _tokenize(self, text, text_pair=None):
        """The encoder inputs `serve` computes on, for checking them against training's."""
        return self._tokenizer(text, text_pair, bucket=self._buckets)


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


def _write_warmup(export_dir: Path, texts: Sequence[str], pairs: bool = False) -> None:
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    extra = export_dir / "assets.extra"
    extra.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as writer:
        for text in texts:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = "serving_default"
            request.inputs["text"].CopyFrom(tf.make_tensor_proto([text], dtype=tf.string))
            if pairs:
                request.inputs["text_pair"].CopyFrom(tf.make_tensor_proto([text], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def check_location(output_dir: str | os.PathLike, model_name: str, version: int | None = None) -> None:
    """Refuse, before any training, an export location that cannot be written or a `version`
    that exists; creates nothing."""
    base = Path(output_dir) / model_name
    if version is not None and version in versions(base):
        raise ValueError(f"--version {version}: {base / str(version)} exists and is never overwritten")
    existing = next(p for p in (base, *base.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ValueError(f"--output-dir {output_dir}: {existing} is not a writable folder")


def choose_version(output_dir: str | os.PathLike, model_name: str, version: int | None = None) -> int:
    """The version an export will take: `version`, or the next free number (creates the base
    folder)."""
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
        return (existing[-1] + 1) if existing else 1
    if version in existing:
        raise ValueError(f"--version {version}: {base / str(version)} exists and is never overwritten")
    return version


def export_model(
    classifier: tf.keras.Model,
    tokenizer: Tokenizer,
    classes: Sequence[str],
    config_json: str,
    output_dir: str | os.PathLike,
    model_name: str,
    version: int | None = None,
    ngram: tf.Module | None = None,
    ngram_weight: float = 0.0,
    pairs: bool = False,
    thresholds: Sequence[float] | None = None,
    temperature: float | Sequence[float] | None = None,
    decision_threshold: float | None = None,
    pooling: dict | None = None,
    record_json: str = "{}",
) -> Path:
    """Write `output_dir/model_name/VERSION` atomically and return it.

    An existing version is never overwritten; without `version`, the next free number is used
    (`choose_version`). `config_json` becomes `assets/config.json`, `record_json`
    `assets/record.json`. With an `ngram` model
    (`app.model.ngram`) and a positive weight, the served probabilities average the two; with `pooling`
    they are its log-linear pooling of the two instead. A model of
    text `pairs` takes `text` and `text_pair`. `thresholds` (one a class) make it a multi-label
    model's export. `temperature` calibrates the probabilities (app.training.calibration);
    `decision_threshold` decides a two-class model's `class_id` (app.training.decision).
    """
    version = choose_version(output_dir, model_name, version)
    base = Path(output_dir) / model_name
    final = base / str(version)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-v{version}-pid{os.getpid()}-", dir=base))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            labels_path = Path(scratch) / "labels.txt"
            labels_path.write_text("\n".join(classes) + "\n", encoding="utf-8")
            config_path = Path(scratch) / "config.json"
            config_path.write_text(config_json, encoding="utf-8")
            record_path = Path(scratch) / "record.json"
            record_path.write_text(record_json, encoding="utf-8")
            assets = {"labels": str(labels_path), "config": str(config_path), "record": str(record_path)}
            module = ServingModel(classifier, tokenizer, classes, assets, ngram, ngram_weight, pairs,
                                  thresholds, temperature, decision_threshold, pooling)
            tf.saved_model.save(module, str(staging),
                                signatures={"serving_default": module.serve, "classify": module.classify})
        _set_classify_method(staging)
        buckets = classifier.inputs[0].shape[-1] is None  # as ServingModel pads
        _write_warmup(staging, warmup_texts(tokenizer.seq_length, buckets), pairs)
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
