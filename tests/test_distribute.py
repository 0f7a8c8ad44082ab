"""app.distribute: the strategy for the hardware, and training under the multi-replica ones
(two logical CPUs, two local workers; `make test-slow`)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest

from app import distribute
from tests.conftest import FUSION_ENV, ROOT, run_script, tiny_train_args


def test_auto_strategy_on_this_machine_is_the_cpu(monkeypatch):
    from app import runtime

    strategy, why = distribute.choose_strategy("auto")
    assert strategy.num_replicas_in_sync == 1 and "CPU" in why
    hardware = distribute.describe(strategy, why)
    assert (hardware.device, hardware.replicas, hardware.why) == ("CPU", 1, why)
    # On a CPU, bfloat16 is fast exactly where the CPU says it computes it natively.
    for native in (True, False):
        monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda native=native: native)
        assert distribute.describe(strategy, why).fast_bfloat16 is native


def test_gpu_strategy_needs_a_gpu():
    with pytest.raises(ValueError, match="--strategy gpu: TensorFlow sees no GPU"):
        distribute.choose_strategy("gpu")


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribute.choose_strategy("multi-worker")


MIRRORED = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from app import train
    sys.exit(train.main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tiny_hub, tiny_reviews, tmp_path):
    # 64 tokens: the ~10-token reviews get batches padded to 32 only (length buckets).
    # (--cpu-fusion on: a probe would find that so short a run does not repay compiling.)
    args = tiny_train_args(tiny_hub, tiny_reviews, tmp_path, strategy="mirrored", epochs=1,
                           max_seq_length=64, cpu_fusion="on")
    proc = run_script(MIRRORED, *args, env=FUSION_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MirroredStrategy with 2 replica(s)" in proc.stderr
    assert "CPU fusion on" in proc.stderr and "CPU fusion on: --cpu-fusion on" in proc.stderr
    assert "length buckets True" in proc.stderr  # batches of varying length, split across replicas
    assert (tmp_path / "models" / "tiny" / "1" / "saved_model.pb").is_file()
    odd = run_script(MIRRORED, *tiny_train_args(tiny_hub, tiny_reviews, tmp_path / "odd", strategy="mirrored",
                                                batch_size=7))
    assert odd.returncode == 2 and "must divide by the 2 replicas" in odd.stderr


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_together_with_tf_config(tiny_hub, tiny_reviews, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**FUSION_ENV, "TF_CONFIG": json.dumps(tf_config)}  # CPU fusion stays off
        args = tiny_train_args(tiny_hub, tiny_reviews, tmp_path, epochs=1,
                               run_dir=tmp_path / f"run{index}")
        procs.append(subprocess.Popen([sys.executable, "-m", "app.train", *args], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "MultiWorkerMirroredStrategy with 2 replica(s)" in outputs[0][1]
    # Only the chief (worker 0) exports and reports.
    assert (tmp_path / "models" / "tiny" / "1" / "saved_model.pb").is_file()
    assert not (tmp_path / "models" / "tiny" / "2").exists()
    assert (tmp_path / "run0" / "report" / "report.json").is_file()
    assert not (tmp_path / "run1" / "report").exists()
