"""app.reporting.findings: each rule fires on the numbers it names, and stays quiet otherwise."""

from __future__ import annotations

import argparse
import re

import pandas as pd
import pytest

from app.reporting.findings import findings, wilson_interval


def _report(**overrides):
    report = {"n_examples": 5000, "accuracy": 0.9, "macro_recall": 0.9, "classes": ["neg", "pos"],
              "per_class": {"neg": {"recall": 0.9, "support": 2500}, "pos": {"recall": 0.9, "support": 2500}},
              "confusion_matrix": [[2250, 250], [250, 2250]], "ece": 0.01, "config": {}}
    report.update(overrides)
    return report


def test_a_sound_report_has_no_findings():
    assert findings(_report()) == []


def test_wilson_interval_by_hand():
    assert wilson_interval(8, 8) == pytest.approx((0.6756, 1.0), abs=1e-4)
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)


def test_each_rule_names_its_number():
    history = pd.DataFrame({"epoch": [0, 1, 2], "loss": [0.6, 0.4, 0.2], "val_loss": [0.5, 0.45, 0.6]})
    report = _report(
        n_examples=8, accuracy=1.0, macro_recall=0.7,
        baseline={"accuracy": 0.995, "seconds": 3, "name": "b"},
        per_class={"neg": {"recall": 0.95, "support": 4}, "pos": {"recall": 0.45, "support": 4}},
        confusion_matrix=[[4, 0], [3, 1]],
        config={"settings": {"max_seq_length": 128}}, record={"data": {"over_seq_length": 0.38}},
        calibration={"temperature": 1.7, "before": {"ece": 0.2, "log_loss": 0.6},
                     "after": {"ece": 0.05, "log_loss": 0.4}},
        surprising_training_examples=[{"id": "t:7", "label": "pos", "model": "neg", "loss": 4.2,
                                       "text": "x"}])
    text = "\n".join(findings(report, history))
    assert "Only 8 evaluation examples" in text and "0.68 to 1.00" in text
    assert "within 0.5 points of the TF-IDF baseline" in text
    assert "Validation loss rose from 0.4500 (epoch 2) to 0.6000 (epoch 3)" in text
    assert "Class pos has recall 0.4500" in text and "mistaken for neg (3 of 4)" in text
    assert "38 % of the training texts are longer than --max-seq-length 128" in text
    assert "error 0.2000 before, 0.0500 after" in text and "did not help" not in text
    worse = findings(_report(calibration={"temperature": 0.6, "fitted_on": 160, "before": {"ece": 0.026,
                     "log_loss": 0.108}, "after": {"ece": 0.028, "log_loss": 0.115}}))
    assert "It did not help here: fitted on 160 validation examples" in worse[0]
    unfitted = findings(_report(calibration={"temperature": 1.0, "fitted_on": 20, "why": "fewer than 50",
                                             "before": {"ece": 0.03, "log_loss": 0.3},
                                             "after": {"ece": 0.03, "log_loss": 0.3}}))
    assert unfitted == ["The probabilities are not calibrated: 20 validation examples are too few to fit a "
                        "temperature on (expected calibration error 0.0300); a larger validation split "
                        "(--validation-split) fits one."]
    assert "most surprising, t:7, is labelled pos and the model says neg (loss 4.20)" in text
    tie = findings(_report(baseline={"accuracy": 0.9, "seconds": 3, "name": "b"}))
    assert tie[0].startswith("The model ties the TF-IDF baseline (accuracy 0.9000")
    calm = findings(_report(surprising_training_examples=[{"id": "t", "label": "a", "model": "a", "loss": 0.1,
                                                           "text": "x"}]))
    assert calm == []  # every sampled label got more than half the probability
    beaten = findings(_report(baseline={"accuracy": 0.93, "seconds": 3, "name": "b"}))
    assert beaten[0].startswith("The TF-IDF baseline beats the model: accuracy 0.9300 against 0.9000")


FLAG = re.compile(r"(--[a-z][a-z-]*)(?:\s+([^\s,;:()]+))?")


def _suggested(text: str) -> list[list[str]]:
    """Each `--flag value` a finding names, as argv (a sentence's closing full stop dropped)."""
    out = []
    for flag, value in FLAG.findall(text):
        value = value.rstrip(".")
        out.append([flag] + ([value] if value and not value.startswith("--") else []))
    return out


@pytest.mark.parametrize("multi_label", [False, True])
def test_every_flag_a_finding_suggests_parses_and_suits_the_runs_task(multi_label):
    """Run each suggestion through app.train's parser and validation, and the checks the run
    makes against its data's task (multi-label data refuses single-label flags)."""
    from app import config, data, train
    from app.model.classifier import class_weights

    history = pd.DataFrame({"epoch": [0, 1, 2], "loss": [0.6, 0.4, 0.2], "val_loss": [0.5, 0.45, 0.6]})
    key = "micro_f1" if multi_label else "accuracy"
    report = _report(
        n_examples=8, macro_recall=0.7, task="multi-label" if multi_label else "single-label",
        **{key: 0.8}, baseline={key: 0.9, "seconds": 3, "name": "b"},
        per_class={"neg": {"recall": 0.95, "support": 4}, "pos": {"recall": 0.45, "support": 4}},
        training={"wall_seconds": 400},
        config={"settings": {"max_seq_length": 128}}, record={"data": {"over_seq_length": 0.38}},
        calibration={"temperature": 0.6, "fitted_on": 160, "before": {"ece": 0.026, "log_loss": 0.108},
                     "after": {"ece": 0.028, "log_loss": 0.115}})
    found = findings(report, history)
    suggestions = [s for f in found for s in _suggested(f)]
    assert {s[0] for s in suggestions} >= {"--time-budget", "--max-seq-length", "--validation-split"}, found
    # Positive weights lowered multi-label F1 where they were measured (bench/multilabel.py).
    assert ("--class-weight" in {s[0] for s in suggestions}) == (not multi_label)
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    labels = [("pos",), ("neg", "pos"), ()] * 4 if multi_label else ["pos", "neg"] * 6
    split = data.Split(["t"] * 12, labels, [str(i) for i in range(12)])
    for argv in suggestions:
        cfg = config.build_config(parser.parse_args(argv))  # a flag without its value fails here
        train.check_task_flags(cfg, multi_label, 2)
        class_weights(split.labels, ["neg", "pos"], cfg.class_weight)
    assert ["--time-budget", "14"] in suggestions  # twice the 400 s training took, in minutes
