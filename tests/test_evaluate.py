"""app.evaluate: metrics against hand-computed values, every report file, edge cases."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from app.evaluate import write_report
from app.reporting.metrics import Predictions
from tests.conftest import assert_clear_failure, run_in_process, run_module
from tests.test_metrics import BINARY_TRUE, binary_probs


def _predictions(true, probs):
    texts = [f"review number {i} " + "word " * (i * 3) for i in range(len(true))]
    return Predictions([f"id{i}" for i in range(len(true))], texts, np.asarray(true), np.asarray(probs), 0.5)


def test_report_files_and_accuracy_from_csv(tmp_path):
    history = pd.DataFrame({"epoch": [0, 1], "loss": [0.7, 0.4], "accuracy": [0.5, 0.8],
                            "val_loss": [0.6, 0.5], "val_accuracy": [0.6, 0.7]})
    report = write_report(_predictions(BINARY_TRUE, binary_probs()), ["neg", "pos"], tmp_path,
                          model="m/1", data="fixture", history=history)
    for name in ("report.json", "predictions.csv", "report.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    pngs = ["confusion_matrix.png", "roc_curve.png", "precision_recall_curve.png", "reliability_diagram.png",
            "confidence_histogram.png", "accuracy_by_length.png", "training_curves.png"]
    for png in pngs:
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    saved = json.loads((tmp_path / "report.json").read_text())
    for key in ("n_examples", "classes", "accuracy", "macro_f1", "roc_auc", "ece", "confusion_matrix",
                "per_class", "examples_per_second", "model", "data"):
        assert key in saved
    assert saved["examples_per_second"] == pytest.approx(6 / 0.5)
    frame = pd.read_csv(tmp_path / "predictions.csv")
    assert list(frame.columns[:5]) == ["id", "true_label", "predicted_label", "prob_neg", "prob_pos"]
    assert (frame["true_label"] == frame["predicted_label"]).mean() == pytest.approx(report["accuracy"])
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    md = (tmp_path / "report.md").read_text()
    assert "Most confident mistakes" in md and "id2" in md  # 0.62 wrong "pos" is quoted


def test_the_report_says_how_the_model_trained(tmp_path):
    training = {"wall_seconds": 594.0, "epochs_run": 3, "budget_seconds": 600.0, "stopped_by_budget": True}
    contrastive = write_report(_predictions(BINARY_TRUE, binary_probs()), ["neg", "pos"], tmp_path / "c",
                               model="m/1", data="d", config={"settings": {"regime": "contrastive"}},
                               record={"training": training, "contrastive": {"pairs": 21600,
                                                                             "pairs_trained": 15136}})
    md = (tmp_path / "c" / "report.md").read_text()
    assert ("Trained in 9.9 min (the contrastive regime: 15,136 pairs of training texts, then the head "
            "3 epoch(s), budget 10 min, stopped by it).") in md
    assert contrastive["training"] == training
    write_report(_predictions(BINARY_TRUE, binary_probs()), ["neg", "pos"], tmp_path / "f", model="m/1",
                 data="d", config={"settings": {"regime": "fine-tune"}}, record={"training": training})
    fine_tuned = (tmp_path / "f" / "report.md").read_text()
    assert "Trained in 9.9 min (3 epoch(s), budget 10 min, stopped by it)." in fine_tuned


def test_the_report_says_when_the_probabilities_were_not_calibrated_and_why():
    from app.evaluate import _calibration_sentence

    figures = {"ece": 0.031, "log_loss": 0.3}
    unfitted = {"temperature": 1.0, "fitted_on": 20, "before": figures, "after": figures,
                "why": "fewer than 50 validation texts to fit a temperature on"}
    assert _calibration_sentence({"calibration": unfitted}) == (
        "Probabilities not calibrated (fewer than 50 validation texts to fit a temperature on: 20; a larger "
        "--validation-split fits one): ece 0.0310, log loss 0.3000.")
    fitted = {**unfitted, "temperature": 1.5, "fitted_on": 200, "after": {"ece": 0.01, "log_loss": 0.25}}
    del fitted["why"]
    assert _calibration_sentence({"calibration": fitted}).startswith(
        "Probabilities calibrated by temperature scaling (T = 1.5, fitted on 200 validation examples)")


def test_single_predicted_class_and_missing_class_still_report(tmp_path):
    probs = np.array([[0.8, 0.1, 0.1]] * 4)
    report = write_report(_predictions([0, 1, 0, 1], probs), ["a", "b", "c"], tmp_path, model="m", data="d")
    notes = " ".join(report["notes"])
    assert "single class (a)" in notes and "no examples of ['c']" in notes
    assert report["accuracy"] == 0.5
    assert (tmp_path / "report.html").exists()
    only_one = write_report(_predictions([1, 1, 1], np.array([[0.3, 0.7]] * 3)), ["neg", "pos"],
                            tmp_path / "one", model="m", data="d")
    assert only_one["roc_auc"] is None and any("undefined" in n for n in only_one["notes"])
    assert not math.isnan(only_one["accuracy"])


def test_evaluate_cli_on_an_export(exported, tiny_reviews, tmp_path):
    proc = run_module("evaluate", "--model", exported.parent, "--data", tiny_reviews,
                      "--output", tmp_path / "rep", "--train-data", tiny_reviews)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["n_examples"] == 20 and report["model"].endswith("/1")
    assert report["baseline"]["train_examples"] == 200 and report["baseline"]["n_examples"] == 20
    assert "baseline (TF-IDF" in proc.stdout
    assert report["config"]["settings"]["model_name"] == "tiny"  # what the model was trained with
    assert "accuracy" in proc.stdout
    assert "cuda" not in proc.stderr.lower() and "absl" not in proc.stderr  # quiet start-up


def test_evaluate_cli_refuses_broken_models(exported, tiny_reviews, tmp_path):
    (tmp_path / "no_versions").mkdir()
    corrupt = tmp_path / "corrupt"
    shutil.copytree(exported, corrupt / "1")
    (corrupt / "1" / "saved_model.pb").write_bytes(os.urandom(2048))
    cases = [(tmp_path / "no_versions", "no exported versions"), (corrupt, "cannot load the SavedModel"),
             (tmp_path / "missing", "no such folder")]
    for i, (model, message) in enumerate(cases):
        cli = run_module if i == 0 else run_in_process
        assert_clear_failure(cli("evaluate", "--model", model, "--data", tiny_reviews, "--output",
                                 tmp_path / "r"), message)


ML_TRUE = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
ML_PROBS = np.array([[0.9, 0.2, 0.7], [0.3, 0.8, 0.4], [0.6, 0.3, 0.1], [0.2, 0.1, 0.6]])
ML_THRESHOLDS = np.array([0.5, 0.5, 0.5], np.float32)


def test_multi_label_metrics_by_hand(tmp_path):
    predicted = (ML_PROBS >= ML_THRESHOLDS).astype(int)  # [[1,0,1],[0,1,0],[1,0,0],[0,0,1]]
    pred = Predictions(["a", "b", "c", "d"], ["good music", "bad", "good bad", "plain"], ML_TRUE, ML_PROBS,
                       0.5, predicted, ML_THRESHOLDS)
    report = write_report(pred, ["praise", "complaint", "music"], tmp_path, model="m/1", data="fixture")
    # Decisions: TP 4 (a: praise, music; b: complaint; c: praise), FP 1 (d: music), FN 1 (c: complaint).
    assert report["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    # Per label F1: praise 1, complaint 2/3 (1 TP, 1 FN), music 2/3 (1 TP, 1 FP).
    assert report["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert report["per_class"]["complaint"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2, "roc_auc": 1.0, "threshold": 0.5})
    assert report["subset_accuracy"] == report["accuracy"] == pytest.approx(2 / 4)  # a and b
    assert report["hamming_loss"] == pytest.approx(2 / 12)
    assert report["label_cardinality"] == pytest.approx(5 / 4)
    assert report["predicted_cardinality"] == pytest.approx(5 / 4)
    assert report["thresholds"] == {"praise": 0.5, "complaint": 0.5, "music": 0.5}
    frame = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    assert list(frame["true_labels"]) == ["praise|music", "complaint", "praise|complaint", ""]
    assert list(frame["predicted_labels"]) == ["praise|music", "complaint", "praise", "music"]
    md = (tmp_path / "report.md").read_text()
    assert "| micro_f1 |" in md and "| roc_auc | threshold |" in md
    # The mistakes: c and d, one wrong decision each; d's (0.6 against 0.5) and c's (0.3) quoted.
    assert "true **praise, complaint**, predicted **praise** (missed complaint (0.300 < 0.500))" in md
    assert "true **(none)**, predicted **music** (wrongly music (0.600 >= 0.500))" in md
    # Per text: a and b whole, c 2/3 (P 1, R 1/2), d 0 (one label predicted, none true).
    assert report["samples_f1"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    for png in ("f1_per_label.png", "precision_recall_curve.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert "confusion_matrix" not in report


def test_evaluate_cli_on_a_multi_label_export_reads_the_table_with_its_flags(trained_tags, tmp_path):
    from tests.conftest import write_tiny_tags

    result, _ = trained_tags
    table, names = write_tiny_tags(tmp_path, n=24, seed=5)
    flags = ["--header", "none", "--text-column", "0", "--label-column", "1", "--label-names", names]
    proc = run_in_process("evaluate", "--model", result.export_dir, "--data", table, "--label-separator", ",",
                          *flags, "--output", tmp_path / "report")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "micro F1" in proc.stdout and "subset accuracy" in proc.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["task"] == "multi-label" and report["n_examples"] == 24
    assert report["thresholds"] == result.record.thresholds
    # Without the separator the labels read as single labels ("0,2" a name): refused, and why.
    assert_clear_failure(run_in_process("evaluate", "--model", result.export_dir, "--data", table,
                                        "--task", "single-label", *flags[:6]), "is multi-label")


def test_a_calibrated_export_reports_before_and_after(trained_tiny):
    """The report undoes the export's temperature to show what calibration did on the test split."""
    from app.training.calibration import apply_temperature

    result, _ = trained_tiny
    report = json.loads((result.report_dir / "report.json").read_text())
    c = report["calibration"]
    assert c["temperature"] == result.record.calibration["temperature"] and c["fitted_on"] == 20
    assert c["after"]["log_loss"] == pytest.approx(report["log_loss"]) and c["after"]["ece"] == report["ece"]
    frame = pd.read_csv(result.report_dir / "predictions.csv")
    raw = apply_temperature(frame[["prob_neg", "prob_pos"]].to_numpy(), 1 / c["temperature"])
    true = (frame["true_label"] == "pos").to_numpy().astype(int)
    expected = -np.mean(np.log(raw[np.arange(len(true)), true]))
    assert c["before"]["log_loss"] == pytest.approx(expected, rel=1e-4)
    assert "Probabilities calibrated by temperature scaling" in (result.report_dir / "report.md").read_text()
