"""app.training.backup: the run folder's lock, checkpoints that a kill or a full disk cannot break, and
interrupts that become a request."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from app.training import backup
from tests.conftest import ENV, ROOT


@pytest.mark.parametrize("value, expected", [
    ("200", backup.Every(steps=200)), ("5m", backup.Every(seconds=300)), ("90s", backup.Every(seconds=90)),
    ("0.5m", backup.Every(seconds=30))])
def test_backup_every_reads_steps_or_minutes(value, expected):
    assert backup.parse_every(value) == expected


@pytest.mark.parametrize("value", ["0", "-3", "5h", "1.5", "often", ""])
def test_backup_every_refuses_what_it_cannot_read(value):
    with pytest.raises(ValueError, match=f"--backup-every .*got {value!r}"):
        backup.parse_every(value)


def _write(value: float):
    """A checkpoint writer of one variable holding `value`."""
    return tf.train.Checkpoint(v=tf.Variable(value)).write


def _read(prefix: str) -> float:
    v = tf.Variable(0.0)
    tf.train.Checkpoint(v=v).read(prefix).assert_existing_objects_matched()
    return float(v.numpy())


def test_the_store_keeps_the_newest_whole_checkpoint_only(tmp_path):
    store = backup.Store(tmp_path / "backup")
    assert store.latest() is None
    store.save(_write(1.0), {"epoch": 0, "step": 3})
    prefix = store.save(_write(2.0), {"epoch": 0, "step": 6})
    latest, record = store.latest()
    assert latest == prefix and _read(latest) == 2.0 and (record["epoch"], record["step"]) == (0, 6)
    assert sorted(p.name for p in store.root.iterdir()) == ["000002", "latest.json"]


def test_a_kill_while_writing_leaves_the_previous_checkpoint(tmp_path):
    store = backup.Store(tmp_path / "backup")
    store.save(_write(1.0), {"epoch": 1, "step": 0})
    staging = store.root / ".tmp-000002"  # what a kill in the middle of the next write leaves
    staging.mkdir()
    (staging / "ckpt.index").write_bytes(b"half")
    assert _read(store.latest()[0]) == 1.0
    store.save(_write(3.0), {"epoch": 1, "step": 4})
    assert _read(store.latest()[0]) == 3.0 and not staging.exists()


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path):
    store = backup.Store(tmp_path / "backup")
    store.save(_write(1.0), {"epoch": 1, "step": 40})

    def full(prefix):
        with open(prefix + ".data-00000-of-00001", "wb") as f:
            f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(backup.BackupError) as error:
        store.save(full, {"epoch": 1, "step": 80})
    message = str(error.value)
    assert f"could not write the backup to {store.root}: No space left on device" in message
    assert "the previous backup (epoch 2, step 40) is kept" in message
    assert _read(store.latest()[0]) == 1.0 and store.latest()[1]["step"] == 40
    assert not list(store.root.glob(".tmp-*"))


def test_tensorflows_own_write_errors_are_caught_too(tmp_path):
    store = backup.Store(tmp_path / "backup")

    def fails(prefix):
        raise tf.errors.ResourceExhaustedError(None, None, "disk quota exceeded")

    with pytest.raises(backup.BackupError, match="disk quota exceeded; there is no earlier backup"):
        store.save(fails, {"epoch": 0, "step": 5})
    assert store.latest() is None


_HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from app.training import backup
    with backup.run_lock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_second_process_is_refused_the_lock_with_the_holders_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(backup.RunLocked, match=f"in use by another app.train \\(pid {holder.pid} on "):
            with backup.run_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with backup.run_lock(tmp_path):  # the kernel let go of a killed holder's lock
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over_and_logged(tmp_path, caplog):
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / backup.LOCK_FILE).write_text(
        f'{{"pid": {gone.pid}, "host": "{os.uname().nodename}", "started": "2026-12-01 10:00:00"}}')
    with caplog.at_level(logging.WARNING, logger="app.training.backup"), backup.run_lock(tmp_path):
        assert f'"pid": {os.getpid()}' in (tmp_path / backup.LOCK_FILE).read_text()
    assert f"pid {gone.pid} (started 2026-12-01 10:00:00) no longer runs" in caplog.text
    assert (tmp_path / backup.LOCK_FILE).read_text() == ""  # a clean exit leaves nothing to take over


def test_the_first_signal_is_a_request_and_the_second_acts_at_once():
    before = signal.getsignal(signal.SIGTERM)
    with backup.interrupts() as interrupt:
        assert interrupt.signum is None
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs between bytecodes
        assert interrupt.signum == signal.SIGTERM and interrupt.name == "SIGTERM"
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL  # the next one ends the process
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_ctrl_c_ends_the_process_at_once():
    script = textwrap.dedent("""
        import os, signal, time
        from app.training import backup
        with backup.interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
    """)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGINT and time.monotonic() - start < 20
    assert b"SIGINT: stopping after this step" in proc.stderr
