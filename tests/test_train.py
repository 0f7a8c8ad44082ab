"""app.train: the main job end to end on a tiny encoder; what it records of the run; its CLI's
answers to bad flags and unwritable folders."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from app import config, train
from tests.conftest import ENV, ROOT, assert_clear_failure, run_in_process, run_module, tiny_train_args


def _parse(argv):
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.build_config(parser.parse_args(argv))


def test_run_writes_run_folder_export_and_report(trained_tiny):
    result, cfg = trained_tiny
    run = result.run_dir
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
    # The classic baseline, fitted on the same training split, scored on the same test split.
    baseline = report["baseline"]
    assert baseline["n_examples"] == 20 and baseline["train_examples"] == 180
    assert baseline["accuracy"] >= 0.8
    assert 0 <= baseline["seconds"] < result.record.training["wall_seconds"]  # seconds, against minutes
    # The pass over the validation split after fit is timed (a budget reserves time for it).
    training = result.record.training
    after_fit = training["validation_pass_seconds"] + training["after_pass_seconds"]
    assert 0 <= after_fit < training["wall_seconds"]
    md = (result.report_dir / "report.md").read_text()
    assert "Against the classic baseline" in md and "| TF-IDF (word 1-2-grams) + logistic regression |" in md
    # Two classes: the operating points, and what the export decides by.
    assert report["decision_threshold"] == "argmax (0.5)" and len(report["operating_points"]["grid"]) == 9
    assert "## Operating points" in md and "Best F1" in md
    # The training examples with the highest loss, quoted to check their labels; highest first.
    surprising = report["surprising_training_examples"]
    assert len(surprising) == 5 and all(m["label"] in ("neg", "pos") for m in surprising)
    assert [m["loss"] for m in surprising] == sorted((m["loss"] for m in surprising), reverse=True)
    assert "## Most surprising training examples" in md and "## Findings" in md


def test_a_small_single_label_run_takes_the_contrastive_regime_and_records_it(trained_tiny):
    """180 training reviews: pairs first (20 a review), the head started by a logistic regression
    on the mean-pooled embedding, then fit trains the head alone; said in the config and record."""
    from app.training import contrastive

    result, _ = trained_tiny
    saved = json.loads((result.export_dir / "assets" / "config.json").read_text())
    assert (saved["settings"]["regime"], saved["settings"]["pooling"]) == ("contrastive", "mean")
    assert saved["requested"]["regime"] == "auto" and "180 training examples" in saved["plan"]["regime"]
    done = json.loads((result.export_dir / "assets" / "record.json").read_text())["contrastive"]
    assert done["pairs"] == done["pairs_trained"] == contrastive.PAIRS_PER_EXAMPLE * 180
    assert done["steps_trained"] == done["steps"]
    assert done["head_train_accuracy"] >= 0.9  # the tiny task's sentiment words separate it
    # 20 validation reviews are too few to choose an ensemble on: the even average, and why.
    from app.model import ngram

    chosen = json.loads((result.export_dir / "assets" / "record.json").read_text())["ngram"]
    assert chosen["validation_examples"] == 20 < ngram.MIN_CHOOSING_EXAMPLES
    assert (chosen["rule"], chosen["weight"]) == ("average", ngram.EVEN_WEIGHT)
    assert "fewer than 50 validation texts" in chosen["why"] and "pooling" not in chosen
    # Its validation accuracy is the even average's, as served (not the best weight's of the search).
    served = json.loads((result.export_dir / "assets" / "record.json").read_text())["self_training"]
    assert chosen["validation_accuracy"]["ensemble"] == served["validation_accuracy"]["after"]["ensemble"]


def test_self_training_labels_the_unlabelled_reviews_and_teaches_the_ngram_model_their_words(trained_tiny):
    """--unlabeled-data given the aclImdb folder: its train/unsup/ reviews (less an empty one and a
    copy of a training review) labelled by the trained model; the n-gram model, fitted again with
    them, reads the words only they have; the record and the report say so."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 (the export tokenizes)

    from tests.conftest import UNSUP_WORDS

    result, cfg = trained_tiny
    record = json.loads((result.export_dir / "assets" / "record.json").read_text())
    done = record["self_training"]
    assert done["unlabeled_texts"] == 200 and done["source"] == cfg.unlabeled_data and done["kept"] is True
    assert sum(done["pseudo_labels"].values()) == 200 and 80 <= done["pseudo_labels"]["pos"] <= 120
    assert set(done["validation_accuracy"]) == {"before", "after"}
    assert all(0 <= v <= 1 for part in done["validation_accuracy"].values() for v in part.values())
    assert record["ngram"]["pseudo_labelled_examples"] == 200 and record["ngram"]["train_examples"] == 380
    loaded = tf.saved_model.load(str(result.export_dir))
    p = loaded.ngram_probabilities(tf.constant([UNSUP_WORDS["pos"], UNSUP_WORDS["neg"]])).numpy()
    assert p[0, 1] > 0.6 and p[1, 1] < 0.4  # classes in order: neg, pos
    md = (result.report_dir / "report.md").read_text()
    assert "Self-training: 200 unlabelled texts" in md and "Validation accuracy (20 texts)" in md


def test_unlabelled_texts_for_label_sets_are_refused_before_training(tiny_hub, tmp_path):
    from tests.conftest import write_tiny_tags

    table, names = write_tiny_tags(tmp_path)
    lines = tmp_path / "unlabeled.txt"
    lines.write_text("some text\n")
    argv = tiny_train_args(tiny_hub, table, tmp_path, text_column="0", label_column="1", label_separator=",",
                           label_names=names, unlabeled_data=lines)
    with pytest.raises(ValueError, match="--unlabeled-data .*unlabeled.txt: self-training is for one label"):
        train.run(_parse(argv))
    assert not (tmp_path / "models").exists()


# What the run left to be chosen and what was chosen for it (tiny_train_args gives batch size
# and learning rate, so those are the user's).
CHOSEN = {"mixed_precision": "none", "jit_compile": False, "length_buckets": True, "strategy": "cpu"}


def test_every_resolved_value_is_recorded_in_the_run_the_export_and_the_report(trained_tiny):
    result, cfg = trained_tiny
    report = json.loads((result.report_dir / "report.json").read_text())
    configs = {"run": json.loads((result.run_dir / "config.json").read_text()),
               "export": json.loads((result.export_dir / "assets" / "config.json").read_text()),
               "report": report["config"]}
    assert configs["run"] == configs["export"] == configs["report"]
    records = {"run": json.loads((result.run_dir / "record.json").read_text()),
               "export": json.loads((result.export_dir / "assets" / "record.json").read_text()),
               "report": report["record"]}
    assert records["run"] == records["export"] == records["report"] == result.record.to_dict()
    saved, record = configs["export"], records["export"]
    values = saved["settings"]
    for key, value in CHOSEN.items():
        assert values[key] == value, key
    assert values["preprocess"] == str(Path(cfg.encoder) / "preprocess")
    assert values["run_dir"] == str(result.run_dir)
    # No null or "auto" left but settings that were left unset on purpose or do not apply
    # (a folder of files has no columns, no header and no label names file).
    unset = sorted(k for k, v in values.items() if v is None or v == "auto")
    assert unset == ["decision_threshold", "format", "header", "label_column", "label_columns", "label_names",
                     "label_separator", "max_eval_examples", "max_train_examples", "test_data", "text_column",
                     "text_pair_column", "time_budget", "tpu", "version"]
    assert values["task"] == "single-label"  # resolved from the data
    assert values["cpu_fusion"] == "off"  # the suite runs without the fusion flags (conftest.py)
    assert saved["tuning"]["cpu_fusion"]["chosen_by"].startswith("this process has no CPU fusion flags")
    assert saved["requested"]["mixed_precision"] == "auto" and saved["requested"]["version"] is None
    assert saved["encoder"]["encoder"] == str(Path(cfg.encoder) / "encoder")
    assert saved["encoder"]["pooled_only"] is True and saved["converter"]["implementation"] == "fast"
    assert saved["hardware"]["device"] == "CPU" and saved["hardware"]["replicas"] == 1
    assert saved["cpu_fusion"] is False  # off in the suite (conftest.py)
    assert saved["classes"] == ["neg", "pos"]
    assert saved["schedule"] == {"steps_per_epoch": 23, "total_steps": 115, "warmup_steps": 12}
    # What happened: the data as read (each split named by its source), the training, the export.
    data = record["data"]
    assert data["over_seq_length"] == 0.0  # 8-word reviews, 32 pieces
    assert data["examples"] == {"train": 180, "validation": 20, "test": 20}
    assert data["sources"] == {"train": f"{cfg.data} (train split), less the validation split",
                               "validation": f"20 examples of {cfg.data} (train split) held out "
                                             f"(stratified, seed {cfg.seed})",
                               "test": f"{cfg.data} (test split)"}
    assert report["data"] == data["sources"]["test"]
    assert record["export"] == {"path": str(result.export_dir), "version": 1}
    assert record["training"]["epochs_run"] == len(pd.read_csv(result.run_dir / "history.csv"))
    assert set(saved["versions"]) >= {"tensorflow", "tensorflow-text", "tf-keras", "tensorflow-hub"}


def test_a_tables_columns_and_the_schedule_are_resolved_from_the_data(tiny_hub, tmp_path):
    rows = [{"review": f"good great film {i}", "stars": "pos"} for i in range(20)]
    rows += [{"review": f"bad awful plot {i}", "stars": "neg"} for i in range(20)]
    pd.DataFrame(rows).to_csv(tmp_path / "reviews.csv", index=False)
    args = tiny_train_args(tiny_hub, tmp_path / "reviews.csv", tmp_path, epochs=2, label_column="stars")
    strategy, resolved = train.resolve(_parse(args))
    dataset = train.read_data(resolved)
    resolved, dataset, lengths = train.settle(resolved, strategy, dataset)
    values = resolved.settings
    assert (values.text_column, values.label_column) == ("review", "stars")  # one found, one given
    assert resolved.classes == ["neg", "pos"] and values.task == "single-label"
    assert resolved.schedule == {"steps_per_epoch": 5, "total_steps": 10, "warmup_steps": 1}
    data = train.data_record(resolved, dataset, lengths)
    assert data["examples"] == {"train": 36, "validation": 4}
    assert data["over_seq_length"] == 0.0  # four words fit in 32 word pieces
    assert dataset.sources == {"train": f"{tmp_path / 'reviews.csv'}, less the validation split",
                               "validation": f"4 examples of {tmp_path / 'reviews.csv'} held out "
                                             "(stratified, seed 42)"}


def test_seq_length_above_encoder_limit(tiny_hub, tiny_reviews, tmp_path):
    with pytest.raises(ValueError, match="above the encoder's limit of 128"):
        train.run(_parse(tiny_train_args(tiny_hub, tiny_reviews, tmp_path, max_seq_length=256)))


def test_a_run_folder_in_use_is_refused_before_any_work(tiny_hub, tiny_reviews, tmp_path):
    from tests.test_backup import _HOLD

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run_dir)], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_in_process("train", *tiny_train_args(tiny_hub, tiny_reviews, tmp_path))
        assert_clear_failure(proc, f"is in use by another app.train (pid {holder.pid} on")
    finally:
        holder.kill()
        holder.wait()
    assert not (run_dir / "config.json").exists() and not (tmp_path / "models").exists()


def test_resume_refuses_a_different_config(tiny_hub, tiny_reviews, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "backup" / "000001").mkdir(parents=True)  # a backup, as app.training.backup.Store leaves one
    (run_dir / "backup" / "000001" / "ckpt.index").write_bytes(b"")
    (run_dir / "backup" / "latest.json").write_text(json.dumps({"folder": "000001", "epoch": 1, "step": 3}))
    (run_dir / "config.json").write_text(json.dumps({"requested": {"epochs": 99}}))
    with pytest.raises(ValueError, match="unfinished run with different settings"):
        train.run(_parse(tiny_train_args(tiny_hub, tiny_reviews, tmp_path)))


@pytest.fixture(scope="module")
def bad_train_cases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_train")
    return tmp, {
        "negative epochs": (["--epochs", "-2"], "--epochs must be at least 1, got -2"),
        "unknown encoder": (["--encoder", "bert_gigantic"], "neither a known encoder name"),
        "seq length above the encoder's limit": (["--max-seq-length", "512"], "above the encoder's limit"),
        "batch larger than the data": (["--batch-size", "4096"], "larger than the"),
        "bad config file": (["--config", str(tmp / "missing.yaml")], "no such file"),
        "unknown flag value": (["--truncation", "middle"], "--truncation must be one of"),
        "unknown class weighting": (["--class-weight", "heavy"], "--class-weight must be none, balanced or"),
        "unknown header value": (["--header", "maybe"], "--header must be one of"),
        "missing data": (["--data", str(tmp / "nope")], "no such file or directory"),
        "bf16 for an fp32 encoder": (["--mixed-precision", "bf16"], "--mixed-precision bf16: encoder"),
    }


def test_cli_refuses_bad_flags_and_leaves_nothing(bad_train_cases, tiny_hub, tiny_reviews):
    tmp, cases = bad_train_cases
    for i, (name, (flags, message)) in enumerate(cases.items()):
        base = tiny_train_args(tiny_hub, tiny_reviews, tmp / str(i))
        proc = (run_module if i == 0 else run_in_process)("train", *base, *flags)
        assert_clear_failure(proc, message)
        assert not (tmp / str(i) / "models").exists(), name


def test_cli_refuses_unwritable_run_and_output_folders_before_training(tiny_hub, tiny_reviews, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = run_module("train", *tiny_train_args(tiny_hub, tiny_reviews, tmp_path, run_dir=blocker / "run"))
    assert_clear_failure(proc, "--run-dir")
    proc = run_in_process("train", *tiny_train_args(tiny_hub, tiny_reviews, tmp_path,
                                                    output_dir=blocker / "models"))
    assert_clear_failure(proc, "--output-dir")
    assert not (tmp_path / "run" / "history.csv").exists()  # refused before the first epoch


def test_max_seq_length_auto_comes_from_the_data(tiny_hub, tiny_reviews, tmp_path):
    args = tiny_train_args(tiny_hub, tiny_reviews, tmp_path, max_seq_length="auto", epochs=1)
    cfg = _parse(args)
    assert cfg.max_seq_length is None
    _, resolved = train.resolve(cfg)
    dataset = train.read_data(resolved)
    resolved, _ = train.plan(resolved, None, dataset, train.token_lengths(resolved, dataset))
    assert resolved.settings.max_seq_length == 64
    assert "smallest of" in resolved.plan["max_seq_length"]


def test_a_budget_needs_one_machine():
    hardware = config.Hardware("MultiWorkerMirroredStrategy", 2, "CPU", False, False)
    with pytest.raises(ValueError, match="--time-budget needs one machine"):
        config.resolve(_parse(["--time-budget", "10"]), hardware, find_encoder=lambda *a, **k: None)




def test_a_run_on_text_pairs_as_they_come_records_what_it_read_and_weighed(trained_pairs):
    """A paraphrase corpus's .txt (sniffed as TSV, a byte-order mark, its own header), integer
    labels named from a file, balanced class weights and mean pooling: all recorded, and the
    report reads the pairs."""
    from app import data

    result, cfg = trained_pairs
    saved = json.loads((result.export_dir / "assets" / "config.json").read_text())
    record = json.loads((result.export_dir / "assets" / "record.json").read_text())
    values = saved["settings"]
    assert (values["header"], values["text_column"], values["text_pair_column"], values["label_column"]) == (
        "yes", "#1 String", "#2 String", "Quality")
    assert values["pooling"] == "mean" and values["class_weight"] == "balanced"
    assert values["regime"] == "fine-tune" and record["contrastive"] == {}  # pairs of pairs: not this
    assert values["baseline"] == "none" and "baseline" not in result.report
    assert values["ngram_model"] is False and saved["requested"]["ngram_model"] is True  # none for pairs
    assert record["ngram"] == {}
    assert saved["classes"] == ["different", "same"]  # the names file's order
    # Balanced: each class weighs n / (2 x its count) in the training split the run used.
    table = data.TableFormat("#1 String", "Quality", label_names=cfg.label_names,
                             text_pair_column="#2 String")
    used = data.load_dataset(cfg.data, table=table, seed=values["seed"]).splits["train"].counts()
    n = sum(used.values())
    assert saved["class_weights"] == pytest.approx({c: n / (2 * k) for c, k in used.items()}, rel=1e-5)
    assert saved["class_weights"]["same"] > 2 * saved["class_weights"]["different"]
    # The report reads each pair as "first [SEP] second": 6 words, the separator and 5 words.
    predictions = pd.read_csv(result.report_dir / "predictions.csv")
    assert (predictions["n_words"] == 6 + 1 + 5).all()
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["n_examples"] == record["data"]["examples"]["validation"]


def test_a_multi_label_run_records_its_task_thresholds_and_report(trained_tags):
    """Detected from --label-separator, trained with a sigmoid head and each label's positives
    weighted by its rarity, the threshold rule chosen on validation and the thresholds recorded
    in the run, the export and the report; 28 labels, 25 of them rare."""
    from tests.conftest import LEARNABLE_TAGS, TAG_CLASSES

    result, _ = trained_tags
    saved = json.loads((result.run_dir / "config.json").read_text())
    record = json.loads((result.run_dir / "record.json").read_text())
    assert saved["settings"]["task"] == "multi-label"
    assert saved["settings"]["head_learning_rate_factor"] == config.MULTI_LABEL_HEAD_FACTOR
    classes = saved["classes"]
    assert classes == [c for c in TAG_CLASSES if c in classes]  # the names file's order
    assert classes[:3] == LEARNABLE_TAGS
    assert len(classes) >= 25  # a rare label may lose its three texts to the validation split
    assert set(record["thresholds"]) == set(classes)
    assert all(0 < t < 1 for t in record["thresholds"].values())
    rule = record["threshold_rule"]
    assert rule["rule"] in ("global", "per-label", "shrunk") and set(rule["rules"]) == {"global", "per-label",
                                                                                          "shrunk"}
    weights = saved["class_weights"]
    assert 1 <= weights["praise"] < 1.5 and weights["rare0"] == 10.0  # capped: 3 positives in ~144
    exported = json.loads((result.export_dir / "assets" / "record.json").read_text())
    assert exported["thresholds"] == record["thresholds"]
    history = pd.read_csv(result.run_dir / "history.csv")
    assert {"f1", "val_f1"} <= set(history.columns) and "val_accuracy" not in history
    report = result.report
    assert report["task"] == "multi-label" and report["thresholds"] == record["thresholds"]
    # The learnable labels are words in the texts: the run (n-grams and encoder) should find them.
    for tag in LEARNABLE_TAGS:
        assert report["per_class"][tag]["f1"] > 0.8, report["per_class"]
    assert record["ngram"]["weight"] >= 0 and "validation_loss" in record["ngram"]
    markdown = (result.report_dir / "report.md").read_text()
    assert f"Decision thresholds: the {rule['rule']} rule" in markdown


@pytest.mark.parametrize("flag, message", [
    (("decision_threshold", "0.7"), "--decision-threshold 0.7 is for two classes"),
])
def test_single_label_flags_are_refused_for_multi_label_data(tiny_hub, tmp_path, flag, message):
    from tests.conftest import write_tiny_tags

    table, _ = write_tiny_tags(tmp_path, n=40)
    proc = run_in_process("train", *tiny_train_args(tiny_hub, table, tmp_path, header="none", text_column="0",
                                                    label_column="1", label_separator=",", **dict([flag])))
    assert_clear_failure(proc, message)
    assert not (tmp_path / "models").exists()
