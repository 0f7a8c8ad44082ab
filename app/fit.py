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
from pathlib import Path

import pandas as pd
import tensorflow as tf

from app import runtime

logger = logging.getLogger(__name__)

MONITOR = "val_accuracy"


def has_backup(run_dir: Path) -> bool:
    """Whether BackupAndRestore left a checkpoint: a killed run waiting to be resumed."""
    return any((run_dir / "backup").rglob("checkpoint"))


def fit(model: tf.keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, run_dir: Path,
        epochs: int, patience: int, cpu_fusion: bool, callbacks: list | None = None) -> pd.DataFrame:
    """Train, keep the best epoch's weights in `model`, and return the history (one row an epoch).

    `callbacks` are Keras callbacks added after the run's own.
    """
    history_csv = run_dir / "history.csv"
    best_path = run_dir / "checkpoints" / "best"
    resuming = has_backup(run_dir)
    all_callbacks = [
        tf.keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        ResumeNotice(),
        tf.keras.callbacks.ModelCheckpoint(
            str(best_path), monitor=MONITOR, mode="max", save_best_only=True, save_weights_only=True,
            initial_value_threshold=_best_so_far(history_csv) if resuming else None),
        tf.keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience),
        tf.keras.callbacks.CSVLogger(str(history_csv), append=resuming),
        tf.keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        *(callbacks or []),
    ]
    with runtime.cpu_fusion(cpu_fusion):
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=all_callbacks,
                  verbose=1 if sys.stdout.isatty() else 2)
    # BackupAndRestore deleted its checkpoint when fit ended normally; drop the empty folder.
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    if best_path.with_suffix(".index").exists():
        model.load_weights(str(best_path))
    history = _read_history(history_csv) if history_csv.exists() else pd.DataFrame()
    (run_dir / "history.json").write_text(history.to_json(orient="records", indent=2))
    return history


def _best_so_far(history_csv: Path) -> float | None:
    """Best monitored value of the epochs a resumed run already finished."""
    if not history_csv.exists() or history_csv.stat().st_size == 0:
        return None
    frame = _read_history(history_csv)
    return float(frame[MONITOR].max()) if MONITOR in frame and len(frame) else None


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
