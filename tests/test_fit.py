"""app.fit: a killed run resumes from its backup; a kill at any point still ends in a servable
export (the random kills run in `make test-slow`)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import tensorflow as tf

from app import fit
from tests.conftest import ENV, ROOT, run_module, run_script, tiny_train_args

_KILL_AFTER_FIRST_EPOCH = textwrap.dedent("""
    import argparse, os, signal, sys
    from app import config, runtime, train
    runtime.setup()
    import tensorflow as tf

    class KillAfterFirstEpoch(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            os.kill(os.getpid(), signal.SIGKILL)

    p = argparse.ArgumentParser(); config.add_arguments(p)
    train.run(config.build_config(p.parse_args(sys.argv[1:])), callbacks=[KillAfterFirstEpoch()])
""")


def test_killed_run_resumes_from_backup(tiny_hub, tiny_reviews, tmp_path):
    args = tiny_train_args(tiny_hub, tiny_reviews, tmp_path, epochs=2, max_train_examples=80)
    first = run_script(_KILL_AFTER_FIRST_EPOCH, *args)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert fit.has_backup(tmp_path / "run")
    assert not (tmp_path / "models").exists()  # nothing exported, nothing created for it
    second = run_module("train", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from epoch 2" in second.stderr
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [0, 1]  # epoch 1 not repeated
    assert (tmp_path / "models" / "tiny" / "1" / "saved_model.pb").is_file()
    assert not (tmp_path / "run" / "backup").exists()


def test_a_history_row_cut_short_by_a_kill_is_dropped(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,0.7,0.6,0.6\n1,0.8,0.4,0.9,0.3\n2,0.9")
    assert fit._best_so_far(history) == 0.9
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
