"""What keeps a long run safe: one process per run folder, backups inside epochs, clean interrupts.

- `run_lock`: a run folder is trained by one process at a time. The lock is an advisory `flock`
  on `RUN_DIR/run.lock`, which holds the holder's pid; the kernel lets go of it when the holder
  dies however it dies, so a lock left behind is taken over (and the log says whose it was).
- `Store`: checkpoints written so that a kill (or a full disk) at any moment leaves the previous
  one whole: each is written into a folder of its own, renamed into place when complete, and only
  then named by `latest.json` (replaced atomically); older ones are deleted after.
- `interrupts`: SIGTERM and SIGINT become a request the training loop answers after its step.
How often `app.training.fit`'s `Backup` callback backs up is `app.config.Every`, read from
`--backup-every` by `app.config.parse_every` (re-exported here beside the rest of backing up).

TensorFlow is not imported here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from app.config import Every as Every  # re-exported: how often to back up is part of backing up
from app.config import parse_every as parse_every

logger = logging.getLogger(__name__)

DEFAULT_EVERY = "5m"  # each backup's cost is logged and recorded (training.backup_seconds)
LOCK_FILE = "run.lock"
POINTER = "latest.json"


class RunLocked(ValueError):
    """Another process is training in this run folder."""


class BackupError(RuntimeError):
    """A backup or checkpoint could not be written (a full disk, a lost mount); the previous one
    is kept."""


class Interrupted(Exception):
    """SIGTERM or SIGINT stopped the run after a backup; `message` says where and how to resume."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.message = message

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # what a shell reports for a process the signal ended


# ----------------------------------------------------------------------------- the lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock, or raise `RunLocked` naming the process that holds it."""
    import fcntl

    path = run_dir / LOCK_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ValueError(f"--run-dir {run_dir}: cannot write ({e.strerror})") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise RunLocked(
                f"--run-dir {run_dir} is in use by another app.train (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('started', '?')}); wait for it to end or "
                "stop it (it backs up on SIGTERM), or choose another --run-dir / --model-name") from None
        previous = _read_holder(fd)
        if previous.get("pid") and (previous.get("host") != socket.gethostname()
                                    or not _alive(int(previous["pid"]))):
            logger.warning("taking over the lock of %s: pid %s (started %s) no longer runs", run_dir,
                           previous["pid"], previous.get("started", "?"))
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a clean exit leaves no holder to take over from
    finally:
        os.close(fd)  # and releases the flock


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


# ----------------------------------------------------------------------------- atomic checkpoints


class Store:
    """Numbered checkpoint folders under `root`; `latest.json` names the newest whole one."""

    def __init__(self, root: Path, what: str = "backup"):
        self.root = Path(root)
        self.what = what

    def latest(self) -> tuple[str, dict] | None:
        """(checkpoint prefix, its record) of the newest complete checkpoint, or None."""
        try:
            record = json.loads((self.root / POINTER).read_text())
            folder = self.root / record["folder"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not (folder / "ckpt.index").exists():
            return None
        return str(folder / "ckpt"), record

    def save(self, write: Callable[[str], object], record: dict) -> str:
        """Write a checkpoint with `write(prefix)` and make it the latest; on any error of the file
        system raise `BackupError` and leave the previous one as it was."""
        previous = self.latest()
        number = int(previous[1].get("number", 0)) + 1 if previous else 1
        staging = self.root / f".tmp-{number:06d}"
        folder = self.root / f"{number:06d}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            write(str(staging / "ckpt"))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
            record = {**record, "number": number, "folder": folder.name}
            pointer = self.root / f".{POINTER}.tmp"
            pointer.write_text(json.dumps(record, indent=1))
            os.replace(pointer, self.root / POINTER)
        except _write_errors() as e:
            shutil.rmtree(staging, ignore_errors=True)
            kept = (f"the previous {self.what} ({describe(previous[1])}) is kept" if previous
                    else f"there is no earlier {self.what}")
            reason = e.strerror if isinstance(e, OSError) and e.strerror else getattr(e, "message", str(e))
            raise BackupError(f"could not write the {self.what} to {self.root}: {reason}; {kept}. Free some "
                              "space and run the same command to resume") from e
        for old in self.root.iterdir():  # what the new one replaces, and staging left by a kill
            if old.name != folder.name and re.fullmatch(r"(\.tmp-)?\d{6}", old.name):
                shutil.rmtree(old, ignore_errors=True)
        return str(folder / "ckpt")

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _write_errors() -> tuple[type[BaseException], ...]:
    """OSError, and TensorFlow's errors when it is loaded (a checkpoint's writer raises those)."""
    tf = sys.modules.get("tensorflow")
    return (OSError,) + ((tf.errors.OpError,) if tf is not None else ())


def describe(record: dict) -> str:
    """Where a backup record says the run is, as a person counts: "epoch 2, step 120"."""
    if "epoch" not in record:
        return "saved " + str(record.get("saved", "?"))
    step = int(record.get("step", 0))
    epoch = int(record["epoch"])
    return f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"


# ----------------------------------------------------------------------------- interrupts


@dataclasses.dataclass
class Interrupt:
    """The first SIGTERM/SIGINT received inside `interrupts()`, if any."""

    signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextlib.contextmanager
def interrupts() -> Iterator[Interrupt]:
    """Turn the first SIGTERM or SIGINT into a request (`Interrupt.signum`) the training loop
    answers at the end of its step; a second one ends the process at once (the handlers go back
    to the system's defaults, which act even while TensorFlow is inside a long op). Outside the
    main thread signals cannot be caught, and nothing changes."""
    state = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    watched = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.getsignal(s) for s in watched}

    def handler(signum, frame):
        state.signum = signum
        for s in watched:
            signal.signal(s, signal.SIG_DFL)
        logger.warning("%s: stopping after this step to write a backup (send it again to exit at once)",
                       signal.Signals(signum).name)

    for s in watched:
        signal.signal(s, handler)
    try:
        yield state
    finally:
        for s, h in before.items():
            signal.signal(s, h)


# ----------------------------------------------------------------------------- the callback


