"""The fit stage: `model.fit` with the run folder's callbacks, resumable after a kill at any step.

A run folder (`RUN_DIR`) holds `history.csv` / `history.json`, TensorBoard logs, the best
checkpoint (`checkpoints/best/`, by validation accuracy) and, while training, `backup/`
(`app.training.backup`): a backup every `--backup-every` steps or minutes and at each epoch's end. Running
the same command after the process was killed resumes at the step after the last backup, with
the same data order (each epoch's order is a function of the seed and the epoch, and the batches
the backup had trained are skipped), learning-rate schedule, early-stopping state and best
checkpoint. (Dropout draws fresh masks after a resume: the random state inside an encoder's
SavedModel cannot be saved.)
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import tensorflow as tf

from app import runtime
from app.training import backup

logger = logging.getLogger(__name__)

MONITOR = "val_accuracy"  # single-label; multi-label runs monitor MULTI_LABEL_MONITOR
MULTI_LABEL_MONITOR = "val_f1"  # micro F1 at the 0.5 threshold (the thresholds are tuned after)


def backup_store(run_dir: Path, worker: str = "") -> backup.Store:
    """The run's backups; `worker` names a non-chief worker of a cluster, which keeps its own
    (every worker takes part in writing a checkpoint of distributed variables)."""
    return backup.Store(Path(run_dir) / worker / "backup")


def best_store(run_dir: Path, worker: str = "") -> backup.Store:
    return backup.Store(Path(run_dir) / worker / "checkpoints" / "best", "best checkpoint")


def has_backup(run_dir: Path) -> bool:
    """Whether a backup is waiting: a run that was killed or interrupted, to be resumed."""
    return backup_store(run_dir).latest() is not None


def best_checkpoint(run_dir: Path) -> str | None:
    """The prefix of the best epoch's weights (`model.load_weights`), or None."""
    latest = best_store(run_dir).latest()
    return latest[0] if latest else None


def fit(model: tf.keras.Model, train_epoch: Callable[[int], tf.data.Dataset], steps_per_epoch: int,
        val_ds: tf.data.Dataset, run_dir: Path, epochs: int, patience: int | None, cpu_fusion: bool,
        callbacks: list | None = None, deadline: Deadline | None = None,
        class_weight: dict[int, float] | None = None, monitor: str = MONITOR,
        backup_every: backup.Every | None = None, interrupt: backup.Interrupt | None = None,
        worker: str = "") -> tuple[pd.DataFrame, dict]:
    """Train, keep the best epoch's weights in `model`, and return (the history, one row an
    epoch; what the backups cost).

    `train_epoch(e)` is epoch e's training data, `steps_per_epoch` batches, the same whenever it
    is built. `callbacks` are Keras callbacks added after the run's own (before the backup);
    a `deadline` stops training in time (`--time-budget`), and a resumed run counts the seconds
    its earlier processes spent. `patience` epochs without a better `monitor` stop it early (None:
    never; a budget's deadline ends it). `class_weight` (class index -> weight) weights each
    example's loss by its class. The best checkpoint and early stopping follow `monitor`. An `interrupt`
    (`backup.interrupts`) raises `backup.Interrupted` after a backup. `worker` is a non-chief
    worker's sub-folder for its own checkpoints.
    """
    backup_every = backup_every or backup.parse_every(backup.DEFAULT_EVERY)
    history_csv = run_dir / "history.csv"
    store, best = backup_store(run_dir, worker), best_store(run_dir, worker)
    saver = Backup(store, backup_every, steps_per_epoch, interrupt, deadline)
    record = saver.restore(model)
    start_epoch, start_step = (int(record["epoch"]), int(record["step"])) if record else (0, 0)
    done = _read_history(history_csv) if record and history_csv.exists() else pd.DataFrame()
    if "epoch" in done:  # epochs the backup had finished (a later row died with its process)
        done = done[done["epoch"] < start_epoch]
    finished_values = [float(v) for v in done[monitor]] if monitor in done else []
    if record:
        logger.info("resuming at epoch %d, step %d of %d (from the backup of %s)", start_epoch + 1,
                    start_step + 1, steps_per_epoch, record.get("saved", "?"))
        if deadline is not None:
            deadline.spent = float(record.get("train_seconds", 0.0))
    stopping = ResumableEarlyStopping(finished_values, monitor=monitor, mode="max",
                                      patience=epochs + 1 if patience is None else patience)
    all_callbacks = [
        *([deadline] if deadline is not None else []),  # before the loggers: it adds train_seconds
        BestCheckpoint(best, monitor, max(finished_values) if finished_values else None),
        stopping,
        tf.keras.callbacks.CSVLogger(str(history_csv), append=record is not None),
        tf.keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        *(callbacks or []),
        saver,  # last: a step or an epoch is backed up after everything else has seen it
    ]
    if start_epoch < epochs and not stopping.stopped_before(start_step):
        stream = train_epoch(start_epoch).skip(start_step)
        for epoch in range(start_epoch + 1, epochs):
            stream = stream.concatenate(train_epoch(epoch))
        # Keras asks a model's training state where to start (the hook of its own
        # BackupAndRestore); given steps_per_epoch it reads the one stream across epochs.
        model._training_state = _StartAt(start_epoch, start_step)
        try:
            with runtime.cpu_fusion(cpu_fusion):
                model.fit(stream, validation_data=val_ds, epochs=epochs, initial_epoch=start_epoch,
                          steps_per_epoch=steps_per_epoch, callbacks=all_callbacks, class_weight=class_weight,
                          verbose=1 if sys.stdout.isatty() else 2)
        finally:
            model._training_state = None
    store.clear()  # the run is trained: what is left of it is the best checkpoint
    prefix = best.latest()
    if prefix is not None:
        model.load_weights(prefix[0])
    history = _read_history(history_csv) if history_csv.exists() else pd.DataFrame()
    (run_dir / "history.json").write_text(history.to_json(orient="records", indent=2))
    cost = {"backup_every": str(backup_every), "backups": saver.count,
            "backup_seconds": round(saver.seconds, 1)}
    return history, cost


class _StartAt:
    """The (epoch, step) `model.fit` starts at: what Keras reads from a model's training state."""

    def __init__(self, epoch: int, step: int):
        self.epoch, self.step = epoch, step

    def maybe_load_initial_counters_from_ckpt(self, steps_per_epoch, initial_epoch, mode=None):
        return self.epoch, self.step


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


class BestCheckpoint(tf.keras.callbacks.Callback):
    """The weights of the epoch with the best `monitor` so far (higher is better), written
    atomically (`backup.Store`): a kill or a full disk while writing keeps the previous best."""

    def __init__(self, store: backup.Store, monitor: str, best: float | None = None):
        super().__init__()
        self.store, self.monitor, self.best = store, monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or (self.best is not None and value <= self.best):
            return
        self.best = float(value)
        self.store.save(self.model.save_weights, {"epoch": epoch + 1, "step": 0, self.monitor: self.best})


class ResumableEarlyStopping(tf.keras.callbacks.EarlyStopping):
    """EarlyStopping that starts from the epochs a resumed run had finished (their monitored
    values), as if it had seen them."""

    def __init__(self, finished: list[float], **kwargs):
        super().__init__(**kwargs)
        self.finished = finished

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for epoch, value in enumerate(self.finished):
            self.wait += 1
            if self._is_improvement(value, self.best):
                self.best, self.best_epoch, self.wait = value, epoch, 0

    def stopped_before(self, step: int) -> bool:
        """Whether the finished epochs had already stopped the run (a kill after its last
        epoch's backup)."""
        if step or not self.finished:
            return False
        self.on_train_begin()
        return self.wait >= self.patience and len(self.finished) > 1


class Backup(tf.keras.callbacks.Callback):
    """Backs the run up inside epochs and at their ends; stops it cleanly on an interrupt.

    A backup records the next step to run (`epoch`, `step` inside it) and `train_seconds`, the
    budget seconds used (`deadline`). Place it after the callbacks that finish an epoch (history,
    best checkpoint), so that an end-of-epoch backup comes after what the epoch wrote.
    """

    def __init__(self, store: backup.Store, every: backup.Every, steps_per_epoch: int,
                 interrupt: backup.Interrupt | None = None, deadline=None):
        super().__init__()
        self.store = store
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.interrupt = interrupt or backup.Interrupt()
        self.deadline = deadline
        self.count = 0
        self.seconds = 0.0  # spent writing backups
        self._epoch = 0
        self._finishing = False  # interrupted at an epoch's last step: its validation runs first
        self._since = 0
        self._last = time.monotonic()


    def on_train_begin(self, logs=None):
        self._last = time.monotonic()  # minutes of training, not of start-up

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._finishing = False

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1  # Keras passes the index of the epoch's last step that ran
        self._since += 1
        last_of_epoch = done >= self.steps_per_epoch
        if self.interrupt.signum and last_of_epoch:  # validate, then the epoch-end backup and stop
            self._finishing = True
        elif self.interrupt.signum:
            self._backup(self._epoch, done)
            self._stop(f"interrupted at epoch {self._epoch + 1}, step {done}")
        due = (self._since >= self.every.steps if self.every.steps
               else time.monotonic() - self._last >= self.every.seconds)
        if due and not last_of_epoch:
            self._backup(self._epoch, done)

    def on_test_batch_end(self, batch, logs=None):
        if self.interrupt.signum and not self._finishing:  # while validating: the last backup stands
            latest = self.store.latest()
            self._stop(f"interrupted while validating epoch {self._epoch + 1}; the backup at "
                       f"{backup.describe(latest[1]) if latest else 'the start'} stands")

    def on_epoch_end(self, epoch, logs=None):
        self._backup(epoch + 1, 0)
        if self.interrupt.signum:
            self._stop(f"interrupted at the end of epoch {epoch + 1}")

    def _backup(self, epoch: int, step: int) -> None:
        start = time.monotonic()
        record = {"epoch": int(epoch), "step": int(step), "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "iterations": int(self.model.optimizer.iterations.numpy())}
        if self.deadline is not None:
            record["train_seconds"] = round(self.deadline.elapsed(), 1)
        self.store.save(_training_checkpoint(self.model).write, record)
        seconds = time.monotonic() - start
        logger.info("backed up at %s in %.1f s", backup.describe(record), seconds)
        self.seconds += seconds
        self.count += 1
        self._since = 0
        self._last = time.monotonic()

    def _stop(self, where: str) -> None:
        raise backup.Interrupted(self.interrupt.signum,
                          f"{where} ({self.interrupt.name}); run the same command to resume")

    def restore(self, model: tf.keras.Model) -> dict | None:
        """Load the latest backup into `model` (and its optimizer); its record, or None."""
        latest = self.store.latest()
        if latest is None:
            return None
        prefix, record = latest
        model.optimizer.build(model.trainable_variables)  # so that its slots exist to be restored
        _training_checkpoint(model).read(prefix).assert_existing_objects_matched()
        return record


def _training_checkpoint(model: tf.keras.Model) -> tf.train.Checkpoint:
    """What a backup holds: the weights and the optimizer's state (its step count and slots)."""
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer)


class Deadline(tf.keras.callbacks.Callback):
    """Keeps `model.fit` within `budget_seconds` from `started` (a `time.monotonic()` reading).

    After each step it stops training if the time left would not cover one more step and the
    validation that follows (Keras validates after a stop inside an epoch too, and the best
    checkpoint keeps the best validated weights); `validation_seconds` is the plan's estimate
    of one validation until one has been timed; the time of `reserve_validations` more (the
    slowest timed, which traced the model) is kept for work after fit (the n-gram weight's pass
    over the validation split), and `reserve_seconds` for the rest of it (self-training's pass over
    the unlabelled texts). It sets `clock`, the learning-rate schedule's
    share of the training time used (`app.training.optimization.WarmupLinearDecay`), and adds the budget
    seconds used so far to each epoch's logs as `train_seconds` (history.csv), so a resumed run
    goes on counting. `validations`: how many validations the clock expects (the epochs the plan
    estimates, which may be fewer than the `epochs` planned; all of them by default).
    """

    def __init__(self, budget_seconds: float, started: float, validation_seconds: float, epochs: int,
                 clock: tf.Variable | None = None, reserve_validations: int = 0,
                 validations: int | None = None, reserve_seconds: float = 0.0):
        super().__init__()
        self.reserve_seconds = reserve_seconds
        self.validations = epochs if validations is None else validations
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
        return (self.reserve_validations * max(self.validation_seconds, self._validation_slowest)
                + self.reserve_seconds)

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
            validating = self.validations * self.validation_seconds
            training_time = max(self.budget - self.reserve() - validating, 1e-3)
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
