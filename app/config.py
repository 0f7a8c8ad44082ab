"""The one training configuration, and what a run resolves it to.

`TrainConfig` is frozen and comes from defaults, then an optional JSON/YAML file, then flags;
`validate` refuses bad values before TensorFlow does any work. `resolve` then turns it, the
hardware and the encoder into a `RunConfig`: every "auto" or unset value chosen (batch
size, learning rate, precision, XLA, length buckets, the encoder's handles and converter
options, library versions). `app.train` settles the rest from the data before any training
(columns, task, class names and weights, CPU fusion, the plan's length and epochs, the
schedule) and saves it once: `config.json` in the run folder, inside the export
(`assets/config.json`) and in `report.json`. What the run then did is `app.record.RunRecord`.

No TensorFlow here: `--help` and a bad flag answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.options import (
    BASELINES,
    BUNDLED_SAMPLE,
    CALIBRATIONS,
    CLASS_WEIGHTS,
    CPU_FUSION_CHOICES,
    HEADERS,
    MIXED_PRECISION,
    POOLINGS,
    REGIMES,
    SMALL_DATA,
    STRATEGIES,
    TABLE_FORMATS,
    TASKS,
    TRUNCATIONS,
    UNLABELED_EXAMPLES,
)

GROUPS = ("data", "model", "optimisation", "hardware", "outputs")
DEFAULT_EPOCHS = 3
# Without a budget, training stops after this many epochs without a better validation score. With
# one, the deadline ends training and the best epoch is kept either way: stopping early would leave
# time the user gave unspent, and a learning rate decaying by the clock still has epochs to give.
DEFAULT_PATIENCE = 2
# Multi-label heads (one sigmoid a label, most labels rare) learn slowly at the encoder's rate
# and in three epochs: on the emotion-shaped bench (bench/multilabel.py) a head rate 30 times the
# encoder's and six epochs each raised micro F1 in every seed, and together macro F1 too.
MULTI_LABEL_HEAD_FACTOR = 30.0
MULTI_LABEL_EPOCHS = 6
AUTO_FIELDS = ("max_seq_length",)  # may be given as "auto" (None)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _field(default: Any, group: str, help: str, shown: str | None = None) -> Any:
    """A config field with its `--help` text; `shown` says what the default is when it is chosen
    at run time (None in the config)."""
    return dataclasses.field(default=default, metadata={"group": group, "help": help, "shown": shown})


# `--backup-every`: read here, where the flag is checked; app.training.backup acts on it.
@dataclasses.dataclass(frozen=True)
class Every:
    """How often to back up: every `steps` training steps, or every `seconds` of training."""

    steps: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        return f"{self.steps} steps" if self.steps else f"{self.seconds / 60:g} minutes"


def parse_every(value: str) -> Every:
    """`200` (steps) or `5m` (minutes; also `90s`)."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(m|min|s)?", text)
    if not match or float(match.group(1)) <= 0 or (match.group(2) is None and "." in match.group(1)):
        raise ValueError(f"--backup-every must be a number of steps (200) or minutes (5m) or seconds (90s), "
                         f"got {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    if unit is None:
        return Every(steps=int(number))
    return Every(seconds=number * (60 if unit.startswith("m") else 1))


# The offline default encoder (app.model.encoders converts it on first use).
DEFAULT_ENCODER = "minilm-l6-h384-uncased"


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """A named encoder: its two handles plus the size facts that pick training defaults."""

    name: str
    preprocess: str
    encoder: str
    num_layers: int
    hidden_size: int
    max_seq_length: int = 512
    offline: bool = False  # built locally by app.convert, not fetched
    # The dtype baked into the encoder's graph (app.convert --compute-dtype); TF Hub's: float32.
    compute_dtype: str = "float32"
    # The encoder's __call__ takes pooled_only=True (app.convert's fast implementation): the
    # classifier then skips the last layer's work on every token but [CLS].
    pooled_only: bool = False
    # app.convert's encoder graph, "fast" or "plain" (None: not converted by bertclf)
    implementation: str | None = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on. `None` (and "auto") means "chosen for the encoder and the
    hardware" (see `resolve`)."""

    # data
    data: str = _field(str(BUNDLED_SAMPLE), "data",
                       "a folder (aclImdb layout, or one sub-folder of text files per class), a "
                       ".csv/.tsv/.jsonl/.parquet table, imdb (downloaded once) or tfds:NAME",
                       "the bundled sample, data/sample")
    test_data: str | None = _field(None, "data", "labelled test set, when --data has no test split",
                                   "the test split of --data, if any")
    text_column: str | None = _field(None, "data", "table column(s) with the texts: a name, a 0-based index "
                                     "in a table without a header, or several joined by commas (their "
                                     "texts joined by a line break)",
                                     "the one of text, review, sentence, content, document")
    label_column: str | None = _field(None, "data", "table column with the labels",
                                      "the one of label, sentiment, labels, class, target, category")
    text_pair_column: str | None = _field(None, "data", "table column with the second texts of text pairs "
                                          "(paraphrase, entailment): packed after the first with [SEP], "
                                          "sharing --max-seq-length", "none: single texts")
    format: str | None = _field(None, "data", f"how to read a table file: {', '.join(TABLE_FORMATS)}",
                                "by its suffix; another (.txt, .dat, none) is sniffed from its first "
                                "lines, and the decision logged")
    header: str = _field("auto", "data", "whether a CSV/TSV's first row names its columns: yes, none "
                         "(columns are then named 0, 1, ...) or auto (detected, and logged)")
    label_names: str | None = _field(None, "data", "file of class names, one a line, for integer labels: "
                                     "line 1 names label 0, or label 1 when the labels run from 1",
                                     "the labels as they are")
    task: str = _field("auto", "data", "single-label (one class a text, softmax) or multi-label (a set of "
                       "labels a text, sigmoid, one threshold a label); auto: multi-label when the labels "
                       "are lists, --label-separator or --label-columns is given (logged)")
    label_separator: str | None = _field(None, "data", "multi-label: the labels in a cell are separated by "
                                         "this, e.g. ','", "none")
    label_columns: str | None = _field(None, "data", "multi-label: one 0/1 column per label, comma-"
                                       "separated (names, or indices without a header)", "none")
    validation_split: float = _field(0.1, "data", "share of the training data held out for validation "
                                     "when the data has no validation split (stratified, seeded)")
    max_train_examples: int | None = _field(None, "data", "train on a stratified, seeded subset this large",
                                            "all")
    max_eval_examples: int | None = _field(None, "data", "validate and test on subsets this large", "all")
    unlabeled_data: str | None = _field(None, "data", "texts without labels, for self-training "
                                        "(app.training.self_training): a folder of text files (aclImdb's "
                                        "unsup/), a table's text column, or a file of one text a line; the "
                                        "trained ensemble labels them and the n-gram model is fitted again "
                                        "with them", "none")
    max_unlabeled_examples: int = _field(UNLABELED_EXAMPLES, "data",
                                         "use at most this many --unlabeled-data texts (a seeded sample); "
                                         "a --time-budget may take fewer")
    max_seq_length: int | None = _field(None, "data", "word pieces per text, [CLS] and [SEP] included, "
                                        "or auto", "auto, from the training texts' token lengths "
                                        "(app.training.budget), 64 to 256, or planned by --time-budget")
    truncation: str = _field("head+tail", "data",
                             f"which word pieces a longer text keeps: {', '.join(TRUNCATIONS)} (head+tail: "
                             "the first quarter and the last three quarters)")
    length_buckets: bool | None = _field(None, "data",
                                         "pad each batch only to the multiple of 32 word pieces above its "
                                         "longest text, texts of similar length batched together",
                                         "on, off on TPUs")
    # model
    encoder: str = _field(DEFAULT_ENCODER, "model",
                          "registry name, a folder written by app.convert, or an encoder handle (path or "
                          "URL) with --preprocess")
    preprocess: str | None = _field(None, "model", "preprocessor handle, for a bare encoder handle",
                                    "the encoder's own")
    pooling: str = _field("cls", "model", "what the head reads: cls (the encoder's pooled [CLS] vector) or "
                          "mean (the average of the last layer over the text's word pieces)")
    dropout: float = _field(0.1, "model", "dropout rate before the classifier head")
    ngram_model: bool = _field(True, "model", "average the encoder's probabilities with a TF-IDF n-gram "
                               "linear model over the whole text (app.model.ngram), weighted on the "
                               "validation split, inside the same export")
    calibration: str = _field("temperature", "model", "temperature: scale the exported probabilities by a "
                              "temperature fitted on the validation split (log loss), so that they mean what "
                              "they say (app.training.calibration); none: the raw softmax (or sigmoids)")
    decision_threshold: float | None = _field(None, "model", "two classes only: the export's class_id and "
                                              "label are the second class when its probability reaches this "
                                              "(the report's operating points say what each gives)",
                                              "the most probable class")
    # optimisation
    epochs: int | None = _field(None, "optimisation", "training epochs, stopped early by --patience",
                                f"{DEFAULT_EPOCHS} ({MULTI_LABEL_EPOCHS} for multi-label data), or planned "
                                "by --time-budget")
    regime: str = _field("auto", "optimisation",
                         "how the encoder learns from the labels: fine-tune (cross-entropy) or contrastive "
                         "(SetFit: pairs of training texts, same class or not, train the encoder's "
                         "mean-pooled embedding, a logistic regression starts the head, then fit trains the "
                         "head; app.training.contrastive); auto: contrastive for single-label texts with at "
                         f"most {SMALL_DATA:,} training examples (logged)")
    time_budget: float | None = _field(None, "optimisation",
                                       "minutes for training and validation: plans the sequence length, "
                                       "training examples and epochs for this machine and stops in time "
                                       "(app.training.budget); the export and the test report come after",
                                       "none")
    batch_size: int | None = _field(None, "optimisation", "global batch size, across all replicas",
                                    "32; 16 for encoders wider than 768")
    learning_rate: float | None = _field(None, "optimisation", "peak AdamW learning rate",
                                         "1e-4 up to width 512, 3e-5 up to 768, 2e-5 above")
    head_learning_rate_factor: float | None = _field(None, "optimisation",
                                                     "the classifier head's learning rate is the peak rate "
                                                     "times this (the encoder's stays at --learning-rate)",
                                                     f"1; {MULTI_LABEL_HEAD_FACTOR:g} for multi-label data")
    layer_decay: float = _field(1.0, "optimisation",
                                "layer-wise learning-rate decay: encoder layer i of L trains at the rate "
                                "times this ** (L - 1 - i), the embeddings at this ** L; 1 turns it off")
    warmup_fraction: float = _field(0.1, "optimisation", "share of the steps warming the learning rate up "
                                    "from 0; then it decays linearly to 0")
    weight_decay: float = _field(0.01, "optimisation", "AdamW weight decay (not on layer norms and biases)")
    clip_norm: float = _field(1.0, "optimisation", "clip the gradients' global norm to this")
    class_weight: str = _field("none", "optimisation",
                               "weight the loss by class: none, balanced (each class inversely to its "
                               "number of training examples; multi-label: each label's positive examples "
                               "by its negatives over its positives, at most 10) or a JSON file "
                               "{class name: weight}")
    patience: int | None = _field(None, "optimisation", "stop after this many epochs without a better "
                                  "validation accuracy (the best epoch is kept in any case)",
                                  f"{DEFAULT_PATIENCE}; with --time-budget, none: the deadline ends training")
    seed: int = _field(42, "optimisation", "seed for splits, shuffling, initialisation and dropout")
    # hardware
    strategy: str = _field("auto", "hardware",
                           f"tf.distribute strategy: {', '.join(STRATEGIES)} (auto: a TPU, TF_CONFIG's "
                           "workers, several GPUs (mirrored), one GPU, else the CPU)")
    tpu: str | None = _field(None, "hardware", "TPU name or grpc:// address for --strategy tpu",
                             "the local TPU")
    mixed_precision: str = _field("auto", "hardware",
                                  f"{', '.join(MIXED_PRECISION)}: bf16 computes the offline encoder in "
                                  "bfloat16 (other encoders compute in the dtype app.convert saved them "
                                  "with); auto picks bf16 where the hardware has it natively")
    jit_compile: bool | None = _field(None, "hardware", "XLA-compile the whole train step",
                                      "on for TPUs and GPUs, off on CPUs (where CPU fusion compiles "
                                      "the element-wise ops)")
    cpu_fusion: str = _field("auto", "hardware",
                             f"{', '.join(CPU_FUSION_CHOICES)}: XLA fusion of the element-wise ops "
                             "on CPUs; auto times training steps with and without it on this machine "
                             "(once; cached) and fuses only where the run's steps repay compiling")
    steps_per_execution: int = _field(1, "hardware", "train steps per call into the device (raise on TPUs)")
    # outputs
    model_name: str = _field("bertclf", "outputs", "the export's folder name under --output-dir")
    output_dir: str = _field("saved_models", "outputs", "where exports go, as OUTPUT_DIR/MODEL_NAME/VERSION")
    run_dir: str | None = _field(None, "outputs", "run folder (logs, checkpoints, backup, report); the "
                                 "same folder resumes a killed run", "runs/MODEL_NAME")
    backup_every: str = _field("5m", "outputs", "back the run up every N training steps (200) or minutes "
                               "(5m; 90s) and at each epoch's end; the same command resumes at the next "
                               "step after a kill (the cost of each backup is logged)")
    version: int | None = _field(None, "outputs", "export version, the integer folder TF Serving loads",
                                 "the next free number")
    baseline: str = _field("tfidf", "outputs", "the classic baseline the report sets the model against: "
                           "tfidf (TF-IDF + logistic regression, scikit-learn, fitted on the same training "
                           "split) or none")

    @property
    def resolved_run_dir(self) -> Path:
        """Deterministic, so that running the same command again finds the backup and resumes."""
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.model_name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Raise ValueError naming the flag and the value for anything out of range."""

    def bad(flag: str, value, expected: str):
        raise ValueError(f"--{flag} {expected}, got {value!r}")

    if cfg.epochs is not None and cfg.epochs < 1:
        bad("epochs", cfg.epochs, "must be at least 1")
    if cfg.time_budget is not None and not 0 < cfg.time_budget <= 60 * 24 * 365:
        bad("time-budget", cfg.time_budget, "must be a positive number of minutes")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        bad("batch-size", cfg.batch_size, "must be at least 1")
    if cfg.learning_rate is not None and not 0 < cfg.learning_rate < 1:
        bad("learning-rate", cfg.learning_rate, "must be in (0, 1)")
    if cfg.head_learning_rate_factor is not None and not 0 < cfg.head_learning_rate_factor <= 1000:
        bad("head-learning-rate-factor", cfg.head_learning_rate_factor, "must be in (0, 1000]")
    if not 0 < cfg.layer_decay <= 1:
        bad("layer-decay", cfg.layer_decay, "must be in (0, 1]")
    if not 0 <= cfg.warmup_fraction < 1:
        bad("warmup-fraction", cfg.warmup_fraction, "must be in [0, 1)")
    if not 0 <= cfg.weight_decay < 1:
        bad("weight-decay", cfg.weight_decay, "must be in [0, 1)")
    if cfg.clip_norm <= 0:
        bad("clip-norm", cfg.clip_norm, "must be positive")
    if not 0 <= cfg.dropout < 1:
        bad("dropout", cfg.dropout, "must be in [0, 1)")
    if cfg.max_seq_length is not None and not 8 <= cfg.max_seq_length <= 4096:
        bad("max-seq-length", cfg.max_seq_length, "must be between 8 and the encoder's limit")
    if cfg.format is not None and cfg.format not in TABLE_FORMATS:
        bad("format", cfg.format, f"must be one of {list(TABLE_FORMATS)}")
    if cfg.header not in HEADERS:
        bad("header", cfg.header, f"must be one of {list(HEADERS)}")
    if cfg.task not in TASKS:
        bad("task", cfg.task, f"must be one of {list(TASKS)}")
    if cfg.label_separator == "":
        bad("label-separator", cfg.label_separator, "must be one or more characters")
    if cfg.task == "single-label" and (cfg.label_separator or cfg.label_columns):
        bad("task", cfg.task, "cannot take --label-separator or --label-columns (several labels a text)")
    if cfg.label_columns and cfg.label_column:
        bad("label-columns", cfg.label_columns, "and --label-column cannot both be given")
    if cfg.class_weight not in CLASS_WEIGHTS and not (cfg.class_weight.endswith(".json")
                                                      and Path(cfg.class_weight).expanduser().is_file()):
        bad("class-weight", cfg.class_weight, "must be none, balanced or an existing .json file of weights")
    if cfg.pooling not in POOLINGS:
        bad("pooling", cfg.pooling, f"must be one of {list(POOLINGS)}")
    if cfg.regime not in REGIMES:
        bad("regime", cfg.regime, f"must be one of {list(REGIMES)}")
    if cfg.truncation not in TRUNCATIONS:
        bad("truncation", cfg.truncation, f"must be one of {list(TRUNCATIONS)}")
    if not 0 < cfg.validation_split < 1:
        bad("validation-split", cfg.validation_split, "must be in (0, 1)")
    if cfg.unlabeled_data is not None and not Path(cfg.unlabeled_data).expanduser().exists():
        bad("unlabeled-data", cfg.unlabeled_data, "no such file or directory")
    if cfg.unlabeled_data is not None and cfg.text_pair_column is not None:
        bad("unlabeled-data", cfg.unlabeled_data, "is for single texts, not text pairs (--text-pair-column)")
    if cfg.unlabeled_data is not None and not cfg.ngram_model:
        bad("unlabeled-data", cfg.unlabeled_data, "trains the n-gram model again: it cannot be used with "
            "--no-ngram-model")
    if cfg.max_unlabeled_examples < 1:
        bad("max-unlabeled-examples", cfg.max_unlabeled_examples, "must be at least 1")
    for flag in ("max_train_examples", "max_eval_examples"):
        value = getattr(cfg, flag)
        if value is not None and value < 2:
            bad(flag.replace("_", "-"), value, "must be at least 2")
    if cfg.patience is not None and cfg.patience < 0:
        bad("patience", cfg.patience, "must be 0 or more")
    if cfg.seed < 0:
        bad("seed", cfg.seed, "must be 0 or more")
    if cfg.strategy not in STRATEGIES:
        bad("strategy", cfg.strategy, f"must be one of {list(STRATEGIES)}")
    if cfg.mixed_precision not in MIXED_PRECISION:
        bad("mixed-precision", cfg.mixed_precision, f"must be one of {list(MIXED_PRECISION)}")
    if cfg.cpu_fusion not in CPU_FUSION_CHOICES:
        bad("cpu-fusion", cfg.cpu_fusion, f"must be one of {list(CPU_FUSION_CHOICES)}")
    if cfg.steps_per_execution < 1:
        bad("steps-per-execution", cfg.steps_per_execution, "must be at least 1")
    if not _NAME.match(cfg.model_name):
        bad("model-name", cfg.model_name, "must be a folder name (letters, digits, . _ -)")
    if cfg.decision_threshold is not None and not 0 < cfg.decision_threshold < 1:
        bad("decision-threshold", cfg.decision_threshold, "must be in (0, 1)")
    if cfg.calibration not in CALIBRATIONS:
        bad("calibration", cfg.calibration, f"must be one of {list(CALIBRATIONS)}")
    if cfg.baseline not in BASELINES:
        bad("baseline", cfg.baseline, f"must be one of {list(BASELINES)}")
    if cfg.version is not None and cfg.version < 1:
        bad("version", cfg.version, "must be a positive integer")
    parse_every(cfg.backup_every)  # its own ValueError names the flag
    return cfg


# ----------------------------------------------------------------------------- flags and files


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
    if value is None or (name in AUTO_FIELDS and str(value).lower() == "auto"):
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
    """Read a JSON or YAML file of TrainConfig fields (dashes or underscores). A run's own
    `config.json` works too: its `settings` section is the run's settings, every default resolved,
    but for the export's version (so the run gets the next one)."""
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
    if "hardware" in raw:  # a RunConfig ("config" before the settings had their own name)
        settings = raw.get("settings", raw.get("config"))
        if isinstance(settings, dict):
            raw = {k: v for k, v in settings.items() if k != "version"}
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in TrainConfig.__dataclass_fields__:
            raise ValueError(f"--config {path}: unknown setting {key!r}")
        out[name] = _coerce(name, value, f"--config {path}")
    return out


def _auto_or(base: type):
    def parse(text: str):
        return None if text.lower() == "auto" else base(text)

    parse.__name__ = base.__name__  # argparse names the type in its error message
    return parse


# How a table is read: these fields' flags are shared by every CLI that reads tables
# (`add_table_arguments`), with this module's help text.
TABLE_FIELDS = ("format", "text_column", "label_column", "header", "label_names", "text_pair_column", "task",
                "label_separator", "label_columns")


def flag_help(name: str) -> str:
    """A field's `--help` text, its default included."""
    field = TrainConfig.__dataclass_fields__[name]
    shown = field.metadata["shown"] or (field.default if field.default is not None else "none")
    return f"{field.metadata['help']} (default: {shown})"


def add_table_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """The table flags (`TABLE_FIELDS`, or the `names` of them) with app.train's help text, for the
    other CLIs that read tables (app.evaluate, app.data inspect, app.predict); their values make
    an `app.data.TableFormat` (`app.data.table_format`)."""
    choices = {"format": TABLE_FORMATS, "header": HEADERS, "task": TASKS}
    defaults = {"header": "auto", "task": "auto"}
    for name in names or TABLE_FIELDS:
        parser.add_argument("--" + name.replace("_", "-"), choices=choices.get(name),
                            default=defaults.get(name), help=flag_help(name))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field, grouped; flags default to "not given" so the config file can fill them."""
    parser.add_argument("--config", help="JSON or YAML file of settings; flags override it")
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        base, _ = _field_type(field)
        kwargs = {"dest": field.name, "default": argparse.SUPPRESS, "help": flag_help(field.name)}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _auto_or(base) if field.name in AUTO_FIELDS else base
            kwargs["metavar"] = field.name.upper() if base is str else base.__name__.upper()
        groups[field.metadata["group"]].add_argument(flag, **kwargs)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then `--config FILE`, then the flags that were given; validated."""
    values = {}
    if getattr(args, "config", None):
        values.update(load_config_file(args.config))
    values.update({k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__})
    return validate(TrainConfig(**values))


# ----------------------------------------------------------------------------- resolution


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What the chosen tf.distribute strategy runs on (`app.distribute.describe`)."""

    strategy: str  # the class name users know, e.g. "MirroredStrategy"
    replicas: int
    device: str  # "TPU", "GPU" or "CPU"
    fast_bfloat16: bool  # computes bfloat16 natively (TPU, Ampere+ GPU, AVX512-BF16 or AMX CPU)
    cpu_fusion: bool  # the process has the CPU fusion flags (app.runtime)
    why: str = ""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a run is told, every value settled before training starts. `settings` is the
    `TrainConfig` with every chosen value filled in, `requested` what was asked for; the rest is
    what they were chosen from and for. `app.train` settles it in steps (the `with_*` methods,
    each a new frozen copy) and saves it once, before the first training step."""

    settings: TrainConfig
    requested: TrainConfig
    hardware: Hardware
    encoder: EncoderSpec
    converter: dict  # the encoder's bertclf_convert.json options ({} for TF Hub's encoders)
    cpu_fusion: bool  # the fit and large predictions run under app.runtime.cpu_fusion()
    drop_remainder: bool  # static batch shapes (TPUs)
    versions: dict
    classes: list = dataclasses.field(default_factory=list)  # in order: the model's outputs
    class_weights: dict = dataclasses.field(default_factory=dict)  # class name -> loss weight
    tuning: dict = dataclasses.field(default_factory=dict)  # how CPU fusion was chosen
    plan: dict = dataclasses.field(default_factory=dict)  # what app.training.budget chose, and why
    schedule: dict = dataclasses.field(default_factory=dict)  # steps per epoch, total, warm-up

    def with_cpu_fusion(self, fused: bool, record: dict) -> RunConfig:
        """What `--cpu-fusion` came to ("on" or "off") and how it was chosen."""
        settings = dataclasses.replace(self.settings, cpu_fusion="on" if fused else "off")
        return dataclasses.replace(self, settings=settings, cpu_fusion=fused,
                                   tuning={**self.tuning, "cpu_fusion": record})

    def with_class_weights(self, weights: dict[str, float]) -> RunConfig:
        return dataclasses.replace(self, class_weights=dict(weights))

    def with_plan(self, plan: dict, **values) -> RunConfig:
        """Add what planning chose (`values`: TrainConfig fields, e.g. max_seq_length) and why."""
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, **values),
                                   plan={**self.plan, **plan})

    def with_regime(self, regime: str, why: str) -> RunConfig:
        """What `--regime` came to, and why; the contrastive regime's head reads the mean-pooled
        embedding its pairs train (`--pooling mean`)."""
        pooling = "mean" if regime == "contrastive" else self.settings.pooling
        settings = dataclasses.replace(self.settings, regime=regime, pooling=pooling)
        return dataclasses.replace(self, settings=settings, plan={**self.plan, "regime": why})

    def with_data(self, columns: dict[str, str], classes: list[str], steps_per_epoch: int,
                  multi_label: bool = False) -> RunConfig:
        """Add what reading the data decided: the table columns, the task (and for it the head's
        learning rate factor and the epochs, unless given), the class names, the schedule's steps."""
        s = self.settings
        label_column = None if s.label_columns else columns.get("label", s.label_column)
        head_factor = s.head_learning_rate_factor or (MULTI_LABEL_HEAD_FACTOR if multi_label else 1.0)
        epochs = (MULTI_LABEL_EPOCHS if multi_label and not self.requested.epochs and not s.time_budget
                  else s.epochs)
        settings = dataclasses.replace(s, text_column=columns.get("text", s.text_column),
                                       label_column=label_column, head_learning_rate_factor=head_factor,
                                       epochs=epochs,
                                       task="multi-label" if multi_label else "single-label",
                                       header=columns.get("header", s.header),
                                       text_pair_column=columns.get("text_pair", s.text_pair_column))
        total = steps_per_epoch * settings.epochs
        # A budget's plan may give more epochs than it expects to train (the deadline ends the
        # run): the warm-up is a share of the steps expected.
        expected = steps_per_epoch * min(settings.epochs, self.plan.get("expected_epochs", settings.epochs))
        schedule = {"steps_per_epoch": steps_per_epoch, "total_steps": total,
                    "warmup_steps": min(total, int(round(expected * settings.warmup_fraction)))}
        return dataclasses.replace(self, settings=settings, classes=list(classes), schedule=schedule)

    def to_dict(self) -> dict:
        return {f.name: dataclasses.asdict(getattr(self, f.name)) if dataclasses.is_dataclass(
            getattr(self, f.name)) else getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def default_hyperparameters(hidden_size: int) -> tuple[int, float]:
    """(global batch size, peak learning rate) by encoder width, as BERT fine-tuning recipes do:
    small encoders tolerate larger steps; large ones need smaller steps and batches."""
    if hidden_size and hidden_size <= 512:
        return 32, 1e-4
    if hidden_size and hidden_size > 768:
        return 16, 2e-5
    return 32, 3e-5


def resolve(cfg: TrainConfig, hardware: Hardware, find_encoder) -> RunConfig:
    """Choose every value `cfg` leaves to the encoder and the hardware; refuse combinations that
    cannot run. `find_encoder(name, preprocess, compute_dtype=...)` gives the `EncoderSpec`:
    `app.model.encoders.resolve` (which converts the offline encoder on first use), passed in so
    that the config imports no later stage; tests pass their own."""
    from app import runtime
    if cfg.time_budget and hardware.strategy == "MultiWorkerMirroredStrategy":
        raise ValueError("--time-budget needs one machine: the workers of a cluster would each stop on "
                         "their own clock; give --epochs instead")
    want_bf16 = cfg.mixed_precision == "bf16" or (cfg.mixed_precision == "auto" and hardware.fast_bfloat16)
    spec = find_encoder(cfg.encoder, cfg.preprocess, compute_dtype="bfloat16" if want_bf16 else "float32")
    # Keras policies do not reach inside a hub.KerasLayer: the encoder computes in the dtype
    # saved in its SavedModel, which is what precision means here.
    if cfg.mixed_precision == "bf16" and spec.compute_dtype != "bfloat16":
        raise ValueError(f"--mixed-precision bf16: encoder {spec.name} computes in {spec.compute_dtype} as "
                         "saved; convert it with python -m app.convert --compute-dtype bfloat16")
    if cfg.mixed_precision == "none" and spec.compute_dtype != "float32":
        raise ValueError(f"--mixed-precision none: encoder {spec.name} was converted to compute in "
                         f"{spec.compute_dtype}; convert it again without --compute-dtype")
    jit = cfg.jit_compile if cfg.jit_compile is not None else hardware.device != "CPU"
    if cfg.cpu_fusion == "on" and (jit or not hardware.cpu_fusion):
        raise ValueError("--cpu-fusion on: " + ("--jit-compile already compiles the whole step" if jit else
                         "this process has no CPU fusion flags (BERTCLF_CPU_FUSION=0, your own "
                         "TF_XLA_FLAGS, or a TF_CONFIG cluster; app.runtime)"))
    if cfg.max_seq_length is not None and cfg.max_seq_length > spec.max_seq_length:
        raise ValueError(f"--max-seq-length {cfg.max_seq_length} is above the encoder's limit "
                         f"of {spec.max_seq_length} positions")
    batch_default, lr_default = default_hyperparameters(spec.hidden_size)
    batch_size = cfg.batch_size or batch_default
    if batch_size % hardware.replicas:
        raise ValueError(f"--batch-size {batch_size} is global and must divide by the "
                         f"{hardware.replicas} replicas of the {hardware.strategy}")
    on_tpu = hardware.device == "TPU"
    strategy = {"TPUStrategy": "tpu", "MultiWorkerMirroredStrategy": "multi-worker",
                "MirroredStrategy": "mirrored"}.get(hardware.strategy, hardware.device.lower())
    settings = dataclasses.replace(
        cfg,
        # With a budget the planner chooses the epochs (app.training.budget), unless they were given.
        epochs=cfg.epochs or (None if cfg.time_budget else DEFAULT_EPOCHS),
        # With a budget the deadline ends training, unless a patience was given (DEFAULT_PATIENCE).
        patience=cfg.patience if cfg.patience is not None else None if cfg.time_budget else DEFAULT_PATIENCE,
        batch_size=batch_size,
        learning_rate=cfg.learning_rate or lr_default,
        mixed_precision="bf16" if spec.compute_dtype == "bfloat16" else "none",
        jit_compile=jit,
        # TPUs want one static shape; elsewhere short texts should not pay for padding.
        length_buckets=cfg.length_buckets if cfg.length_buckets is not None else not on_tpu,
        preprocess=spec.preprocess,
        # A bag of words cannot compare two texts: no n-gram model for text pairs.
        ngram_model=cfg.ngram_model and cfg.text_pair_column is None,
        strategy=strategy,
        run_dir=str(cfg.resolved_run_dir),
    )
    converter_record = Path(spec.encoder).parent / "bertclf_convert.json"
    converter = {}
    if "://" not in spec.encoder and converter_record.is_file():
        meta = json.loads(converter_record.read_text())
        converter = {k: meta.get(k) for k in ("checkpoint", "seq_length", "compute_dtype", "implementation",
                                              "pooled_only", "fingerprint", "lower_case", "strip_accents")}
    return RunConfig(settings=settings, requested=cfg, hardware=hardware, encoder=spec, converter=converter,
                          # Without jit_compile, XLA can still fuse the element-wise ops (app.runtime);
                          # with --cpu-fusion auto, app.train measures whether it pays (app.training.tuning).
                          cpu_fusion=not jit and hardware.cpu_fusion and cfg.cpu_fusion != "off",
                          drop_remainder=on_tpu,
                          versions=runtime.versions())
