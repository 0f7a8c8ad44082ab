"""The report's figures: accuracy, precision, recall and F1 per class, ROC-AUC and average
precision, log loss, Brier score and expected calibration error (scikit-learn's where it has
them); for multi-label models micro, macro and per-text F1, subset accuracy, Hamming loss and
label cardinality. `Predictions` is what they are computed from: a model's answers on labelled
examples."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

ECE_BINS = 15


@dataclasses.dataclass
class Predictions:
    """Model outputs for one labelled set, in the order of `ids`."""

    ids: list[str]
    texts: list[str]
    true: np.ndarray  # int class ids; for multi-label a 0/1 matrix [n, labels]
    probabilities: np.ndarray  # [n, classes]
    seconds: float = 0.0
    predicted: np.ndarray | None = None  # multi-label: the export's 0/1 decisions [n, labels]
    thresholds: np.ndarray | None = None  # multi-label: the export's threshold per label
    raw_probabilities: np.ndarray | None = None  # before the export's calibration, when it has one
    class_ids: np.ndarray | None = None  # the export's class_id, when a decision threshold sets it

    @property
    def decided(self) -> np.ndarray:
        """The predicted class of each example: the export's, else the most probable."""
        return self.class_ids if self.class_ids is not None else self.probabilities.argmax(1)

    @property
    def multi_label(self) -> bool:
        return self.predicted is not None


def confidence_bins(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Index of the equal-width confidence bin (right-closed) of each example."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size.

    scikit-learn has no ECE (its calibration_curve is per class), so this is the one metric
    computed here by hand.
    """
    index = confidence_bins(confidence, bins)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def compute_metrics(true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str],
                    predicted: np.ndarray | None = None) -> dict:
    """Every number in report.json, from scikit-learn wherever it has the metric. `predicted`
    are the model's decisions when they are not the most probable class (a decision threshold)."""
    from sklearn import metrics

    k = len(classes)
    labels = list(range(k))
    pred = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    confidence = probabilities.max(axis=1)
    notes = []
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        true, pred, labels=labels, zero_division=0)
    out = {
        "n_examples": int(len(true)),
        "classes": list(classes),
        "accuracy": float(metrics.accuracy_score(true, pred)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float(metrics.f1_score(true, pred, labels=labels, average="weighted",
                                              zero_division=0)),
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": metrics.confusion_matrix(true, pred, labels=labels).tolist(),
        "log_loss": float(metrics.log_loss(true, probabilities, labels=labels)),
        "brier": float(metrics.brier_score_loss(true, probabilities, labels=labels)),
        "ece": expected_calibration_error(confidence, (probabilities.argmax(1) == true).astype(float)),
        "mean_confidence": float(confidence.mean()),
    }
    present = sorted(set(true.tolist()))
    missing = [classes[i] for i in labels if i not in present]
    if missing:
        notes.append(f"the evaluation set has no examples of {missing}: their recall, ROC-AUC and "
                     "average precision are undefined")
    predicted = sorted(set(pred.tolist()))
    if len(predicted) == 1:
        notes.append(f"the model predicted a single class ({classes[predicted[0]]}) for every example")
    # Ranking metrics per class (one-vs-rest); undefined where a class is absent or everything.
    auc, ap = {}, {}
    for i, c in enumerate(classes):
        positives = true == i
        if positives.all() or not positives.any():
            continue
        auc[c] = float(metrics.roc_auc_score(positives, probabilities[:, i]))
        ap[c] = float(metrics.average_precision_score(positives, probabilities[:, i]))
    if k == 2:
        out["roc_auc"] = auc.get(classes[1])
        out["average_precision"] = ap.get(classes[1])
    else:
        out["roc_auc"] = float(np.mean(list(auc.values()))) if auc else None
        out["average_precision"] = float(np.mean(list(ap.values()))) if ap else None
        out["roc_auc_per_class"], out["average_precision_per_class"] = auc, ap
    if out["roc_auc"] is None:
        notes.append("ROC-AUC is undefined: the evaluation set needs examples of at least two classes")
    out["notes"] = notes
    return out


def compute_multi_label_metrics(true: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray,
                                classes: Sequence[str], thresholds: Sequence[float]) -> dict:
    """report.json of a multi-label model: `true` and `predicted` are 0/1 `[n, labels]`.
    `accuracy` is the subset accuracy (the whole set right), the strictest reading."""
    from sklearn import metrics

    from app.model.ngram import binary_cross_entropy

    true, predicted = np.asarray(true, int), np.asarray(predicted, int)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        true, predicted, average=None, zero_division=0)
    micro = metrics.precision_recall_fscore_support(true, predicted, average="micro", zero_division=0)
    subset = float(metrics.accuracy_score(true, predicted))
    per_class, auc, ap, notes = {}, {}, {}, []
    for j, c in enumerate(classes):
        column = true[:, j]
        if 0 < column.sum() < len(column):
            auc[c] = float(metrics.roc_auc_score(column, probabilities[:, j]))
            ap[c] = float(metrics.average_precision_score(column, probabilities[:, j]))
        per_class[c] = {"precision": float(precision[j]), "recall": float(recall[j]), "f1": float(f1[j]),
                        "support": int(support[j]), "roc_auc": auc.get(c),
                        "threshold": round(float(thresholds[j]), 6)}
    absent = [c for j, c in enumerate(classes) if not true[:, j].any()]
    if absent:
        notes.append(f"the evaluation set has no examples of {absent}: their recall and ROC-AUC are "
                     "undefined (their F1 counts as 0 in the macro average)")
    return {
        "task": "multi-label",
        "n_examples": int(len(true)),
        "classes": list(classes),
        "accuracy": subset,
        "subset_accuracy": subset,
        "micro_precision": float(micro[0]), "micro_recall": float(micro[1]), "micro_f1": float(micro[2]),
        "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        # (A text with no labels and none predicted is right: F1 1, not undefined.)
        "samples_f1": float(metrics.f1_score(true, predicted, average="samples", zero_division=1.0)),
        "hamming_loss": float(metrics.hamming_loss(true, predicted)),
        "label_cardinality": float(true.sum(1).mean()),
        "predicted_cardinality": float(predicted.sum(1).mean()),
        "roc_auc": float(np.mean(list(auc.values()))) if auc else None,
        "average_precision": float(np.mean(list(ap.values()))) if ap else None,
        "log_loss": binary_cross_entropy(true, probabilities),
        "per_class": per_class,
        "thresholds": {c: round(float(t), 6) for c, t in zip(classes, thresholds, strict=True)},
        "notes": notes,
    }
