"""The report's plots, as PNG files beside it: the confusion matrix, ROC and precision-recall
curves, the reliability diagram, the confidence histogram, accuracy by text length and the
training curves (F1 per label and the micro precision-recall curve for multi-label models).
matplotlib with the Agg backend: no display needed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from app.reporting.metrics import ECE_BINS, Predictions, confidence_bins


def multi_label_plots(pred: Predictions, classes: Sequence[str], report: dict, out: Path,
                       history: pd.DataFrame | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay

    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.3 * len(classes)))
    f1 = [report["per_class"][c]["f1"] for c in classes]
    ax.barh(list(classes), f1)
    for y, c in enumerate(classes):
        ax.annotate(f"n={report['per_class'][c]['support']}", (f1[y], y), xytext=(3, -3),
                    textcoords="offset points", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.invert_yaxis()
    ax.set_xlabel("F1 at the label's threshold")
    ax.set_title("F1 per label")
    save(fig, "f1_per_label.png")

    if pred.true.any() and not pred.true.all():
        fig, ax = plt.subplots(figsize=(5, 4))
        PrecisionRecallDisplay.from_predictions(pred.true.ravel(), pred.probabilities.ravel(),
                                                name="all labels (micro)", ax=ax)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("Precision-recall, every label decision")
        save(fig, "precision_recall_curve.png")
    _training_curves(history, out, save, "f1")
    return written


def _training_curves(history: pd.DataFrame | None, out: Path, save, metric: str = "accuracy") -> None:
    import matplotlib.pyplot as plt

    if history is None or not len(history):
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, name in zip(axes, ("loss", metric), strict=True):
        for col in (name, f"val_{name}"):
            if col in history:
                ax.plot(history["epoch"] + 1, history[col], "o-", label=col)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    save(fig, "training_curves.png")


def plots(pred: Predictions, classes: Sequence[str], out: Path, history: pd.DataFrame | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    written = []
    predicted = pred.decided
    confidence = pred.probabilities.max(1)
    correct = pred.probabilities.argmax(1) == pred.true  # (calibration: the probabilities' own claim)

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(4 + 0.4 * len(classes), 3.5 + 0.4 * len(classes)))
    ConfusionMatrixDisplay.from_predictions(pred.true, predicted, labels=list(range(len(classes))),
                                            display_labels=list(classes), ax=ax, colorbar=False)
    ax.set_title("Confusion matrix")
    save(fig, "confusion_matrix.png")

    fig_roc, ax_roc = plt.subplots(figsize=(5, 4))
    fig_pr, ax_pr = plt.subplots(figsize=(5, 4))
    for i, c in enumerate(classes):
        positives = pred.true == i
        if positives.all() or not positives.any():
            continue
        if len(classes) == 2 and i == 0:
            continue  # binary: one curve, for the second class
        RocCurveDisplay.from_predictions(positives, pred.probabilities[:, i], name=c, ax=ax_roc)
        PrecisionRecallDisplay.from_predictions(positives, pred.probabilities[:, i], name=c, ax=ax_pr)
    # (scikit-learn's axis labels say "Positive label: 1" where the classes have names.)
    which = f" (positive class: {classes[1]})" if len(classes) == 2 else " (each class against the rest)"
    ax_roc.set(title="ROC curve" + which, xlabel="false positive rate", ylabel="true positive rate")
    ax_pr.set(title="Precision-recall curve" + which, xlabel="recall", ylabel="precision")
    save(fig_roc, "roc_curve.png")
    save(fig_pr, "precision_recall_curve.png")

    centers, accs, counts = [], [], []
    index = confidence_bins(confidence)
    for b in range(ECE_BINS):
        mask = index == b
        if mask.any():
            centers.append(confidence[mask].mean())
            accs.append(correct[mask].mean())
            counts.append(mask.sum())
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    if pred.raw_probabilities is not None:
        raw = pred.raw_probabilities
        raw_index, raw_correct = confidence_bins(raw.max(1)), raw.argmax(1) == pred.true
        points = [(raw.max(1)[raw_index == b].mean(), raw_correct[raw_index == b].mean())
                  for b in range(ECE_BINS) if (raw_index == b).any()]
        ax.plot(*zip(*points, strict=True), "s:", color="tab:orange", alpha=0.8, label="before calibration")
    ax.plot(centers, accs, "o-", label="model" if pred.raw_probabilities is None else "calibrated")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram ({ECE_BINS} bins)")
    ax.legend()
    save(fig, "reliability_diagram.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist([confidence[correct], confidence[~correct]], bins=20, range=(0, 1), stacked=True,
            label=["correct", "wrong"])
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("examples")
    ax.set_title("Confidence histogram")
    ax.legend()
    save(fig, "confidence_histogram.png")

    lengths = np.asarray([len(t.split()) for t in pred.texts])
    bins = np.unique(np.quantile(lengths, np.linspace(0, 1, 6))) if len(lengths) else np.array([0, 1])
    if len(bins) < 2:
        bins = np.array([lengths.min(), lengths.min() + 1])
    which = np.clip(np.digitize(lengths, bins[1:-1], right=True), 0, len(bins) - 2)
    xs, ys = [], []
    for b in range(len(bins) - 1):
        mask = which == b
        if mask.any():
            xs.append(f"{int(bins[b])}-{int(bins[b + 1])}")
            ys.append(correct[mask].mean())
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.bar(xs, ys)
    ax.set_ylim(0, 1)
    ax.set_xlabel("length (words)")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy by text length")
    save(fig, "accuracy_by_length.png")

    _training_curves(history, out, save)
    return written
