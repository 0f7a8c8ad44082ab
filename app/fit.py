"""The fit stage: `model.fit` with the run folder's callbacks, resumable after a kill.

A run folder (`RUN_DIR`) holds `history.csv` / `history.json`, TensorBoard logs, the best
checkpoint (`checkpoints/best`, by validation accuracy) and, while training, `backup/`
(Keras' `BackupAndRestore`): running the same command after the process was killed resumes
from the last finished epoch.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import tensorflow as tf

from app import runtime

logger = logging.getLogger(__name__)

MONITOR = "val_accuracy"  # single-label; multi-label runs monitor MULTI_LABEL_MONITOR
MULTI_LABEL_MONITOR = "val_f1"  # micro F1 at the 0.5 threshold (the thresholds are tuned after)


def has_backup(run_dir: Path) -> bool:
    """Whether BackupAndRestore left a checkpoint: a killed run waiting to be resumed."""
    return any((run_dir / "backup").rglob("checkpoint"))


def fit(model: tf.keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, run_dir: Path,
        epochs: int, patience: int, cpu_fusion: bool, callbacks: list | None = None,
        deadline: Deadline | None = None, class_weight: dict[int, float] | None = None,
        monitor: str = MONITOR) -> pd.DataFrame:
    """Train, keep the best epoch's weights in `model`, and return the history (one row an epoch).

    `callbacks` are Keras callbacks added after the run's own; a `deadline` stops training in
    time (`--time-budget`), and a resumed run counts the seconds its earlier epochs spent.
    `class_weight` (class index -> weight) weights each example's loss by its class. The best
    checkpoint and early stopping follow `monitor`.
    """
    history_csv = run_dir / "history.csv"
    best_path = run_dir / "checkpoints" / "best"
    resuming = has_backup(run_dir)
    if deadline is not None and resuming:
        deadline.spent = _spent_so_far(history_csv)
    all_callbacks = [
        tf.keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        ResumeNotice(),
        *([deadline] if deadline is not None else []),  # before the loggers: it adds train_seconds
        tf.keras.callbacks.ModelCheckpoint(
            str(best_path), monitor=monitor, mode="max", save_best_only=True, save_weights_only=True,
            initial_value_threshold=_best_so_far(history_csv, monitor) if resuming else None),
        tf.keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=patience),
        tf.keras.callbacks.CSVLogger(str(history_csv), append=resuming),
        tf.keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        *(callbacks or []),
    ]
    with runtime.cpu_fusion(cpu_fusion):
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=all_callbacks,
                  class_weight=class_weight, verbose=1 if sys.stdout.isatty() else 2)
    # BackupAndRestore deleted its checkpoint when fit ended normally; drop the empty folder.
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    if best_path.with_suffix(".index").exists():
        model.load_weights(str(best_path))
    history = _read_history(history_csv) if history_csv.exists() else pd.DataFrame()
    (run_dir / "history.json").write_text(history.to_json(orient="records", indent=2))
    return history


def _best_so_far(history_csv: Path, monitor: str = MONITOR) -> float | None:
    """Best monitored value of the epochs a resumed run already finished."""
    if not history_csv.exists() or history_csv.stat().st_size == 0:
        return None
    frame = _read_history(history_csv)
    return float(frame[monitor].max()) if monitor in frame and len(frame) else None


def _spent_so_far(history_csv: Path) -> float:
    """Budget seconds the finished epochs of a resumed run used (their last `train_seconds`)."""
    if not history_csv.exists() or history_csv.stat().st_size == 0:
        return 0.0
    frame = _read_history(history_csv)
    return float(frame["train_seconds"].max()) if "train_seconds" in frame and len(frame) else 0.0


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


class ResumeNotice(tf.keras.callbacks.Callback):
    """Says when BackupAndRestore resumed a run, and from which epoch."""

    def __init__(self):
        super().__init__()
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first and epoch > 0:
            logger.info("resuming from epoch %d (epochs 1-%d were restored from the backup)",
                        epoch + 1, epoch)
        self._first = False


class Deadline(tf.keras.callbacks.Callback):
    """Keeps `model.fit` within `budget_seconds` from `started` (a `time.monotonic()` reading).

    After each step it stops training if the time left would not cover one more step and the
    validation that follows (Keras validates after a stop inside an epoch too, and the best
    checkpoint keeps the best validated weights); `validation_seconds` is the plan's estimate
    of one validation until one has been timed; the time of `reserve_validations` more (the
    slowest timed, which traced the model) is kept for work after fit (the n-gram weight's pass
    over the validation split). It sets `clock`, the learning-rate schedule's
    share of the training time used (`app.optimization.WarmupLinearDecay`), and adds the budget
    seconds used so far to each epoch's logs as `train_seconds` (history.csv), so a resumed run
    goes on counting.
    """

    def __init__(self, budget_seconds: float, started: float, validation_seconds: float, epochs: int,
                 clock: tf.Variable | None = None, reserve_validations: int = 0):
        super().__init__()
        self.budget = budget_seconds
        self.reserve_validations = reserve_validations
        self.started = started
        self.validation_seconds = validation_seconds
        self.epochs = epochs
        self.clock = clock
        self.spent = 0.0  # by the epochs of an earlier, killed process (set by `fit`)
        self.stopped_early = False
        self.steps = 0
        self._validating = 0.0  # seconds spent validating in this process
        self._validation_slowest = 0.0
        self._step_seconds = 0.0
        self._step_start = self._validation_start = 0.0

    def reserve(self) -> float:
        return self.reserve_validations * max(self.validation_seconds, self._validation_slowest)

    @property
    def validation_total(self) -> float:
        """Seconds this process spent validating."""
        return self._validating

    def elapsed(self) -> float:
        return self.spent + time.monotonic() - self.started

    def on_train_batch_begin(self, batch, logs=None):
        self._step_start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        step = time.monotonic() - self._step_start
        self.steps += 1
        # The slowest recent step, decaying: the first steps of each new shape compile.
        self._step_seconds = max(step, 0.9 * self._step_seconds)
        if self.clock is not None:
            training_time = max(self.budget - self.reserve() - self.epochs * self.validation_seconds, 1e-3)
            used = self.elapsed() - self._validating
            self.clock.assign(min(1.0, max(0.0, used / training_time)))
        if self.budget - self.reserve() - self.elapsed() < self.validation_seconds + self._step_seconds:
            self._stop(f"{self.elapsed():.0f} of {self.budget:.0f} s used; validating and stopping")

    def on_test_begin(self, logs=None):
        self._validation_start = time.monotonic()

    def on_test_end(self, logs=None):
        seconds = time.monotonic() - self._validation_start
        self._validating += seconds
        self.validation_seconds = seconds
        self._validation_slowest = max(self._validation_slowest, seconds)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["train_seconds"] = round(self.elapsed(), 1)
        # What the next epoch could train for, after its validation.
        left = self.budget - self.reserve() - self.elapsed() - self.validation_seconds
        if not self.model.stop_training and epoch + 1 < self.epochs and left < 2 * self._step_seconds:
            self._stop(f"{self.elapsed():.0f} of {self.budget:.0f} s used; no time for another epoch")

    def _stop(self, why: str) -> None:
        if not self.model.stop_training:
            logger.info("time budget: %s", why)
        self.model.stop_training = True
        self.stopped_early = True
