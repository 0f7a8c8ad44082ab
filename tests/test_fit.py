"""app.training.fit: a killed run resumes from its backup; a kill at any point still ends in a servable
export (the random kills run in `make test-slow`)."""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from app.training import backup, fit
from tests.conftest import (
    ENV,
    ROOT,
    assert_clear_failure,
    run_in_process,
    run_module,
    run_script,
    tiny_classifier,
    tiny_train_args,
)

_KILL_AFTER_FIRST_EPOCH = textwrap.dedent("""
    import argparse, os, signal, sys
    from app import config, runtime, train
    runtime.setup()
    import tensorflow as tf

    class KillAfterFirstEpoch(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):  # the first epoch's end is backed up by now
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    p = argparse.ArgumentParser(); config.add_arguments(p)
    train.run(config.build_config(p.parse_args(sys.argv[1:])), callbacks=[KillAfterFirstEpoch()])
""")


@pytest.mark.slow  # in the default tier: SIGTERM's resume below, and resumes in process at every point
def test_killed_run_resumes_from_backup(tiny_hub, tiny_reviews, tmp_path):
    args = tiny_train_args(tiny_hub, tiny_reviews, tmp_path, epochs=2, max_train_examples=80)
    first = run_script(_KILL_AFTER_FIRST_EPOCH, *args)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert fit.has_backup(tmp_path / "run")
    assert not (tmp_path / "models").exists()  # nothing exported, nothing created for it
    second = run_module("train", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming at epoch 2, step 1 of" in second.stderr
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [0, 1]  # epoch 1 not repeated
    assert (tmp_path / "models" / "tiny" / "1" / "saved_model.pb").is_file()
    assert not (tmp_path / "run" / "backup").exists()


def test_a_history_row_cut_short_by_a_kill_is_dropped(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,0.7,0.6,0.6\n1,0.8,0.4,0.9,0.3\n2,0.9")
    assert fit._read_history(history)["val_accuracy"].max() == 0.9
    assert pd.read_csv(history)["epoch"].tolist() == [0, 1]  # rewritten clean, so appends line up


def _kill_after(args: list[str], delay: float) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "app.train", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


def _survives_kills(tiny_hub, tiny_reviews, tmp: Path, delays: list[float]) -> dict:
    """Kill the same command at each delay, then run it to the end: it must finish and load."""
    args = tiny_train_args(tiny_hub, tiny_reviews, tmp, epochs=4)
    killed = sum(_kill_after(args, delay) == -signal.SIGKILL for delay in delays)
    final = run_module("train", *args)
    assert final.returncode == 0, final.stderr[-3000:]
    base = tmp / "models" / "tiny"
    versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
    assert versions, "no export after the final run"
    assert not list(base.glob(".tmp-*")), "a killed export's staging folder was left behind"
    for v in versions:  # every version TF Serving could see loads and answers
        loaded = tf.saved_model.load(str(base / str(v)))
        out = loaded.signatures["serving_default"](text=tf.constant(["good great film"]))
        assert out["probabilities"].shape == (1, 2)
    return {"kills": killed, "versions": versions}


@pytest.mark.slow
def test_training_survives_a_kill_at_a_random_point(tiny_hub, tiny_reviews, tmp_path):
    delay = random.Random(1).uniform(8, 25)
    assert _survives_kills(tiny_hub, tiny_reviews, tmp_path, [delay])["kills"] == 1


@pytest.mark.slow
def test_training_survives_ten_kills(tiny_hub, tiny_reviews, tmp_path):
    rng = random.Random(7)
    delays = [rng.uniform(6, 30) for _ in range(10)]  # start-up, epochs, checkpoints and export
    outcome = _survives_kills(tiny_hub, tiny_reviews, tmp_path, delays)
    print(f"kill delays {[round(d, 1) for d in delays]}: {outcome}")
    assert outcome["kills"] >= 8


# ----------------------------------------------------------------------------- inside epochs

# app.train with a callback that records each step as it ends (pid, epoch, step done) and the
# weights when training ends: argv[1] is the record's path prefix, the rest app.train's flags.
_RECORDED = textwrap.dedent("""
    import functools, os, sys, time
    import numpy as np
    from app import runtime, train
    runtime.setup()
    import tensorflow as tf

    class Record(tf.keras.callbacks.Callback):
        def __init__(self, path):
            super().__init__()
            self.path, self.epoch = path, 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            with open(self.path + ".steps", "a") as f:
                f.write(f"{os.getpid()} {self.epoch} {batch + 1}\\n")
            time.sleep(float(os.environ.get("STEP_SLEEP", "0")))  # time for a test to act mid-epoch

        def on_train_end(self, logs=None):
            np.savez(self.path + ".weights.npz", *self.model.get_weights())

    train.run = functools.partial(train.run, callbacks=[Record(sys.argv[1])])
    sys.exit(train.main(sys.argv[2:]))
""")


def _steps(record: Path) -> list[tuple[int, int, int]]:
    path = Path(f"{record}.steps")
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines() if line.count(" ") == 2]


def _trained(steps: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """The (epoch, step) sequence the final weights went through: a process that resumes at a
    step undoes what its predecessor did after its last backup."""
    out: list[tuple[int, int]] = []
    pid = None
    for p, epoch, step in steps:
        if p != pid:
            out = [s for s in out if s < (epoch, step)]
            pid = p
        out.append((epoch, step))
    return out


def _start(record: Path, args: list[str], log: Path, step_sleep: float) -> subprocess.Popen:
    with open(log, "ab") as err:
        return subprocess.Popen([sys.executable, "-c", _RECORDED, str(record), *args], cwd=ROOT,
                                env={**ENV, "STEP_SLEEP": str(step_sleep)}, stdout=subprocess.DEVNULL,
                                stderr=err)


def _wait_for_steps(proc: subprocess.Popen, record: Path, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(_steps(record)) < count:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (status {proc.returncode}) before step {count}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no step {count} within {timeout} s")
        time.sleep(0.02)


STEPS = 9  # an epoch of `_still_args`: 72 training examples (80 less the validation split) in 8s


def _still_args(tiny_hub_still, tiny_reviews, tmp: Path, **flags) -> list[str]:
    return tiny_train_args(tiny_hub_still, tiny_reviews, tmp, epochs=3, max_train_examples=80, dropout=0,
                           **flags)


@pytest.mark.slow
def test_a_run_killed_at_random_steps_trains_as_if_it_never_was(tiny_hub_still, tiny_reviews, tmp_path):
    args = _still_args(tiny_hub_still, tiny_reviews, tmp_path / "whole", backup_every=3)
    whole = run_script(_RECORDED, tmp_path / "whole-record", *args)
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = _trained(_steps(tmp_path / "whole-record"))
    assert expected == [(e, s) for e in range(3) for s in range(1, STEPS + 1)]

    record, log = tmp_path / "killed-record", tmp_path / "killed.log"
    args = _still_args(tiny_hub_still, tiny_reviews, tmp_path / "killed", backup_every=3)
    rng = random.Random(28)
    for _ in range(4):  # SIGKILL a few steps after each resume, inside epochs
        proc = _start(record, args, log, 0.1)
        _wait_for_steps(proc, record, len(_steps(record)) + rng.randint(2, 7))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    final = run_script(_RECORDED, record, *args)
    assert final.returncode == 0, final.stderr[-3000:]
    steps = _steps(record)
    assert len({pid for pid, *_ in steps}) == 5
    assert len(steps) > len(expected)  # the steps after each kill's last backup were trained again
    assert _trained(steps) == expected  # each step of each epoch once, in order: no example skipped or twice
    assert "resuming at epoch" in final.stderr  # (a process killed before its first backup starts over)
    kept, again = np.load(tmp_path / "whole-record.weights.npz"), np.load(f"{record}.weights.npz")
    assert len(kept.files) == len(again.files)
    for name in kept.files:
        np.testing.assert_allclose(again[name], kept[name], rtol=1e-5, atol=1e-6)


# Both signals take the same handler (app.training.backup.interrupts): Ctrl-C's run goes to the slow tier.
@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_sigterm_and_ctrl_c_back_up_stop_and_resume(tiny_hub_still, tiny_reviews, tmp_path, signum):
    # Backups only when interrupted and at each epoch's end.
    args = _still_args(tiny_hub_still, tiny_reviews, tmp_path, backup_every="100m")
    record, log = tmp_path / "record", tmp_path / "first.log"
    proc = _start(record, args, log, 0.3)
    _wait_for_steps(proc, record, STEPS + 3)  # inside the second epoch
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == 128 + signum
    stderr = log.read_text()
    match = re.search(r"interrupted at epoch (\d+), step (\d+) \((\w+)\); run the same command to resume",
                      stderr)
    assert match, stderr[-3000:]
    epoch, step = int(match.group(1)), int(match.group(2))
    assert match.group(3) == signal.Signals(signum).name and epoch == 2 and 3 <= step < STEPS
    assert "Traceback" not in stderr, stderr[-3000:]
    saved = fit.backup_store(tmp_path / "run").latest()
    assert saved is not None and (saved[1]["epoch"], saved[1]["step"]) == (epoch - 1, step)
    assert _steps(record)[-1][1:] == (epoch - 1, step)  # the step it had begun was finished, and no more

    again = run_script(_RECORDED, record, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming at epoch {epoch}, step {step + 1} of {STEPS}" in again.stderr
    assert _trained(_steps(record)) == [(e, s) for e in range(3) for s in range(1, STEPS + 1)]
    assert not fit.has_backup(tmp_path / "run")


@pytest.mark.slow  # in the default tier: the lock's unit tests (test_backup.py), app.train's refusal
def test_one_run_a_folder_and_a_dead_holders_lock_is_taken_over(tiny_hub_still, tiny_reviews, tmp_path):
    args = _still_args(tiny_hub_still, tiny_reviews, tmp_path, backup_every=2)
    record = tmp_path / "record"
    first = _start(record, args, tmp_path / "first.log", 1.0)  # still training when the second starts
    _wait_for_steps(first, record, 3)
    second = run_module("train", *args)
    assert_clear_failure(second, f"is in use by another app.train (pid {first.pid} on")
    first.send_signal(signal.SIGKILL)
    first.wait()
    third = run_module("train", *args)
    assert third.returncode == 0, third.stderr[-3000:]
    assert re.search(rf"taking over the lock of .*: pid {first.pid} \(started .*\) no longer runs",
                     third.stderr)
    assert "resuming at epoch 1, step" in third.stderr


def test_a_full_disk_during_a_backup_stops_the_run_and_keeps_the_last_backup(
        tiny_hub_still, tiny_reviews, tmp_path, monkeypatch):
    from app.training import backup

    save, calls = backup.Store.save, []

    def fill_up(self, write, record):
        calls.append(record.get("step"))
        if self.what == "backup" and len(calls) > 3:
            def partial_then_full(prefix):
                Path(prefix + ".index").write_bytes(b"half")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return save(self, partial_then_full, record)
        return save(self, write, record)

    monkeypatch.setattr(backup.Store, "save", fill_up)
    args = _still_args(tiny_hub_still, tiny_reviews, tmp_path, backup_every=2)
    result = run_in_process("train", *args)
    assert result.returncode == 1
    assert "could not write the backup to" in result.stderr and "No space left on device" in result.stderr
    kept = fit.backup_store(tmp_path / "run").latest()
    assert kept is not None and f"the previous backup ({backup.describe(kept[1])}) is kept" in result.stderr
    assert not list((tmp_path / "run" / "backup").glob(".tmp-*"))
    model, _ = tiny_classifier(tiny_hub_still, 32)  # the backup loads into the model it was written from
    tf.train.Checkpoint(model=model).read(kept[0]).assert_existing_objects_matched().expect_partial()
    assert any("optimizer" in name for name, _ in tf.train.list_variables(kept[0]))


def _small_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input([4], name="x")
    outputs = tf.keras.layers.Dense(2, activation="softmax", name="head")(inputs)
    model = tf.keras.Model(inputs, outputs, name="small")
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def _small_epoch(epoch: int) -> tf.data.Dataset:
    rng = np.random.default_rng(epoch)  # an order of its own each epoch, the same when rebuilt
    x = rng.normal(size=(32, 4)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype(np.int32))).batch(8)


class _InterruptAt(tf.keras.callbacks.Callback):
    """Sends the run its interrupt at the end of (epoch, step done)."""

    def __init__(self, interrupt, epoch: int, step: int):
        super().__init__()
        self.interrupt, self.at, self.epoch = interrupt, (epoch, step), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch + 1) == self.at:
            self.interrupt.signum = signal.SIGTERM


@pytest.mark.parametrize("step, where, saved", [
    (2, "interrupted at epoch 2, step 2 (SIGTERM)", (1, 2)),
    (4, "interrupted at the end of epoch 2 (SIGTERM)", (2, 0)),  # the last step: validated first
])
def test_an_interrupted_fit_resumes_to_the_same_weights(tmp_path, step, where, saved):
    val = _small_epoch(99)
    whole = _small_model()
    fit.fit(whole, _small_epoch, 4, val, tmp_path / "whole", 3, 5, False)

    model = _small_model()
    interrupt = backup.Interrupt()
    with pytest.raises(backup.Interrupted, match=re.escape(where)) as stopped:
        fit.fit(model, _small_epoch, 4, val, tmp_path / "run", 3, 5, False,
                callbacks=[_InterruptAt(interrupt, 1, step)], interrupt=interrupt)
    assert stopped.value.exit_status == 143
    record = fit.backup_store(tmp_path / "run").latest()[1]
    assert (record["epoch"], record["step"]) == saved
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["epoch"].tolist() == list(range(saved[0]))  # epochs validated before the stop

    resumed = _small_model()  # a new process: fresh weights, restored from the backup
    history, cost = fit.fit(resumed, _small_epoch, 4, val, tmp_path / "run", 3, 5, False)
    assert history["epoch"].tolist() == [0, 1, 2] and cost["backups"] >= 1
    for a, b in zip(resumed.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not fit.has_backup(tmp_path / "run")


# ----------------------------------------------------------------------------- the deadline


class _FakeTime:
    """A monotonic clock the test moves: training steps and validation batches cost what it says."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class _Costs(tf.keras.callbacks.Callback):
    """Placed before the deadline, so the deadline sees each step's cost when it ends."""

    def __init__(self, clock: _FakeTime, step_seconds: float, validation_seconds: float):
        super().__init__()
        self.clock, self.step, self.validation = clock, step_seconds, validation_seconds
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.clock.now += self.step
        self.rates.append(float(self.model.optimizer.learning_rate))

    def on_test_batch_end(self, batch, logs=None):
        self.clock.now += self.validation


def _deadline_fit(monkeypatch, budget_seconds: float, epochs: int, reserve_validations: int = 0,
                  validations: int | None = None):
    """Ten 1-second steps an epoch and a 2-second validation, against a fake clock."""
    from app.training import optimization

    clock = _FakeTime()
    monkeypatch.setattr(fit, "time", clock)
    share = tf.Variable(0.0, trainable=False)
    inputs = tf.keras.Input((3,), name="x")
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, name="out")(inputs))
    schedule = optimization.WarmupLinearDecay(1e-2, 10 * epochs, 0, clock=share)
    model.compile(tf.keras.optimizers.SGD(schedule), "mse")
    x, y = np.ones((40, 3), "float32"), np.zeros((40, 1), "float32")
    deadline = fit.Deadline(budget_seconds, clock.now, 2.0, epochs, share, reserve_validations, validations)
    costs = _Costs(clock, 1.0, 2.0)
    history = model.fit(x, y, batch_size=4, epochs=epochs, validation_data=(x[:4], y[:4]), verbose=0,
                        callbacks=[costs, deadline])
    return deadline, history.history, costs, float(share.numpy())


def test_the_deadline_stops_inside_an_epoch_leaving_time_to_validate(monkeypatch):
    deadline, history, costs, share = _deadline_fit(monkeypatch, budget_seconds=30, epochs=5)
    # Two whole epochs (10 steps + 2 s validation each) reach 24 s; the third stops after 4 steps,
    # when one more step and a validation would no longer fit, and its validation ends at 30 s.
    assert deadline.stopped_early and deadline.steps == 24
    assert history["train_seconds"] == [12.0, 24.0, 30.0]
    assert deadline.elapsed() == 30.0 and deadline.validation_total == 6.0
    # The schedule's clock reached its end at the deadline: the last rates are the decay's tail.
    assert share == 1.0 and costs.rates[-1] < 0.25 * costs.rates[0]


def test_the_clock_counts_the_validations_the_plan_expects_not_the_epochs_it_allows(monkeypatch):
    """A budget's plan allows more epochs than it expects to run (the deadline ends the run): the
    clock reserves time for the validations expected, so the rate reaches 0 at the deadline, not
    before it (with all 5 epochs' validations reserved it would reach 0 after 20 of the 24 steps)."""
    deadline, history, costs, share = _deadline_fit(monkeypatch, budget_seconds=30, epochs=5, validations=3)
    assert deadline.stopped_early and deadline.steps == 24 and share == 1.0
    assert costs.rates[-2] > 0 and min(costs.rates[:-1]) > 0
    _, _, every, _ = _deadline_fit(monkeypatch, budget_seconds=30, epochs=5)
    assert every.rates[20:] == [0.0] * 4


def test_the_deadline_keeps_room_for_work_after_fit_and_skips_an_epoch_that_cannot_fit(monkeypatch):
    # 27 s with one validation (2 s) reserved for after fit: the second epoch ends at 24 s, and a
    # third could train for -1 s after its own validation, so it never starts.
    deadline, history, _, _ = _deadline_fit(monkeypatch, budget_seconds=27, epochs=3, reserve_validations=1)
    assert deadline.stopped_early and deadline.steps == 20
    assert history["train_seconds"] == [12.0, 24.0]
    assert deadline.elapsed() + deadline.reserve() == 26.0


def test_a_run_inside_its_budget_is_not_stopped(monkeypatch):
    deadline, history, _, _ = _deadline_fit(monkeypatch, budget_seconds=100, epochs=2)
    assert not deadline.stopped_early and deadline.steps == 20
    assert history["train_seconds"] == [12.0, 24.0]
