"""Fine-tune a TF-Hub BERT encoder for text classification, then export and evaluate it.

    python -m app.train                              # offline MiniLM on the bundled sample
    python -m app.train --data ~/aclImdb --epochs 2  # your data; all flags: --help

A run lives in `runs/MODEL_NAME/` (or `--run-dir`): config.json, TensorBoard logs, per-epoch
history.csv / history.json, the best checkpoint and a backup. Running the same command after
the process was killed resumes from the last finished epoch. At the end the best model is
exported to `OUTPUT_DIR/MODEL_NAME/VERSION/` for TF Serving and evaluated on the test split
(validation when there is none) into `RUN_DIR/report/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
import tensorflow as tf

from app import config as config_mod
from app import configure_logging, cpu_fusion, cpu_fusion_enabled, data, distribute, encoders
from app.evaluate import evaluate_export
from app.export import export_model
from app.model import build_classifier
from app.optimization import create_optimizer

logger = logging.getLogger("app.train")


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    export_dir: Path | None
    report_dir: Path | None
    report: dict | None


def default_hyperparameters(hidden_size: int) -> tuple[int, float]:
    """(global batch size, peak learning rate) by encoder width, as BERT fine-tuning recipes do:
    small encoders tolerate larger steps; large ones need smaller steps and batches."""
    if hidden_size and hidden_size <= 512:
        return 32, 1e-4
    if hidden_size and hidden_size > 768:
        return 16, 2e-5
    return 32, 3e-5


def choose_precision(requested: str, offline_encoder: bool, fast_bfloat16: bool) -> str:
    """Resolve `--mixed-precision auto`: bf16 only where it pays and reaches the encoder.

    Keras policies do not reach inside a hub.KerasLayer, so only an encoder with bfloat16 compute
    baked into its SavedModel gains; the offline encoder has such a variant.
    """
    if requested != "auto":
        return requested
    return "bf16" if offline_encoder and fast_bfloat16 else "none"


def _has_backup(run_dir: Path) -> bool:
    """Whether BackupAndRestore left a checkpoint: a killed run waiting to be resumed."""
    return any((run_dir / "backup").rglob("checkpoint"))


def _prepare_run_dir(cfg: config_mod.TrainConfig) -> Path:
    """Create the run folder; refuse to resume a backup that another config wrote."""
    run_dir = cfg.resolved_run_dir
    saved = run_dir / "config.json"
    if _has_backup(run_dir) and saved.exists():
        previous = json.loads(saved.read_text())
        current = json.loads(cfg.to_json())
        differ = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if differ:
            raise ValueError(
                f"--run-dir {run_dir} holds an unfinished run with different settings ({differ}); "
                "run the same command to resume it, or choose another --run-dir / --model-name"
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(cfg.to_json())
    except OSError as e:
        raise ValueError(f"--run-dir {run_dir}: cannot write ({e.strerror})") from e
    return run_dir


def _best_so_far(history_csv: Path, monitor: str) -> float | None:
    """Best monitored value of the epochs a resumed run already finished."""
    if not history_csv.exists() or history_csv.stat().st_size == 0:
        return None
    frame = _read_history(history_csv)
    return float(frame[monitor].max()) if monitor in frame and len(frame) else None


def _read_history(history_csv: Path) -> pd.DataFrame:
    """history.csv without a row cut short by a kill, rewritten clean so appends stay aligned."""
    try:
        frame = pd.read_csv(history_csv, on_bad_lines="skip").dropna()
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        frame = pd.DataFrame()
    if "epoch" in frame:
        frame = frame.astype({"epoch": int}).drop_duplicates("epoch", keep="last")
    frame.to_csv(history_csv, index=False)
    return frame


def run(cfg: config_mod.TrainConfig, callbacks: list | None = None) -> RunResult:
    """Everything after the config: data -> model -> fit -> export -> report.

    `callbacks` are Keras callbacks added after the run's own (backup, checkpoint, logs).
    """
    run_dir = _prepare_run_dir(cfg)
    # Strategy first: multi-worker and TPU set-up must precede other TensorFlow work.
    strategy, why = distribute.choose_strategy(cfg.strategy, cfg.tpu)
    replicas = strategy.num_replicas_in_sync
    logger.info("strategy %s with %d replica(s): %s", distribute.strategy_name(strategy), replicas, why)
    tf.keras.utils.set_random_seed(cfg.seed)

    registered = encoders.REGISTRY.get(cfg.encoder)
    offline = bool(registered and registered.offline)
    precision = choose_precision(cfg.mixed_precision, offline,
                                 distribute.has_fast_bfloat16(strategy) if cfg.mixed_precision == "auto"
                                 else False)
    spec = encoders.resolve(cfg.encoder, cfg.preprocess,
                            compute_dtype="bfloat16" if precision == "bf16" and offline else "float32")
    if precision != "none" and not (offline and precision == "bf16"):
        logger.warning("--mixed-precision %s reaches the classifier head only: %s computes in the dtype "
                       "saved in its SavedModel (app.convert --compute-dtype bfloat16 bakes one in)",
                       precision, spec.name)
    if cfg.max_seq_length > spec.max_seq_length:
        raise ValueError(f"--max-seq-length {cfg.max_seq_length} is above the encoder's limit "
                         f"of {spec.max_seq_length} positions")
    batch_default, lr_default = default_hyperparameters(spec.hidden_size)
    batch_size = cfg.batch_size or batch_default
    learning_rate = cfg.learning_rate or lr_default
    if batch_size % replicas:
        raise ValueError(f"--batch-size {batch_size} is global and must divide by the "
                         f"{replicas} replicas of the {distribute.strategy_name(strategy)}")
    jit = cfg.jit_compile if cfg.jit_compile is not None else distribute.uses_accelerator(strategy)
    # Without jit_compile, XLA still fuses the element-wise ops (app/__init__.py, app.cpu_fusion).
    fusion = not jit and cpu_fusion_enabled()
    logger.info("encoder %s; batch %d, learning rate %g, seq length %d, jit_compile %s, CPU fusion %s",
                spec.name, batch_size, learning_rate, cfg.max_seq_length, jit, fusion)

    dataset = data.load_dataset(
        cfg.data_source, cfg.test_data, cfg.text_column, cfg.label_column, cfg.validation_split,
        cfg.max_train_examples, cfg.max_eval_examples, cfg.seed)
    for warning in dataset.warnings:
        logger.warning("data: %s", warning)
    classes = dataset.classes
    (run_dir / "classes.json").write_text(json.dumps(classes))
    tokenizer = data.Tokenizer(spec.preprocess, cfg.max_seq_length, cfg.truncation)
    on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    # TPUs want one static shape; elsewhere short texts should not pay for padding.
    buckets = cfg.length_buckets if cfg.length_buckets is not None else not on_tpu
    logger.info("length buckets %s", buckets)
    train = dataset.splits["train"]
    if len(train) < batch_size:
        raise ValueError(f"--batch-size {batch_size} is larger than the {len(train)} training examples")
    train_ds = data.make_tf_dataset(train.texts, dataset.label_ids("train"), tokenizer, batch_size,
                                    shuffle=True, seed=cfg.seed, drop_remainder=on_tpu,
                                    length_buckets=buckets)
    val_ds = data.make_tf_dataset(dataset.splits["validation"].texts, dataset.label_ids("validation"),
                                  tokenizer, batch_size, drop_remainder=on_tpu, cache=True,
                                  length_buckets=buckets)
    steps_per_epoch = int(train_ds.cardinality())
    total_steps = steps_per_epoch * cfg.epochs

    logger.info("mixed precision: %s%s", precision, " (auto)" if cfg.mixed_precision == "auto" else "")
    head_policy = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}.get(precision, "float32")
    previous_policy = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(head_policy)  # for layers built below only
    with strategy.scope():
        model = build_classifier(spec.encoder, len(classes), cfg.dropout,
                                 None if buckets else cfg.max_seq_length, cfg.model_name,
                                 pooled_only=spec.pooled_only)
        optimizer = create_optimizer(learning_rate, total_steps, cfg.warmup_fraction, cfg.weight_decay,
                                     cfg.clip_norm)
        model.compile(
            optimizer=optimizer,
            loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=jit,
            steps_per_execution=cfg.steps_per_execution,
        )
    tf.keras.mixed_precision.set_global_policy(previous_policy)

    monitor = "val_accuracy"
    history_csv = run_dir / "history.csv"
    best_path = run_dir / "checkpoints" / "best"
    resuming = _has_backup(run_dir)
    all_callbacks = [
        tf.keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        ResumeNotice(),
        tf.keras.callbacks.ModelCheckpoint(
            str(best_path), monitor=monitor, mode="max", save_best_only=True, save_weights_only=True,
            initial_value_threshold=_best_so_far(history_csv, monitor) if resuming else None),
        tf.keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=cfg.patience),
        tf.keras.callbacks.CSVLogger(str(history_csv), append=resuming),
        tf.keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        *(callbacks or []),
    ]
    logger.info("training on %d examples (%d steps/epoch, %d epochs); validating on %d",
                len(train), steps_per_epoch, cfg.epochs, len(dataset.splits["validation"]))
    with cpu_fusion(fusion):
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=all_callbacks,
                  verbose=1 if sys.stdout.isatty() else 2)

    # BackupAndRestore deleted its checkpoint when fit ended normally; drop the empty folder.
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    if best_path.with_suffix(".index").exists():
        model.load_weights(str(best_path))
    history = _read_history(history_csv) if history_csv.exists() else pd.DataFrame()
    (run_dir / "history.json").write_text(history.to_json(orient="records", indent=2))

    # Saving can run collective ops under MultiWorkerMirroredStrategy, so every worker exports;
    # only the chief keeps its export and writes the report.
    chief = distribute.is_chief()
    output_dir = cfg.output_dir if chief else tempfile.mkdtemp(prefix="bertclf-worker-export-")
    export_dir = export_model(model, tokenizer, classes, cfg.to_json(), output_dir, cfg.model_name,
                              cfg.version)
    if not chief:
        shutil.rmtree(output_dir, ignore_errors=True)
        return RunResult(run_dir, None, None, None)
    eval_name = "test" if "test" in dataset.splits else "validation"
    split = dataset.splits[eval_name]
    report_dir = run_dir / "report"
    report = evaluate_export(str(export_dir), split.texts, split.labels, split.ids, report_dir,
                             data=f"{cfg.data_source} ({eval_name} split)", history=history)
    (run_dir / "export_path.txt").write_text(f"{export_dir}\n")
    return RunResult(run_dir, export_dir, report_dir, report)


class ResumeNotice(tf.keras.callbacks.Callback):
    """Says when BackupAndRestore resumed a run, and from which epoch."""

    def __init__(self):
        super().__init__()
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first and epoch > 0:
            message = f"resuming from epoch {epoch + 1} (epochs 1-{epoch} were restored from the backup)"
            logger.info(message)
            print(message, flush=True)
        self._first = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    config_mod.add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        cfg = config_mod.build_config(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logger.info("config:\n%s", cfg.to_json())
    try:
        result = run(cfg)
    except ValueError as e:  # DataError included: the user's input, explained
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.export_dir is not None:
        r = result.report
        print(f"\nexported model: {result.export_dir}")
        print(f"report:         {result.report_dir / 'report.html'}")
        print(f"test accuracy {r['accuracy']:.4f}, macro F1 {r['macro_f1']:.4f} on {r['n_examples']} "
              f"examples ({r['data']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
