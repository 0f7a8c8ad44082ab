"""app.train, app.config, app.distribute, app.model: the main job end to end on a tiny encoder."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from app import config, train
from tests.conftest import tiny_train_args

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
# The default outside the suite (conftest.py turns CPU fusion off for the other tests).
FUSION_ENV = {**{k: v for k, v in ENV.items() if k not in ("TF_XLA_FLAGS", "BERTCLF_CPU_FUSION")},
              "BERTCLF_CPU_FUSION": "1"}


def run_cli(args: list[str], timeout: int = 300, env: dict | None = None, script: str | None = None):
    cmd = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "app.train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env or ENV)


# ----------------------------------------------------------------------------- config


def _parse(argv):
    import argparse

    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.build_config(parser.parse_args(argv))


def test_config_precedence_defaults_file_flags(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochs: 5\nbatch-size: 16\nlearning_rate: 2.0e-5\nmodel_name: from_file\n")
    cfg = _parse(["--config", str(cfg_file), "--epochs", "7"])
    assert cfg.epochs == 7  # flag beats file
    assert cfg.batch_size == 16 and cfg.learning_rate == 2e-5 and cfg.model_name == "from_file"
    assert cfg.truncation == "head+tail"  # default
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps({"jit_compile": True, "max_seq_length": 256}))
    cfg = _parse(["--config", str(json_file)])
    assert cfg.jit_compile is True and cfg.max_seq_length == 256
    assert cfg.length_buckets is None  # auto: on, off on TPU
    assert _parse(["--no-length-buckets"]).length_buckets is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "-1"], "--epochs must be at least 1, got -1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--learning-rate", "2"], "--learning-rate must be in (0, 1)"),
    (["--truncation", "middle"], "--truncation must be one of"),
    (["--validation-split", "1.5"], "--validation-split must be in (0, 1)"),
    (["--strategy", "gpu-cluster"], "--strategy must be one of"),
    (["--model-name", "../escape"], "--model-name must be a folder name"),
    (["--max-seq-length", "4"], "--max-seq-length must be between 8"),
])
def test_bad_flags_are_refused(argv, message):
    with pytest.raises(ValueError) as info:
        _parse(argv)
    assert message in str(info.value)


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epoch": 3}))
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        _parse(["--config", str(bad)])
    bad.write_text(json.dumps({"epochs": "many"}))
    with pytest.raises(ValueError, match="epochs must be int"):
        _parse(["--config", str(bad)])
    with pytest.raises(ValueError, match="no such file"):
        _parse(["--config", str(tmp_path / "missing.yaml")])


def test_seq_length_above_encoder_limit(tiny_hub, tiny_reviews, tmp_path):
    with pytest.raises(ValueError, match="above the encoder's limit of 128"):
        train.run(_parse(tiny_train_args(tiny_hub, tiny_reviews, tmp_path, max_seq_length=256)))


# ----------------------------------------------------------------------------- model


def test_classifier_takes_integer_inputs_only(tiny_hub):
    from app.model import build_classifier

    model = build_classifier(str(tiny_hub / "encoder"), num_classes=3, seq_length=16)
    assert all(t.dtype == tf.int32 for t in model.inputs)
    assert not any(t.dtype == tf.string for layer in model.layers for t in tf.nest.flatten(layer.output))
    assert [layer.name for layer in model.layers[-3:]] == ["encoder", "dropout", "classifier"]
    assert model.output_shape == (None, 3)
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)


def test_pooled_only_classifier_predicts_the_same(tiny_hub):
    from app.data import Tokenizer
    from app.model import build_classifier

    full = build_classifier(str(tiny_hub / "encoder"), num_classes=3, seq_length=None)
    short = build_classifier(str(tiny_hub / "encoder"), num_classes=3, seq_length=None,
                             pooled_only=True)
    assert short.get_layer("encoder").get_config()["arguments"] == {"pooled_only": True}
    short.set_weights(full.get_weights())
    x = Tokenizer(str(tiny_hub / "preprocess"), 16)(tf.constant(["good film", "bad plot", ""]))
    np.testing.assert_allclose(short(x).numpy(), full(x).numpy(), atol=1e-6, rtol=0)


def test_train_step_compiles_with_xla(tiny_hub, tiny_reviews):
    from app.data import Tokenizer
    from app.model import build_classifier
    from app.optimization import create_optimizer

    model = build_classifier(str(tiny_hub / "encoder"), num_classes=2, seq_length=16,
                             pooled_only=True)  # as app.train builds it
    model.compile(optimizer=create_optimizer(1e-3, 10), loss="sparse_categorical_crossentropy",
                  jit_compile=True)
    x = Tokenizer(str(tiny_hub / "preprocess"), 16)(tf.constant(["good film", "bad film"] * 4))
    before = model.get_layer("encoder").trainable_weights[0].numpy().copy()
    model.fit(x, np.array([1, 0] * 4), batch_size=8, epochs=1, verbose=0)
    assert not np.array_equal(before, model.get_layer("encoder").trainable_weights[0].numpy())
    # The same step (forward with dropout, gradients, AdamW update) lowers to one XLA module.
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    optimizer = model.optimizer

    @tf.function(jit_compile=True)
    def step(inputs, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    y = tf.constant([1, 0] * 4)
    hlo = step.experimental_get_compiler_ir(x, y)(stage="hlo")
    assert "HloModule" in hlo and "rng" in hlo.lower()  # dropout's random numbers are inside
    assert np.isfinite(step(x, y).numpy())


# ----------------------------------------------------------------------------- CPU fusion

_FLAGS_PROBE = "import app, os, sys; print(os.environ.get('TF_XLA_FLAGS'), app.cpu_fusion_enabled(), " \
               "'tensorflow' in sys.modules)"


@pytest.mark.parametrize("env, flags, enabled", [
    ({}, "default", True),
    ({"BERTCLF_CPU_FUSION": "0"}, "None", False),
    ({"TF_XLA_FLAGS": "--tf_xla_auto_jit=1"}, "--tf_xla_auto_jit=1", False),  # the user's own win
    ({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}}'}, "None", False),  # multi-worker
])
def test_cpu_fusion_flags_are_set_before_tensorflow(env, flags, enabled):
    import app

    proc = run_cli([], env={**FUSION_ENV, **env}, script=_FLAGS_PROBE)
    expected = app.CPU_FUSION_FLAGS if flags == "default" else flags
    assert proc.stdout.strip() == f"{expected} {enabled} False", proc.stderr


_FUSION_PROBE = """
import sys
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import app
enc = hub.KerasLayer(sys.argv[1])
ids = tf.constant(np.arange(64, dtype=np.int32).reshape(4, 16) % 50 + 5)
inputs = dict(input_word_ids=ids, input_mask=tf.ones_like(ids), input_type_ids=tf.zeros_like(ids))
f = tf.function(lambda x: enc(x)["sequence_output"])
out = f(inputs)  # traced and run outside cpu_fusion() first
with app.cpu_fusion(sys.argv[3] == "inside") as fused:
    for _ in range(3):  # XLA compiles a cluster once it has run before
        out = f(inputs)
print(fused, repr(tf.config.optimizer.get_jit()))
np.save(sys.argv[2], out.numpy())
"""


@pytest.mark.parametrize("case, env, where, fused", [
    ("inside", {}, "inside", True),
    ("outside", {}, "outside", False),  # the flags alone fuse nothing
    ("off", {"BERTCLF_CPU_FUSION": "0"}, "inside", False),
])
def test_cpu_fusion_compiles_element_wise_clusters_with_the_same_results(case, env, where, fused,
                                                                         tiny_hub, tmp_path):
    """The flags and the switch still mean what they meant (a renamed flag would silently do
    nothing), only calls inside `cpu_fusion()` are fused, the setting is restored after it, and the
    fused graph computes what the unfused one does."""
    path = tmp_path / f"{case}.npy"
    proc = run_cli([str(tiny_hub / "encoder"), str(path), where],
                   env={**FUSION_ENV, "TF_CPP_MIN_LOG_LEVEL": "0", **env}, script=_FUSION_PROBE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("Compiled cluster using XLA" in proc.stderr) is fused
    assert proc.stdout.split("\n")[-2] == f"{fused} ''"
    plain = run_cli([str(tiny_hub / "encoder"), str(tmp_path / "plain.npy"), "outside"],
                    env={**ENV, "BERTCLF_CPU_FUSION": "0"}, script=_FUSION_PROBE)
    assert plain.returncode == 0, plain.stderr[-2000:]
    out = np.load(path)
    assert out.shape == (4, 16, 32)
    np.testing.assert_allclose(out, np.load(tmp_path / "plain.npy"), atol=1e-4)


# ----------------------------------------------------------------------------- optimization


def test_warmup_then_linear_decay():
    from app.optimization import WarmupLinearDecay

    s = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    values = [float(s(i)) for i in (0, 4, 9, 10, 55, 100)]
    assert values == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3, 5e-4, 0.0], rel=1e-5)


def test_no_weight_decay_on_layer_norm_and_bias():
    from app.optimization import create_optimizer

    kernel = tf.Variable([1.0, 1.0], name="layer_0/query/kernel")
    bias = tf.Variable([1.0, 1.0], name="layer_0/query/bias")
    gamma = tf.Variable([1.0, 1.0], name="layer_0/attention_norm/gamma")
    opt = create_optimizer(0.1, total_steps=10, warmup_fraction=0.0, weight_decay=0.5)
    opt.apply_gradients([(tf.zeros(2), v) for v in (kernel, bias, gamma)])
    assert kernel.numpy()[0] < 1.0  # decayed
    assert bias.numpy()[0] == 1.0 and gamma.numpy()[0] == 1.0


@pytest.mark.parametrize("sparse", [False, True])
def test_adamw_updates_as_tf_keras_adamw_does_in_one_kernel(sparse):
    from app.optimization import WarmupLinearDecay, create_optimizer

    rng = np.random.default_rng(0)
    initial = rng.normal(size=(10, 4)).astype(np.float32)
    ours_table, stock_table = tf.Variable(initial, name="word"), tf.Variable(initial, name="word")
    ours = create_optimizer(0.1, total_steps=10, warmup_fraction=0.0, weight_decay=0.5)
    stock = tf.keras.optimizers.AdamW(WarmupLinearDecay(0.1, 10, 0), weight_decay=0.5,
                                      epsilon=1e-6, global_clipnorm=1.0)
    if sparse:  # an embedding lookup's gradient, with a repeated row
        values = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))
        grad = tf.IndexedSlices(values, tf.constant([1, 3, 1]), tf.constant([10, 4]))
    else:
        grad = tf.constant(rng.normal(size=(10, 4)).astype(np.float32))

    def op_types(optimizer, table):
        step = tf.function(lambda: optimizer.apply_gradients([(grad, table)]))
        return {op.type for op in step.get_concrete_function().graph.get_operations()}

    # Ours: one fused Adam kernel and no scatter into the slots (which would put them in
    # copy-on-read mode); the stock optimizer has no fused kernel and scatters sparse gradients.
    ours_ops, stock_ops = op_types(ours, ours_table), op_types(stock, stock_table)
    assert "ResourceApplyAdam" in ours_ops and "ResourceApplyAdam" not in stock_ops
    assert not any("Scatter" in t for t in ours_ops)
    assert ("ResourceScatterAdd" in stock_ops) == sparse
    for _ in range(3):
        ours.apply_gradients([(grad, ours_table)])
        stock.apply_gradients([(grad, stock_table)])
    np.testing.assert_allclose(ours_table.numpy(), stock_table.numpy(), rtol=0, atol=1e-5)
    assert not np.allclose(ours_table.numpy()[0], initial[0])  # not lazy: every row moves


def test_mixed_precision_auto():
    assert train.choose_precision("auto", offline_encoder=True, fast_bfloat16=True) == "bf16"
    assert train.choose_precision("auto", offline_encoder=True, fast_bfloat16=False) == "none"
    assert train.choose_precision("auto", offline_encoder=False, fast_bfloat16=True) == "none"
    assert train.choose_precision("fp16", offline_encoder=False, fast_bfloat16=False) == "fp16"


# ----------------------------------------------------------------------------- distribute


def test_auto_strategy_on_this_machine_is_the_cpu():
    from app.distribute import choose_strategy, uses_accelerator

    strategy, why = choose_strategy("auto")
    assert strategy.num_replicas_in_sync == 1 and "CPU" in why
    assert uses_accelerator(strategy) is False


def test_multi_worker_needs_tf_config(monkeypatch):
    from app.distribute import choose_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        choose_strategy("multi-worker")


# ----------------------------------------------------------------------------- end to end


def test_run_writes_run_folder_export_and_report(trained_tiny):
    result, cfg = trained_tiny
    run = result.run_dir
    assert json.loads((run / "config.json").read_text())["model_name"] == "tiny"
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2, 3, 4] and {"loss", "val_accuracy"} <= set(history.columns)
    assert len(json.loads((run / "history.json").read_text())) == 5
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert json.loads((run / "classes.json").read_text()) == ["neg", "pos"]
    assert result.export_dir == Path(cfg.output_dir) / "tiny" / "1"
    assert (result.export_dir / "saved_model.pb").is_file()
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["n_examples"] == 20  # the test split, not validation
    assert report["accuracy"] >= 0.8  # the tiny task is separable by its sentiment words


def test_killed_run_resumes_from_backup(tiny_hub, tiny_reviews, tmp_path):
    args = tiny_train_args(tiny_hub, tiny_reviews, tmp_path, epochs=3)
    killer = textwrap.dedent("""
        import os, signal, sys
        import tensorflow as tf
        from app import config, train
        import argparse

        class KillAfterFirstEpoch(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                os.kill(os.getpid(), signal.SIGKILL)

        p = argparse.ArgumentParser(); config.add_arguments(p)
        train.run(config.build_config(p.parse_args(sys.argv[1:])), callbacks=[KillAfterFirstEpoch()])
    """)
    first = run_cli(args, script=killer)
    assert first.returncode == -signal.SIGKILL
    assert (tmp_path / "run" / "backup").exists()
    assert not (tmp_path / "models" / "tiny").exists()
    second = run_cli(args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from epoch 2" in second.stdout
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2]  # epoch 1 not repeated
    assert (tmp_path / "models" / "tiny" / "1" / "saved_model.pb").is_file()
    assert not (tmp_path / "run" / "backup").exists()


def test_resume_refuses_a_different_config(tiny_hub, tiny_reviews, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "backup" / "chief").mkdir(parents=True)
    (run_dir / "backup" / "chief" / "checkpoint").write_text("model_checkpoint_path: 'ckpt-1'\n")
    (run_dir / "config.json").write_text(json.dumps({"epochs": 99}))
    with pytest.raises(ValueError, match="unfinished run with different settings"):
        train.run(_parse(tiny_train_args(tiny_hub, tiny_reviews, tmp_path)))


MIRRORED = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from app import train
    sys.exit(train.main(sys.argv[1:]))
""")


def test_mirrored_strategy_on_two_logical_cpus(tiny_hub, tiny_reviews, tmp_path):
    # 64 tokens: the ~10-token reviews get batches padded to 32 only (length buckets).
    args = tiny_train_args(tiny_hub, tiny_reviews, tmp_path, strategy="mirrored", epochs=1,
                           max_seq_length=64)
    proc = run_cli(args, script=MIRRORED, env=FUSION_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MirroredStrategy with 2 replica(s)" in proc.stderr
    assert "CPU fusion True" in proc.stderr
    assert "length buckets True" in proc.stderr  # batches of varying length, split across replicas
    assert (tmp_path / "models" / "tiny" / "1" / "saved_model.pb").is_file()
    odd = run_cli(tiny_train_args(tiny_hub, tiny_reviews, tmp_path / "odd", strategy="mirrored",
                                  batch_size=7), script=MIRRORED)
    assert odd.returncode == 2 and "must divide by the 2 replicas" in odd.stderr


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


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
