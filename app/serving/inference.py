"""Load an export and classify texts with it: the one path for app.predict, app.evaluate, the
evaluation at the end of app.train, and the benchmarks.

It runs the export's `serving_default` signature, the same graph TF Serving runs, in batches;
with CPU fusion (`app.runtime.cpu_fusion`) from `FUSION_MIN_TEXTS` texts on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from app import runtime

logger = logging.getLogger(__name__)

# Fusion runs batch-64 inference faster in steady state, but compiling its clusters for each new
# shape costs a fresh process seconds; below this many texts it does not pay (docs/speed.md).
FUSION_MIN_TEXTS = 2048
PROGRESS_SECONDS = 15.0  # a long prediction logs how far it is this often
# The warm-up requests' examples (then one text a length bucket: `warmup_texts`).
WARMUP_TEXTS = ("An unforgettable film.", "", "Dull, slow and far too long.")


@dataclasses.dataclass
class LoadedModel:
    """An export, loaded: its signature, class names (in order), what the run was told
    (`config`, app.config.RunConfig) and what it did (`record`, app.record.RunRecord)."""

    folder: Path
    classes: list[str]
    config: dict
    serve: Callable
    record: dict = dataclasses.field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        """Whether the model answers with a set of labels a text (its signature has `predicted`)."""
        return "predicted" in self.serve.structured_outputs

    @property
    def takes_pairs(self) -> bool:
        """Whether the model classifies text pairs (its signature takes `text_pair`)."""
        return "text_pair" in self.serve.structured_input_signature[1]

    def predict(self, texts: Sequence[str], batch_size: int = 64,
                pairs: Sequence[str] | None = None) -> tuple[np.ndarray, float]:
        """(probabilities [n, classes], seconds); `pairs` are the second texts of a model of
        text pairs."""
        outputs, seconds = self.predict_outputs(texts, batch_size, pairs)
        return outputs["probabilities"], seconds

    def predict_outputs(self, texts: Sequence[str], batch_size: int = 64,
                        pairs: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], float]:
        """(every output of `serving_default`, in the texts' order, seconds): `probabilities`,
        and `class_id`/`label`, or for a multi-label model `predicted`/`labels`."""
        if self.takes_pairs and pairs is None:
            raise ValueError(f"--model {self.folder} classifies text pairs: give each text its second "
                             "text (app.predict --pairs, --text-pair-column for tables)")
        if not self.takes_pairs and pairs is not None:
            raise ValueError(f"--model {self.folder} classifies single texts, not text pairs")
        return predict_outputs(self.serve, texts, batch_size, pairs)


def versions(base: Path) -> list[int]:
    """Integer-named sub-folders: the versions TF Serving would load."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


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


def load(model: str | os.PathLike) -> LoadedModel:
    """Load an export (a version folder, or the latest version under a model folder)."""
    import tensorflow as tf
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
    config, record = _asset_json(folder, "config"), _asset_json(folder, "record")
    classes = labels_file.read_text(encoding="utf-8").splitlines()
    model = LoadedModel(folder, classes, config, loaded.signatures["serving_default"], record)
    # The first call optimises the graph, and oneDNN may log a notice about int64 ops that says
    # nothing to a user: make that call here, with native stderr held back (real errors pass).
    # Then one request of each length bucket, so that no user request is the first of its shape.
    settings = config.get("settings", {})
    texts = ["a", *warmup_texts(settings.get("max_seq_length"), settings.get("length_buckets", True))]
    with runtime.quiet_native_stderr():
        for text in texts:
            model.predict_outputs([text], 1, [text] if model.takes_pairs else None)
    return model


def _asset_json(folder: Path, name: str) -> dict:
    """An export's `assets/NAME.json` ({} for an export made before it was written)."""
    path = folder / "assets" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def predict_texts(serve: Callable, texts: Sequence[str], batch_size: int = 64,
                  pairs: Sequence[str] | None = None) -> tuple[np.ndarray, float]:
    """(probabilities in the texts' order, seconds): `predict_outputs`' probabilities."""
    outputs, seconds = predict_outputs(serve, texts, batch_size, pairs)
    return outputs.get("probabilities", np.zeros((0, 0), np.float32)), seconds


def predict_outputs(serve: Callable, texts: Sequence[str], batch_size: int = 64,
                    pairs: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Run a `serving_default` signature over texts (and their `pairs`) in batches; (each
    output in the texts' order, seconds). Texts are batched in order of length: the export pads
    each batch only to its longest text's bucket."""
    import tensorflow as tf

    texts = list(texts)
    pairs = None if pairs is None else list(pairs)
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(pairs)} second texts: a pair needs both")
    sizes = [len(t) + (len(pairs[i]) if pairs is not None else 0) for i, t in enumerate(texts)]
    order = np.argsort(sizes, kind="stable")
    outputs = []
    start = time.perf_counter()
    last_report = start
    with runtime.cpu_fusion(len(texts) >= FUSION_MIN_TEXTS):
        for i in range(0, len(texts), batch_size):
            rows = order[i:i + batch_size]
            inputs = {"text": tf.constant([texts[j] for j in rows], tf.string)}
            if pairs is not None:
                inputs["text_pair"] = tf.constant([pairs[j] for j in rows], tf.string)
            outputs.append({k: v.numpy() for k, v in serve(**inputs).items()})
            done = min(i + batch_size, len(texts))
            now = time.perf_counter()
            if now - last_report >= PROGRESS_SECONDS and done < len(texts):
                rate = done / (now - start)
                logger.info("predicted %d of %d texts (%.0f %%, %.0f/s, %.0f s to go)", done, len(texts),
                            100 * done / len(texts), rate, (len(texts) - done) / rate)
                last_report = now
    seconds = time.perf_counter() - start
    if not outputs:
        return {}, seconds
    result = {}
    for key in outputs[0]:
        joined = np.concatenate([o[key] for o in outputs])
        result[key] = np.empty_like(joined)
        result[key][order] = joined
    return result, seconds


def warmup_texts(seq_length: int | None, length_buckets: bool) -> list[str]:
    """`WARMUP_TEXTS`, then one text filling each length bucket up to `seq_length`: replayed on
    load (TF Serving's warm-up file, `app.serving.inference.load`), so that no request is the first of
    its shape."""
    texts = list(WARMUP_TEXTS)
    if not seq_length:
        return texts
    from app.model.preprocessing import bucket_width

    width = bucket_width(seq_length) if length_buckets else seq_length
    lengths = sorted({*range(width, seq_length, width), seq_length})
    # "a" is one word piece in every BERT vocabulary; [CLS] and [SEP] take two more positions.
    return texts + [" ".join(["a"] * max(1, length - 2)) for length in lengths]
