"""Calibrated probabilities: temperature scaling fitted on the validation split.

A fine-tuned classifier (and its average with the n-gram model) is often over- or under-confident:
its 0.9 does not mean right nine times in ten. Temperature scaling (Guo et al. 2017) divides the
log-probabilities by one number T, fitted to minimise the validation log loss; it changes no
decision of a single-label model (argmax is unchanged) and makes the probabilities mean what they
say. A multi-label model gets one temperature a label, on each label's log-odds. The export
applies it (`app.serving.export`); `--calibration none` keeps the raw probabilities.
"""

from __future__ import annotations

import numpy as np

BOUNDS = (0.05, 20.0)  # a temperature outside is a sign of too few validation examples
# Below this many validation texts no temperature is fitted (T = 1): one fitted on a few dozen
# follows those texts, and left held-out probabilities less calibrated than none
# (bench/results/2026-12-07-tta-small-vm-8.json against -vm-10.json's 100 texts, where it helped).
MIN_EXAMPLES = 50
_EPS = 1e-7


def apply_temperature(probabilities: np.ndarray, temperature, multi_label: bool = False) -> np.ndarray:
    """softmax(log p / T) per row, or for multi-label sigmoid(logit p / T_j) per label. With
    1 / T it undoes itself, which is how a report recovers the raw probabilities."""
    p = np.clip(np.asarray(probabilities, np.float64), _EPS, 1 - _EPS if multi_label else 1.0)
    t = np.asarray(temperature, np.float64)
    if multi_label:
        return (1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p)) / t))).astype(np.float32)
    logits = np.log(p) / t
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _nll(probabilities: np.ndarray, true: np.ndarray, multi_label: bool) -> float:
    p = np.clip(probabilities.astype(np.float64), _EPS, 1 - _EPS)
    if multi_label:
        return float(-np.mean(true * np.log(p) + (1 - true) * np.log(1 - p)))
    return float(-np.mean(np.log(p[np.arange(len(true)), true])))


def fit_temperature(probabilities: np.ndarray, true: np.ndarray, multi_label: bool = False):
    """The temperature with the lowest validation log loss (one per label for multi-label, a
    0/1 `true` matrix): a bounded search over log T. Where validation has no mistake (for a
    label: no decision wrong at 0.5) the log loss falls without bound as T shrinks, which says
    nothing about new texts: there the temperature may cool the model but not sharpen it (T >= 1)."""
    from scipy.optimize import minimize_scalar

    probabilities, true = np.asarray(probabilities), np.asarray(true)
    if len(true) == 0:
        raise ValueError("temperature scaling needs validation examples")

    def best(p, y, multi):
        result = minimize_scalar(lambda log_t: _nll(apply_temperature(p, np.exp(log_t), multi), y, multi),
                                 bounds=tuple(np.log(BOUNDS)), method="bounded", options={"xatol": 1e-4})
        t = float(np.exp(result.x))
        wrong = ((p >= 0.5) != y).any() if multi else (p.argmax(1) != y).any()
        return t if wrong else max(t, 1.0)

    if multi_label:  # (a label the validation split has only one value of keeps T = 1)
        return np.asarray([best(probabilities[:, [j]], true[:, [j]], True) if 0 < true[:, j].sum() < len(true)
                           else 1.0 for j in range(true.shape[1])], np.float32)
    return best(probabilities, true.astype(int), False)
