"""app.config: defaults, file and flags; validation; --help; what `resolve` chooses for a run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re

import pytest

from app import config
from tests.conftest import ENV, run_module


def _parse(argv):
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
    assert cfg.length_buckets is None  # chosen at run time: on, off on TPU
    assert _parse(["--no-length-buckets"]).length_buckets is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "-1"], "--epochs must be at least 1, got -1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--learning-rate", "2"], "--learning-rate must be in (0, 1)"),
    (["--head-learning-rate-factor", "0"], "--head-learning-rate-factor must be in (0, 1000], got 0.0"),
    (["--layer-decay", "1.5"], "--layer-decay must be in (0, 1], got 1.5"),
    (["--truncation", "middle"], "--truncation must be one of"),
    (["--validation-split", "1.5"], "--validation-split must be in (0, 1)"),
    (["--strategy", "gpu-cluster"], "--strategy must be one of"),
    (["--strategy", "one-device"], "--strategy must be one of"),  # the same as auto: gone
    (["--mixed-precision", "fp16"], "--mixed-precision must be one of"),  # reached only the head: gone
    (["--model-name", "../escape"], "--model-name must be a folder name"),
    (["--max-seq-length", "4"], "--max-seq-length must be between 8"),
    (["--unlabeled-data", "/no/such"], "--unlabeled-data no such file or directory, got '/no/such'"),
    (["--unlabeled-data", ".", "--no-ngram-model"], "--unlabeled-data trains the n-gram model again"),
    (["--unlabeled-data", ".", "--text-pair-column", "b"], "--unlabeled-data is for single texts"),
    (["--max-unlabeled-examples", "0"], "--max-unlabeled-examples must be at least 1, got 0"),
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
    bad.write_text(json.dumps({"dataset": "imdb"}))  # --data imdb says it
    with pytest.raises(ValueError, match="unknown setting 'dataset'"):
        _parse(["--config", str(bad)])
    bad.write_text(json.dumps({"epochs": "many"}))
    with pytest.raises(ValueError, match="epochs must be int"):
        _parse(["--config", str(bad)])
    with pytest.raises(ValueError, match="no such file"):
        _parse(["--config", str(tmp_path / "missing.yaml")])


def test_help_groups_every_flag_describes_it_and_shows_its_default_once():
    # (PYTHONPROFILEIMPORTTIME: every module the process imports is listed on stderr.)
    proc = run_module("train", "--help", timeout=60, env={**ENV, "PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    groups = re.findall(r"^(\w+):$", text, flags=re.M)
    assert groups[-5:] == list(config.GROUPS)
    entries, current = {}, None
    for line in text.split("options:", 1)[1].splitlines():
        if re.match(r"^  --", line):
            current = line.split()[0]
            entries[current] = line[len(current) + 2:]
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = None
    for field in dataclasses.fields(config.TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        entry = " ".join(entries[next(k for k in entries if k.rstrip(",").endswith(flag))].split())
        assert entry.count("(default:") == 1, (flag, entry)
        assert len(entry.split("(default:")[0].split()) >= 4, (flag, entry)  # metavar + a description
    imported = set(re.findall(r"^import time:.*\|\s*(\S+)\s*$", proc.stderr, flags=re.M))
    assert "app.config" in imported and "argparse" in imported  # the list is there
    assert not {"tensorflow", "pandas"} & imported  # --help answers without loading them


# ----------------------------------------------------------------------------- resolve


CPU = config.Hardware("default strategy (one device)", 1, "CPU", fast_bfloat16=False, cpu_fusion=True)


def fake_encoders(hidden_size=384, saved_dtype=None, max_seq_length=512, offline=True):
    """A stand-in for app.model.encoders.resolve: the offline encoder has a bf16 variant; others
    compute in `saved_dtype` (float32 by default)."""
    asked = []

    def find(name, preprocess=None, compute_dtype="float32"):
        asked.append(compute_dtype)
        return config.EncoderSpec(name, preprocess or "/enc/preprocess", "/enc/encoder", 6, hidden_size,
                           max_seq_length, offline=offline,
                           compute_dtype=saved_dtype or (compute_dtype if offline else "float32"),
                           pooled_only=True, implementation="fast")

    return find, asked


def _nulls_and_autos(values: dict) -> list[str]:
    return sorted(k for k, v in values.items() if v is None or v == "auto")


def test_resolve_chooses_every_default_for_the_encoder_and_the_hardware():
    find, _ = fake_encoders()
    resolved = config.resolve(config.TrainConfig(), CPU, find)
    c = resolved.settings
    assert (c.batch_size, c.learning_rate) == (32, 1e-4)  # MiniLM's width 384
    assert c.mixed_precision == "none" and resolved.encoder.compute_dtype == "float32"
    assert c.jit_compile is False and resolved.cpu_fusion is True  # CPU: fusion, not whole-step XLA
    assert c.length_buckets is True and resolved.drop_remainder is False
    assert c.preprocess == "/enc/preprocess" and c.run_dir == "runs/bertclf"
    assert resolved.versions["tensorflow"].startswith("2.21")
    # Nothing left to choose but the columns and the sequence length (chosen from the data), the
    # export version (at export) and what the user left unset on purpose (no test data, subsets,
    # TPU, time budget, label names, multi-label columns, a decision threshold, unlabelled texts);
    # the header and the task are detected from the data, the regime from its size.
    assert c.epochs == config.DEFAULT_EPOCHS
    assert _nulls_and_autos(c.to_dict()) == ["cpu_fusion", "decision_threshold", "format",
                                             "head_learning_rate_factor", "header", "label_column",
                                             "label_columns",
                                             "label_names", "label_separator", "max_eval_examples",
                                             "max_seq_length", "max_train_examples", "regime", "task",
                                             "test_data",
                                             "text_column", "text_pair_column", "time_budget", "tpu",
                                             "unlabeled_data", "version"]
    assert resolved.requested == config.TrainConfig()  # what was asked for, kept beside it
    full = resolved.with_data({"text": "review", "label": "sentiment"}, ["neg", "pos"], steps_per_epoch=3)
    saved = json.loads(full.to_json())
    assert saved["settings"]["text_column"] == "review" and saved["classes"] == ["neg", "pos"]
    assert saved["settings"]["version"] is None  # the export's number is what happened: app.record
    assert saved["schedule"] == {"steps_per_epoch": 3, "total_steps": 9, "warmup_steps": 1}
    assert saved["hardware"]["strategy"] == CPU.strategy and saved["encoder"]["pooled_only"] is True
    # The head's learning rate by task, unless given.
    assert full.settings.head_learning_rate_factor == 1.0
    labels = resolved.with_data({}, ["a", "b"], steps_per_epoch=3, multi_label=True)
    assert labels.settings.head_learning_rate_factor == config.MULTI_LABEL_HEAD_FACTOR
    assert labels.settings.epochs == config.MULTI_LABEL_EPOCHS
    assert full.settings.epochs == config.DEFAULT_EPOCHS
    assert labels.schedule["total_steps"] == 3 * config.MULTI_LABEL_EPOCHS
    asked_for = config.TrainConfig(head_learning_rate_factor=2.0, epochs=2)
    given = config.resolve(asked_for, CPU, fake_encoders()[0])
    asked = given.with_data({}, ["a", "b"], 3, multi_label=True).settings
    assert (asked.head_learning_rate_factor, asked.epochs) == (2.0, 2)


def test_a_budget_leaves_stopping_to_its_deadline_unless_a_patience_is_given():
    find = fake_encoders()[0]
    assert config.resolve(config.TrainConfig(), CPU, find).settings.patience == config.DEFAULT_PATIENCE
    assert config.resolve(config.TrainConfig(time_budget=10), CPU, find).settings.patience is None
    given = config.TrainConfig(time_budget=10, patience=1)
    assert config.resolve(given, CPU, find).settings.patience == 1
    with pytest.raises(ValueError, match="--patience.*-1"):
        config.validate(config.TrainConfig(patience=-1))


def test_the_settled_regime_keeps_why_beside_the_plan_and_reads_the_mean_when_contrastive():
    resolved = config.resolve(config.TrainConfig(), CPU, fake_encoders()[0])
    assert resolved.settings.regime == "auto" and resolved.settings.pooling == "cls"
    small = resolved.with_regime("contrastive", "180 training examples")
    assert (small.settings.regime, small.settings.pooling) == ("contrastive", "mean")
    planned = small.with_plan({"max_seq_length": "auto"}, max_seq_length=128)
    assert planned.plan == {"regime": "180 training examples", "max_seq_length": "auto"}
    large = resolved.with_regime("fine-tune", "20000 training examples")
    assert (large.settings.regime, large.settings.pooling) == ("fine-tune", "cls")
    with pytest.raises(ValueError, match="--regime must be one of .* got 'setfit'"):
        config.validate(config.TrainConfig(regime="setfit"))


def test_a_budgets_schedule_warms_up_over_the_steps_it_expects():
    """The plan may give more epochs than the estimate fits (the deadline ends the run): the
    warm-up is a share of the steps expected, the decay spans the epochs planned."""
    resolved = config.resolve(config.TrainConfig(time_budget=10), CPU, fake_encoders()[0])
    planned = resolved.with_plan({"expected_epochs": 0.5}, epochs=2)
    schedule = planned.with_data({}, ["neg", "pos"], steps_per_epoch=100).schedule
    assert schedule == {"steps_per_epoch": 100, "total_steps": 200, "warmup_steps": 5}


def test_resolve_on_hardware_with_native_bfloat16_takes_the_bf16_encoder():
    find, asked = fake_encoders()
    fast = dataclasses.replace(CPU, fast_bfloat16=True)
    assert config.resolve(config.TrainConfig(), fast, find).settings.mixed_precision == "bf16"
    assert asked == ["bfloat16"]
    none = config.resolve(config.TrainConfig(mixed_precision="none"), fast, find)
    assert none.settings.mixed_precision == "none"
    # A TF Hub encoder computes in float32 whatever the hardware: auto keeps it.
    hub, _ = fake_encoders(hidden_size=768, offline=False)
    resolved = config.resolve(config.TrainConfig(encoder="bert_en_uncased_L-12_H-768_A-12"), fast, hub)
    assert resolved.settings.mixed_precision == "none" and resolved.settings.learning_rate == 3e-5


@pytest.mark.parametrize("cfg, encoder, message", [
    ({"mixed_precision": "bf16"}, {"offline": False},
     "--mixed-precision bf16: encoder .* computes in float32"),
    ({"mixed_precision": "none"}, {"saved_dtype": "bfloat16", "offline": False},
     "--mixed-precision none: encoder .* bfloat16"),
    ({"max_seq_length": 256}, {"max_seq_length": 128}, "above the encoder's limit of 128"),
    ({"batch_size": 7}, {}, "must divide by the 2 replicas"),
])
def test_resolve_refuses_what_cannot_run(cfg, encoder, message):
    find, _ = fake_encoders(**encoder)
    two = dataclasses.replace(CPU, replicas=2, strategy="MirroredStrategy")
    with pytest.raises(ValueError, match=message):
        config.resolve(config.TrainConfig(**cfg), two, find)


def test_resolve_on_accelerators_compiles_the_step_and_pads_statically():
    find, _ = fake_encoders(hidden_size=1024)
    tpu = config.Hardware("TPUStrategy", 8, "TPU", fast_bfloat16=True, cpu_fusion=False)
    resolved = config.resolve(config.TrainConfig(), tpu, find)
    c = resolved.settings
    assert c.jit_compile is True and c.length_buckets is False and resolved.drop_remainder is True
    assert (c.batch_size, c.learning_rate) == (16, 2e-5) and resolved.cpu_fusion is False


def test_a_runs_config_json_is_a_config_file_of_its_resolved_settings(tmp_path):
    find, _ = fake_encoders()
    resolved = config.resolve(config.TrainConfig(epochs=2, version=3), CPU, find)
    (tmp_path / "config.json").write_text(resolved.to_json())
    again = _parse(["--config", str(tmp_path / "config.json")])
    assert again == dataclasses.replace(resolved.settings, version=None)  # the next export, not 3 again
    # A run saved before the settings had their name kept them under "config".
    old = {**json.loads(resolved.to_json()), "config": resolved.settings.to_dict()}
    del old["settings"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert _parse(["--config", str(tmp_path / "old.json")]) == again
