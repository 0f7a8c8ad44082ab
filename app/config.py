"""The one training configuration: defaults, then an optional JSON/YAML file, then flags.

`TrainConfig` is frozen and validated before TensorFlow does any work, logged, and saved as
`config.json` in the run folder and beside every export.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import types
import typing
from pathlib import Path

from app.data import BUNDLED_SAMPLE, TRUNCATIONS
from app.encoders import DEFAULT_ENCODER

STRATEGIES = ("auto", "tpu", "mirrored", "multi-worker", "one-device", "cpu")
MIXED_PRECISION = ("auto", "none", "bf16", "fp16")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on. `None` means "pick a default for the encoder or hardware"."""

    # data
    data: str = str(BUNDLED_SAMPLE)
    test_data: str | None = None
    dataset: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    validation_split: float = 0.1
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    max_seq_length: int = 128
    truncation: str = "head+tail"
    length_buckets: bool | None = None
    # model
    encoder: str = DEFAULT_ENCODER
    preprocess: str | None = None
    dropout: float = 0.1
    # optimization
    epochs: int = 3
    batch_size: int | None = None
    learning_rate: float | None = None
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    patience: int = 2
    seed: int = 42
    # hardware
    strategy: str = "auto"
    tpu: str | None = None
    mixed_precision: str = "auto"
    jit_compile: bool | None = None
    steps_per_execution: int = 1
    # outputs
    model_name: str = "bertclf"
    output_dir: str = "saved_models"
    run_dir: str | None = None
    version: int | None = None

    @property
    def data_source(self) -> str:
        return self.dataset or self.data

    @property
    def resolved_run_dir(self) -> Path:
        """Deterministic, so that running the same command again finds the backup and resumes."""
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.model_name

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Raise ValueError naming the flag and the value for anything out of range."""

    def bad(flag: str, value, expected: str):
        raise ValueError(f"--{flag} {expected}, got {value!r}")

    if cfg.epochs < 1:
        bad("epochs", cfg.epochs, "must be at least 1")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        bad("batch-size", cfg.batch_size, "must be at least 1")
    if cfg.learning_rate is not None and not 0 < cfg.learning_rate < 1:
        bad("learning-rate", cfg.learning_rate, "must be in (0, 1)")
    if not 0 <= cfg.warmup_fraction < 1:
        bad("warmup-fraction", cfg.warmup_fraction, "must be in [0, 1)")
    if not 0 <= cfg.weight_decay < 1:
        bad("weight-decay", cfg.weight_decay, "must be in [0, 1)")
    if cfg.clip_norm <= 0:
        bad("clip-norm", cfg.clip_norm, "must be positive")
    if not 0 <= cfg.dropout < 1:
        bad("dropout", cfg.dropout, "must be in [0, 1)")
    if not 8 <= cfg.max_seq_length <= 4096:
        bad("max-seq-length", cfg.max_seq_length, "must be between 8 and the encoder's limit")
    if cfg.truncation not in TRUNCATIONS:
        bad("truncation", cfg.truncation, f"must be one of {list(TRUNCATIONS)}")
    if not 0 < cfg.validation_split < 1:
        bad("validation-split", cfg.validation_split, "must be in (0, 1)")
    for flag in ("max_train_examples", "max_eval_examples"):
        value = getattr(cfg, flag)
        if value is not None and value < 2:
            bad(flag.replace("_", "-"), value, "must be at least 2")
    if cfg.patience < 0:
        bad("patience", cfg.patience, "must be 0 or more")
    if cfg.seed < 0:
        bad("seed", cfg.seed, "must be 0 or more")
    if cfg.strategy not in STRATEGIES:
        bad("strategy", cfg.strategy, f"must be one of {list(STRATEGIES)}")
    if cfg.mixed_precision not in MIXED_PRECISION:
        bad("mixed-precision", cfg.mixed_precision, f"must be one of {list(MIXED_PRECISION)}")
    if cfg.steps_per_execution < 1:
        bad("steps-per-execution", cfg.steps_per_execution, "must be at least 1")
    if not _NAME.match(cfg.model_name):
        bad("model-name", cfg.model_name, "must be a folder name (letters, digits, . _ -)")
    if cfg.version is not None and cfg.version < 1:
        bad("version", cfg.version, "must be a positive integer")
    if cfg.dataset is not None and cfg.dataset != "imdb" and not cfg.dataset.startswith("tfds:"):
        bad("dataset", cfg.dataset, "must be 'imdb' or 'tfds:NAME'")
    return cfg


def _field_type(field: dataclasses.Field) -> tuple[type, bool]:
    """(base type, optional) from annotations such as `int | None`."""
    hint = typing.get_type_hints(TrainConfig)[field.name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        base = next(a for a in args if a is not type(None))
        return base, True
    return hint, False


def _coerce(name: str, value, source: str):
    field = TrainConfig.__dataclass_fields__[name]
    base, optional = _field_type(field)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{source}: {name} cannot be null")
    if base is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"{source}: {name} must be true or false, got {value!r}")
    try:
        if base is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return base(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: {name} must be {base.__name__}, got {value!r}") from e


def load_config_file(path: str) -> dict:
    """Read a JSON or YAML file of TrainConfig fields (dashes or underscores)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config {path}: no such file")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raw = json.loads(text)
    except Exception as e:  # noqa: BLE001  (any parser error is the user's file)
        raise ValueError(f"--config {path}: cannot parse ({e})") from e
    if not isinstance(raw, dict):
        raise ValueError(f"--config {path}: expected a mapping of settings, got {type(raw).__name__}")
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in TrainConfig.__dataclass_fields__:
            raise ValueError(f"--config {path}: unknown setting {key!r}")
        out[name] = _coerce(name, value, f"--config {path}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field; flags default to "not given" so the config file can fill them."""
    parser.add_argument("--config", help="JSON or YAML file of settings (flags override it)")
    helps = {
        "data": "folder (aclImdb layout or class folders), .csv/.tsv/.jsonl/.parquet, imdb or tfds:NAME",
        "test_data": "labelled test set, if --data has none",
        "dataset": "a named dataset instead of --data: imdb (downloaded) or tfds:NAME",
        "encoder": "registry name, a folder from app.convert, or an encoder handle (path/URL)",
        "preprocess": "preprocessor handle, when --encoder is a bare encoder handle",
        "batch_size": "global batch size (all replicas); default by encoder size",
        "learning_rate": "peak AdamW learning rate; default by encoder size",
        "strategy": f"tf.distribute strategy: {', '.join(STRATEGIES)}",
        "tpu": "TPU name or grpc:// address for --strategy tpu",
        "mixed_precision": "auto (bf16 where the hardware has it and the encoder can use it), none, "
                           "bf16 or fp16",
        "jit_compile": "XLA-compile the train step (default: on for TPU/GPU, off on CPU)",
        "run_dir": "run folder (default runs/MODEL_NAME); the same folder resumes a killed run",
        "version": "export version (default: next free number)",
        "truncation": "which tokens long texts keep: head, tail or head+tail",
        "length_buckets": "pad each batch only to the multiple of 32 tokens (at most 8 lengths) "
                          "above its longest text, texts of similar length batched together "
                          "(default: on, off on TPU)",
    }
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        base, _ = _field_type(field)
        kwargs = {"dest": field.name, "default": argparse.SUPPRESS,
                  "help": f"{helps.get(field.name, '')} (default: {field.default})".strip()}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = base
        parser.add_argument(flag, **kwargs)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then `--config FILE`, then the flags that were given; validated."""
    values = {}
    if getattr(args, "config", None):
        values.update(load_config_file(args.config))
    values.update({k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__})
    return validate(TrainConfig(**values))
