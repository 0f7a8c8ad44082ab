"""Converting a Hugging Face BERT-family checkpoint into TF-Hub preprocess + encoder SavedModels
(the library behind `python -m app.convert`, and the offline encoder's first use in
`app.model.encoders`).

A checkpoint folder holds `config.json`, `model.safetensors` and `vocab.txt` (optionally
`tokenizer_config.json` or `tokenizer.json`, which decide lower-casing). `convert` writes
`preprocess/` and `encoder/`, which `hub.KerasLayer` loads exactly like the published TF-Hub BERT
models, and `bertclf_convert.json`, which records the options and a fingerprint of the
converter's code: a cached conversion whose fingerprint differs from what this converter would
write is redone.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("config.json", "model.safetensors", "vocab.txt")
_HF_LAYER = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attention_output",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output",
    "output.LayerNorm": "output_norm",
}
_HF_TOP = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.token_type_embeddings": "embeddings.type",
    "embeddings.LayerNorm": "embeddings.norm",
    "pooler.dense": "pooler",
}
_SUFFIXES = ("weight", "bias", "gamma", "beta")
_NORM_SUFFIX = {"weight": "gamma", "gamma": "gamma", "bias": "beta", "beta": "beta"}
_BERT_LIKE = {"bert", "roberta-bert"}  # model_type values whose weights follow BertModel

IMPLEMENTATIONS = ("fast", "plain")  # app.model.bert_fast.FastBertEncoder, app.model.bert.BertEncoder
COMPUTE_DTYPES = ("float32", "bfloat16")
_CODE = Path(__file__).resolve().parent  # app/model/
_CODE_FILES = {"plain": ("conversion.py", "bert.py"), "fast": ("conversion.py", "bert.py", "bert_fast.py")}


def fingerprint(checkpoint: str | os.PathLike, seq_length: int, compute_dtype: str,
                implementation: str) -> str:
    """What a conversion depends on: the converter's code (its syntax tree, so comments and
    layout do not count), the options, and the checkpoint's files (path and size)."""
    digest = hashlib.sha256()
    for name in _CODE_FILES[implementation]:
        digest.update(ast.dump(ast.parse((_CODE / name).read_text(encoding="utf-8"))).encode())
    checkpoint = Path(checkpoint).resolve()
    files = {n: (checkpoint / n).stat().st_size for n in REQUIRED_FILES if (checkpoint / n).is_file()}
    digest.update(json.dumps([str(checkpoint), files, seq_length, compute_dtype, implementation]).encode())
    return digest.hexdigest()[:16]


class CheckpointError(ValueError):
    """The checkpoint folder cannot be converted; the message names the file and the problem."""


def read_bert_config(path: Path):
    """Read `config.json` into a `BertConfig`, refusing configs that are not BERT-like."""
    from app.model.bert import ACTIVATIONS, BertConfig

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read JSON config ({e})") from e
    model_type = raw.get("model_type")
    if model_type not in _BERT_LIKE:
        raise CheckpointError(
            f"{path}: model_type {model_type!r} is not BERT-like (expected one of {sorted(_BERT_LIKE)})"
        )
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(
            f"{path}: position_embedding_type {raw['position_embedding_type']!r} is not supported"
        )
    if raw.get("hidden_act", "gelu") not in ACTIVATIONS:
        raise CheckpointError(f"{path}: hidden_act {raw['hidden_act']!r} is not supported")
    fields = {f: raw[f] for f in BertConfig.__dataclass_fields__ if f in raw}
    missing = [
        f for f in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings") if f not in raw
    ]
    if missing:
        raise CheckpointError(f"{path}: missing BERT config fields {missing}")
    return BertConfig(**fields)


def read_vocab(path: Path) -> list[str]:
    try:
        vocab = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read vocabulary ({e})") from e
    if not vocab:
        raise CheckpointError(f"{path}: vocabulary is empty")
    seen: dict[str, int] = {}
    for line, token in enumerate(vocab, start=1):
        if token in seen:
            raise CheckpointError(f"{path}: token {token!r} on line {line} repeats line {seen[token]}")
        seen[token] = line
    return vocab


def read_casing(checkpoint: Path) -> tuple[bool, bool]:
    """(lower_case, strip_accents) as the checkpoint's own tokenizer would apply them."""
    lower, strip = True, None
    tok_json = checkpoint / "tokenizer.json"
    tok_cfg = checkpoint / "tokenizer_config.json"
    if tok_json.exists():
        normalizer = json.loads(tok_json.read_text(encoding="utf-8")).get("normalizer") or {}
        if normalizer.get("type") == "BertNormalizer":
            lower = bool(normalizer.get("lowercase", True))
            strip = normalizer.get("strip_accents")
    elif tok_cfg.exists():
        cfg = json.loads(tok_cfg.read_text(encoding="utf-8"))
        lower = bool(cfg.get("do_lower_case", True))
        strip = cfg.get("strip_accents")
    return lower, lower if strip is None else bool(strip)


def map_weights(tensors: dict, config, source: str) -> dict:
    """Rename Hugging Face `BertModel` tensors to the encoder's names (kernels transposed)."""
    import numpy as np

    out = {}
    for name, value in tensors.items():
        key = name[5:] if name.startswith("bert.") else name
        if key.startswith(("cls.", "classifier.")) or key.endswith("position_ids"):
            continue  # pre-training heads and buffers: not part of the encoder
        stem, _, suffix = key.rpartition(".")
        if suffix not in _SUFFIXES:
            raise CheckpointError(f"{source}: unexpected tensor {name!r}")
        if stem in _HF_TOP:
            ours = _HF_TOP[stem]
        elif stem.startswith("encoder.layer."):
            index, _, rest = stem[len("encoder.layer."):].partition(".")
            if rest not in _HF_LAYER:
                raise CheckpointError(f"{source}: unexpected tensor {name!r}")
            ours = f"layer_{int(index)}.{_HF_LAYER[rest]}"
        else:
            raise CheckpointError(f"{source}: unexpected tensor {name!r}")
        value = np.asarray(value, dtype=np.float32)
        if ours.startswith("embeddings.") and ours != "embeddings.norm":
            out[ours] = value  # embedding tables, [rows, hidden]
        elif ours.endswith("norm"):
            out[f"{ours}.{_NORM_SUFFIX[suffix]}"] = value
        elif suffix == "weight":
            out[f"{ours}.kernel"] = value.T  # torch Linear stores [out, in]
        else:
            out[f"{ours}.bias"] = value

    expected = _expected_shapes(config)
    if "pooler.kernel" not in out:
        # Sentence-embedding checkpoints may ship without a pooler: start it at identity so
        # pooled_output is tanh([CLS]), a sensible starting point for fine-tuning.
        logger.warning("%s has no pooler weights; initialising the pooler to identity", source)
        out["pooler.kernel"] = np.eye(config.hidden_size, dtype=np.float32)
        out["pooler.bias"] = np.zeros(config.hidden_size, dtype=np.float32)
    missing = sorted(set(expected) - set(out))
    if missing:
        raise CheckpointError(f"{source}: missing tensors for {missing[:5]}{'…' if len(missing) > 5 else ''}")
    for key, shape in expected.items():
        if out[key].shape != shape:
            raise CheckpointError(
                f"{source}: tensor {key} has shape {out[key].shape}, config.json implies {shape}"
            )
    extra = sorted(set(out) - set(expected))
    if extra:
        raise CheckpointError(f"{source}: tensors beyond config.json's layers: {extra[:5]}")
    return out


def _expected_shapes(c) -> dict[str, tuple]:
    h, f = c.hidden_size, c.intermediate_size
    shapes = {
        "embeddings.word": (c.vocab_size, h),
        "embeddings.position": (c.max_position_embeddings, h),
        "embeddings.type": (c.type_vocab_size, h),
        "embeddings.norm.gamma": (h,),
        "embeddings.norm.beta": (h,),
        "pooler.kernel": (h, h),
        "pooler.bias": (h,),
    }
    for i in range(c.num_hidden_layers):
        p = f"layer_{i}."
        for name in ("query", "key", "value", "attention_output"):
            shapes[p + name + ".kernel"] = (h, h)
            shapes[p + name + ".bias"] = (h,)
        shapes[p + "intermediate.kernel"] = (h, f)
        shapes[p + "intermediate.bias"] = (f,)
        shapes[p + "output.kernel"] = (f, h)
        shapes[p + "output.bias"] = (h,)
        for norm in ("attention_norm", "output_norm"):
            shapes[p + norm + ".gamma"] = (h,)
            shapes[p + norm + ".beta"] = (h,)
    return shapes


def convert(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    seq_length: int = 128,
    compute_dtype: str = "float32",
    implementation: str = "fast",
) -> Path:
    """Write `output/preprocess`, `output/encoder` and `output/bertclf_convert.json`; returns `output`.

    `implementation` picks the encoder graph: `fast` (the CPU speed techniques of `app.model.bert_fast`)
    or `plain` (`app.model.bert`'s reference); both compute the same function of the same weights.

    Both are written to a temporary folder beside `output` first and moved into place at the
    end, so an interrupted conversion never leaves a half-written model where one is expected.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    checkpoint, output = Path(checkpoint), Path(output)
    if not checkpoint.is_dir():
        raise CheckpointError(f"--checkpoint {checkpoint}: no such directory")
    for name in REQUIRED_FILES:
        if not (checkpoint / name).is_file():
            raise CheckpointError(f"--checkpoint {checkpoint}: missing {name}")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"--compute-dtype must be one of {list(COMPUTE_DTYPES)}, got {compute_dtype!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"--implementation must be one of {list(IMPLEMENTATIONS)}, got {implementation!r}")
    config = read_bert_config(checkpoint / "config.json")
    if not 8 <= seq_length <= config.max_position_embeddings:
        raise ValueError(
            f"--seq-length must be between 8 and the checkpoint's max_position_embeddings "
            f"({config.max_position_embeddings}), got {seq_length}"
        )
    vocab = read_vocab(checkpoint / "vocab.txt")
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"{checkpoint / 'vocab.txt'} has {len(vocab)} tokens but config.json says "
            f"vocab_size={config.vocab_size}"
        )
    weights_path = checkpoint / "model.safetensors"
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights_path}: cannot read safetensors ({e})") from e
    weights = map_weights(tensors, config, str(weights_path))
    if weights["embeddings.word"].shape[0] != len(vocab):
        raise CheckpointError(
            f"{weights_path}: word embeddings have {weights['embeddings.word'].shape[0]} rows but "
            f"vocab.txt has {len(vocab)} tokens"
        )
    lower_case, strip_accents = read_casing(checkpoint)

    import tensorflow as tf

    from app.model.bert import BertEncoder, BertPreprocessor, encoder_savable, preprocessor_savable
    from app.model.bert_fast import FastBertEncoder

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        logger.info("converting %s (%d layers, width %d, lower_case=%s, %s %s encoder) to %s",
                    checkpoint, config.num_hidden_layers, config.hidden_size, lower_case, implementation,
                    compute_dtype, output)
        pre = BertPreprocessor(vocab, lower_case, strip_accents, str(checkpoint / "vocab.txt"),
                               default_seq_length=seq_length)
        tf.saved_model.save(preprocessor_savable(pre), str(staging / "preprocess"))
        encoder_class = FastBertEncoder if implementation == "fast" else BertEncoder
        enc = encoder_class(config, weights, compute_dtype=compute_dtype)
        tf.saved_model.save(encoder_savable(enc), str(staging / "encoder"))
        (staging / "bertclf_convert.json").write_text(json.dumps({
            "checkpoint": str(checkpoint.resolve()),
            "seq_length": seq_length,
            "compute_dtype": compute_dtype,
            "implementation": implementation,
            "pooled_only": enc.supports_pooled_only,
            "fingerprint": fingerprint(checkpoint, seq_length, compute_dtype, implementation),
            "lower_case": lower_case,
            "strip_accents": strip_accents,
            "config": vars(config),
        }, indent=2))
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
        output.chmod(0o755)  # mkdtemp made it private; servers often run as another user
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output
