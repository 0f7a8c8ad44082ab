"""How probabilities become decisions, where argmax is not the rule.

With two classes, the threshold on the second class's probability is the operating point:
`operating_points` tabulates what each gives (the report shows it), and `--decision-threshold`
bakes a chosen one into the export's `class_id` and `label` (the probabilities are unchanged).

A multi-label model answers each label on its own: a label is in a text's set when its
probability reaches that label's threshold. Which rule sets the thresholds is chosen like the
rest of the model, on the validation split, by micro F1 (`threshold_rule`): one global threshold
for every label (few parameters: robust with rare labels), each label's own best-F1 threshold
(right when labels differ and there are examples enough), or each label's shrunk towards the
global one by how few positive examples it has. The rules are compared by cross-validation
within the validation split, so a rule that fits its own examples (per-label thresholds on a
handful of positives) is not rewarded for it; the winner is then set on the whole split. The
export applies the thresholds (`app.serving.export`); the report's baseline is thresholded the same way.
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


THRESHOLD_RULES = ("global", "per-label", "shrunk")
# A label's own threshold counts as much as the global one at this many positive examples.
SHRINK_POSITIVES = 20
CV_FOLDS = 5


def global_threshold(probabilities: np.ndarray, true: np.ndarray) -> float:
    """The one threshold for every label with the best micro F1 (ties: nearest 0.5), halfway
    between neighbouring scores as `choose_thresholds` sets them."""
    scores = np.asarray(probabilities, np.float64).ravel()
    labels = np.asarray(true).ravel().astype(bool)
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    positives = labels.sum()
    if not positives:
        return DEFAULT_THRESHOLD
    tp = np.cumsum(labels)
    kept = np.arange(1, len(scores) + 1)
    f1 = 2 * tp / (kept + positives)
    # A threshold can only fall between distinct scores: take the last index of each score.
    last = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    below = np.r_[scores[last[:-1] + 1], 0.0]
    candidates = (scores[last] + below) / 2
    best = np.flatnonzero(np.isclose(f1[last], f1[last].max()))
    return float(candidates[best[np.argmin(np.abs(candidates[best] - DEFAULT_THRESHOLD))]])


def rule_thresholds(rule: str, probabilities: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The thresholds `[labels]` that `rule` (one of `THRESHOLD_RULES`) sets on these examples."""
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {list(THRESHOLD_RULES)}, got {rule!r}")
    probabilities, true = np.asarray(probabilities), np.asarray(true)
    shared = global_threshold(probabilities, true)
    if rule == "global":
        return np.full(true.shape[1], shared, np.float32)
    own = choose_thresholds(probabilities, true)
    own[~true.any(axis=0)] = shared  # a label without positives here has no threshold of its own
    if rule == "per-label":
        return own
    weight = true.sum(axis=0) / (true.sum(axis=0) + SHRINK_POSITIVES)
    return (weight * own + (1 - weight) * shared).astype(np.float32)


def threshold_rule(probabilities: np.ndarray, true: np.ndarray, seed: int = 42,
                   rules: tuple[str, ...] = THRESHOLD_RULES) -> tuple[np.ndarray, dict]:
    """(thresholds `[labels]`, record): the rule with the best cross-validated micro F1 on these
    (validation) examples, then set on all of them. The record has each rule's cross-validated
    and in-sample micro F1 and the chosen rule."""
    from sklearn.metrics import f1_score

    def micro_f1(decided: np.ndarray) -> float:
        return float(f1_score(true, decided, average="micro", zero_division=0))

    probabilities, true = np.asarray(probabilities), np.asarray(true).astype(int)
    if probabilities.shape != true.shape or probabilities.ndim != 2:
        raise ValueError(f"probabilities {probabilities.shape} and labels {true.shape} must both be "
                         "[examples, labels]")
    folds = min(CV_FOLDS, len(true))
    assignment = np.random.default_rng(seed).permutation(len(true)) % max(folds, 1)
    figures = {}
    for rule in rules:
        decided = np.zeros_like(true)
        for k in range(folds):
            held = assignment == k
            if folds > 1 and (~held).any():
                decided[held] = label_sets(probabilities[held],
                                           rule_thresholds(rule, probabilities[~held], true[~held]))
            else:
                decided[held] = label_sets(probabilities[held], rule_thresholds(rule, probabilities, true))
        in_sample = label_sets(probabilities, rule_thresholds(rule, probabilities, true))
        figures[rule] = {"cross_validated_micro_f1": round(micro_f1(decided), 4),
                         "in_sample_micro_f1": round(micro_f1(in_sample), 4)}
    # Ties go to the simpler rule (the order of THRESHOLD_RULES).
    chosen = max(rules, key=lambda r: (figures[r]["cross_validated_micro_f1"], -rules.index(r)))
    thresholds = rule_thresholds(chosen, probabilities, true)
    return thresholds, {"rule": chosen, "rules": figures, "examples": int(len(true)), "folds": folds}


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
