"""app.runtime: CPU fusion set up by the CLIs (not by importing app), a quiet start, versions."""

from __future__ import annotations

import os
import sys

import pytest

from app import runtime
from tests.conftest import FUSION_ENV, run_script

_IMPORT_PROBE = """
import os, sys
import app, app.train, app.predict, app.evaluate, app.data, app.convert, app.config
print(os.environ.get("TF_XLA_FLAGS"), "tensorflow" in sys.modules)
from app import runtime
runtime.setup()
print(os.environ.get("TF_XLA_FLAGS"), runtime.cpu_fusion_enabled())
"""


def test_importing_app_changes_nothing_and_setup_sets_the_fusion_flags():
    proc = run_script(_IMPORT_PROBE, env=FUSION_ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Importing every CLI module loads no TensorFlow and sets no flag of ours; setup() does.
    assert proc.stdout.strip().splitlines() == ["None False", f"{runtime.CPU_FUSION_FLAGS} True"]


@pytest.mark.parametrize("env, flags", [
    ({}, runtime.CPU_FUSION_FLAGS),
    ({"BERTCLF_CPU_FUSION": "0"}, None),
    ({"TF_XLA_FLAGS": "--tf_xla_auto_jit=1"}, "--tf_xla_auto_jit=1"),  # the user's own win
    ({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}}'}, None),  # multi-worker
])
def test_cpu_fusion_flags_unless_turned_off_or_the_users_own_or_a_cluster(env, flags, monkeypatch):
    for name in ("TF_XLA_FLAGS", "BERTCLF_CPU_FUSION", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert runtime.enable_cpu_fusion_flags() is (flags == runtime.CPU_FUSION_FLAGS)
    assert os.environ.get("TF_XLA_FLAGS") == flags


_FUSION_PROBE = """
import os, sys
import numpy as np
from app import runtime
runtime.setup()
import tensorflow as tf
import tensorflow_hub as hub
enc = hub.KerasLayer(sys.argv[1])
ids = tf.constant(np.arange(64, dtype=np.int32).reshape(4, 16) % 50 + 5)
inputs = dict(input_word_ids=ids, input_mask=tf.ones_like(ids), input_type_ids=tf.zeros_like(ids))
f = tf.function(lambda x: enc(x)["sequence_output"])
for _ in range(3):  # XLA compiles a cluster once it has run before: here it must not
    plain = f(inputs).numpy()
os.write(2, b"outside done\\n")
with runtime.cpu_fusion() as fused:
    for _ in range(3):
        out = f(inputs).numpy()
print(fused, repr(tf.config.optimizer.get_jit()))
np.testing.assert_allclose(out, plain, atol=1e-4)
"""


def test_cpu_fusion_compiles_element_wise_clusters_inside_only_with_the_same_results(tiny_hub):
    """The flags and the switch still mean what they meant (a renamed flag would silently do
    nothing), only calls inside `cpu_fusion()` are fused, the setting is restored after it, and the
    fused graph computes what the unfused one does."""
    proc = run_script(_FUSION_PROBE, tiny_hub / "encoder", env={**FUSION_ENV, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after = proc.stderr.split("outside done", 1)
    assert "Compiled cluster using XLA" not in before and "Compiled cluster using XLA" in after
    assert proc.stdout.strip() == "True ''"


def test_verbose_setup_keeps_tensorflows_start_up_lines():
    """(The CLI tests check that a normal run prints none of them.)"""
    proc = run_script("from app import runtime; runtime.setup(verbose=True)",
                      env={k: v for k, v in FUSION_ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "absl::InitializeLog" in proc.stderr or "cuda" in proc.stderr.lower(), proc.stderr


def test_quiet_native_stderr_passes_on_every_line_but_the_start_up_chatter(capfd):
    with runtime.quiet_native_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to "
                    b"STDERR\n")
        os.write(2, b"I0000 00:00:1.0  1 cudart_stub.cc:31] Could not find cuda drivers\n")
        os.write(2, b"E0000 00:00:1.0  1 some_op.cc:9] a real error\n")
        print("from Python", file=sys.stderr)
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == ["E0000 00:00:1.0  1 some_op.cc:9] a real error", "from Python"]


def test_versions_name_what_runs_and_exports_depend_on():
    found = runtime.versions()
    assert set(found) == {"bertclf", "python", "tensorflow", "tf-keras", "tensorflow-hub", "tensorflow-text"}
    assert found["tensorflow"].startswith("2.21") and found["tensorflow-text"] == "2.21.1"
