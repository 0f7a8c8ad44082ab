"""How probabilities become decisions, where argmax is not the rule.

With two classes, the threshold on the second class's probability is the operating point:
`operating_points` tabulates what each gives (the report shows it), and `--decision-threshold`
bakes a chosen one into the export's `class_id` and `label` (the probabilities are unchanged).

A multi-label model answers each label on its own: a label is in a text's set when its
probability reaches that label's threshold. One threshold for all is a poor rule when labels
are rare or common to different degrees, so each label's is the one with the best F1 on the
validation split (`choose_thresholds`); the export applies them (`app.export`).
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.5  # for a label the validation split has no example of


def choose_thresholds(probabilities: np.ndarray, true: np.ndarray) -> np.ndarray:
    """One threshold per label (`[labels]`): the `probability >= threshold` rule with the best
    F1 for that label on the validation probabilities (ties: the threshold nearest 0.5). It sits
    halfway between the lowest score the rule keeps and the next score below, so that the
    decision does not hang on an example lying exactly on it (or on float rounding).
    `true` is the 0/1 matrix `[n, labels]`."""
    from sklearn.metrics import precision_recall_curve

    probabilities, true = np.asarray(probabilities), np.asarray(true)
    if probabilities.shape != true.shape or probabilities.ndim != 2:
        raise ValueError(f"probabilities {probabilities.shape} and labels {true.shape} must both be "
                         "[examples, labels]")
    thresholds = np.full(true.shape[1], DEFAULT_THRESHOLD)
    for j in range(true.shape[1]):
        if not true[:, j].any():
            continue
        precision, recall, candidates = precision_recall_curve(true[:, j], probabilities[:, j])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        midpoints = (candidates + np.concatenate([[0.0], candidates[:-1]])) / 2  # (ascending scores)
        best = np.flatnonzero(np.isclose(f1, f1.max()))
        thresholds[j] = midpoints[best[np.argmin(np.abs(midpoints[best] - DEFAULT_THRESHOLD))]]
    return thresholds.astype(np.float32)


def label_sets(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The 0/1 decisions `[n, labels]` the export computes: `probability >= threshold`."""
    return (np.asarray(probabilities) >= np.asarray(thresholds, np.float32)[None]).astype(np.int64)


# ----------------------------------------------------------------------------- two classes

TARGETS = (0.9, 0.95)  # the precisions and recalls an operating-point table names thresholds for
GRID = tuple(np.round(np.arange(0.1, 1.0, 0.1), 2))


def _at(true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    predicted = scores >= threshold
    tp = int((predicted & (true == 1)).sum())
    precision = tp / predicted.sum() if predicted.any() else 1.0
    recall = tp / (true == 1).sum() if (true == 1).any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": round(float(threshold), 4), "precision": float(precision), "recall": float(recall),
            "f1": float(f1), "positives": int(predicted.sum())}


def operating_points(true: np.ndarray, scores: np.ndarray, targets: tuple[float, ...] = TARGETS) -> dict:
    """For two classes, what each threshold on the second class's probability gives: a grid of
    thresholds with precision, recall and F1, the threshold with the best F1, and for each target
    the lowest threshold reaching that precision and the highest reaching that recall (None
    where none does). `true` is 0/1."""
    true, scores = np.asarray(true).astype(int), np.asarray(scores, np.float64)
    candidates = np.unique(scores)
    rows = [_at(true, scores, t) for t in candidates]
    best = max(rows, key=lambda r: (r["f1"], -abs(r["threshold"] - DEFAULT_THRESHOLD)))
    out = {"grid": [_at(true, scores, t) for t in GRID], "best_f1": best, "precision": {}, "recall": {}}
    for target in targets:
        reach = [r for r in rows if r["precision"] >= target and r["positives"]]
        out["precision"][str(target)] = min(reach, key=lambda r: r["threshold"]) if reach else None
        reach = [r for r in rows if r["recall"] >= target]
        out["recall"][str(target)] = max(reach, key=lambda r: r["threshold"]) if reach else None
    return out
