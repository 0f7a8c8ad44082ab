"""What a report says to try: a short list read off the run's own numbers.

Each finding names the number behind it. They are rules of thumb an experienced engineer applies
when reading an evaluation, not verdicts: a model within a point of a bag of words, validation
loss rising while training loss falls, a class the model misses, texts cut by the sequence length,
probabilities that do not mean what they say, an evaluation too small to trust.
"""

from __future__ import annotations

import math

SMALL_EVALUATION = 500  # below this many examples, the accuracy's interval is given
CLOSE_TO_BASELINE = 0.02  # the model is "within a point or two" of the baseline
LOW_RECALL_GAP = 0.1  # a class this far below the macro recall is named
TRUNCATED_SHARE = 0.2  # when more texts than this are cut by the sequence length
SURPRISING_LOSS = math.log(2)  # a training example whose label gets less than half the probability


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (sound at 0 and 1, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _longer_budget(report: dict) -> str:
    """A `--time-budget` to try: twice what training took (10 minutes when unknown)."""
    seconds = (report.get("training") or {}).get("wall_seconds")
    return f"--time-budget {max(10, math.ceil(2 * seconds / 60)) if seconds else 10}"


def findings(report: dict, history=None) -> list[str]:
    """The findings for one report (report.json's content), most important first. Each flag a
    finding suggests comes with a value and is valid for the run's task (tests/test_findings.py
    runs them through app.train's parser)."""
    out: list[str] = []
    multi = report.get("task") == "multi-label"
    key = "micro_f1" if multi else "accuracy"
    n = report["n_examples"]
    if n < SMALL_EVALUATION and not multi:
        low, high = wilson_interval(round(report["accuracy"] * n), n)
        out.append(f"Only {n} evaluation examples: accuracy {report['accuracy']:.4f} has a 95 % interval of "
                   f"{low:.2f} to {high:.2f}; evaluate on more labelled data before trusting small "
                   "differences.")
    b = report.get("baseline")
    if b and b.get(key) is not None:
        gap = report[key] - b[key]
        name = key.replace("_", " ")
        if gap < 0:
            out.append(f"The TF-IDF baseline beats the model: {name} {b[key]:.4f} against {report[key]:.4f}, "
                       f"in {b['seconds']:.0f} s. Train longer ({_longer_budget(report)}) or on more "
                       "examples, or serve the baseline.")
        elif gap == 0:
            out.append(f"The model ties the TF-IDF baseline ({name} {report[key]:.4f}; the baseline trains "
                       f"in {b['seconds']:.0f} s): these examples do not tell the two apart.")
        elif gap < CLOSE_TO_BASELINE:
            out.append(f"The model is within {100 * gap:.1f} points of the TF-IDF baseline ({name} "
                       f"{report[key]:.4f} against {b[key]:.4f}, which trains in {b['seconds']:.0f} s): the "
                       "encoder adds little here as trained; more training time or examples may change that.")
    if history is not None and len(history) >= 2 and {"loss", "val_loss"} <= set(history.columns):
        best = int(history["val_loss"].idxmin())
        last = len(history) - 1
        if best < last and history["loss"].iloc[last] < history["loss"].iloc[best]:
            out.append(f"Validation loss rose from {history['val_loss'].iloc[best]:.4f} (epoch {best + 1}) "
                       f"to {history['val_loss'].iloc[last]:.4f} (epoch {last + 1}) while training loss "
                       "fell: overfitting; the best epoch's weights were kept. Fewer epochs or more data.")
    per_class = report.get("per_class", {})
    recall = report.get("macro_recall")
    if recall is not None:
        classes = report["classes"]
        matrix = report.get("confusion_matrix")
        for i, c in enumerate(classes):
            m = per_class.get(c, {})
            if m.get("support") and m["recall"] < recall - LOW_RECALL_GAP:
                text = (f"Class {c} has recall {m['recall']:.4f} against a macro recall of {recall:.4f} "
                        f"({m['support']} examples)")
                if matrix is not None:
                    row = list(matrix[i])
                    row[i] = -1
                    j = max(range(len(row)), key=row.__getitem__)
                    if row[j] > 0:
                        text += f"; most often mistaken for {classes[j]} ({row[j]} of {m['support']})"
                weighted = ((report.get("config") or {}).get("settings") or {}).get("class_weight")
                # Multi-label: weighting a label's positives lowered both F1s on the emotion-shaped
                # bench (bench/multilabel.py), the thresholds already favour rare labels.
                out.append(text + (". More examples of it." if weighted == "balanced" or multi
                                   else ". More examples of it, or --class-weight balanced."))
    share = (report.get("record") or {}).get("data", {}).get("over_seq_length")
    length = (report.get("config") or {}).get("settings", {}).get("max_seq_length")
    if share is not None and share > TRUNCATED_SHARE and length:
        longer = min(2 * length, 512)
        advice = (f"--max-seq-length {longer}, or a longer time budget ({_longer_budget(report)}), lets it "
                  "see more" if longer > length else "the encoder's positions end there")
        out.append(f"{100 * share:.0f} % of the training texts are longer than --max-seq-length {length}: "
                   f"the encoder sees part of them (the n-gram model reads all). {advice}.")
    surprising = report.get("surprising_training_examples")
    if surprising and surprising[0]["loss"] > SURPRISING_LOSS:
        top = surprising[0]
        out.append(f"The training example the model finds most surprising, {top['id']}, is labelled "
                   f"{top['label']} and the model says {top['model']} (loss {top['loss']:.2f}); the "
                   f"{len(surprising)} with the highest loss are quoted below: check their labels for noise.")
    c = report.get("calibration")
    if c and c.get("why") and "ece" in c["after"]:
        out.append(f"The probabilities are not calibrated: {c['fitted_on']} validation examples are too few "
                   f"to fit a temperature on (expected calibration error {c['after']['ece']:.4f}); a larger "
                   "validation split (--validation-split) fits one.")
    elif c and "ece" in c["before"]:
        worse = c["after"]["log_loss"] > c["before"]["log_loss"]
        advice = (f" It did not help here: fitted on {c.get('fitted_on', '?')} validation examples, the "
                  "temperature is uncertain; a larger validation split (--validation-split 0.2) fits it "
                  "better." if worse else "")
        out.append(f"Calibration (temperature {c['temperature']}): expected calibration error "
                   f"{c['before']['ece']:.4f} before, {c['after']['ece']:.4f} after; log loss "
                   f"{c['before']['log_loss']:.4f} before, {c['after']['log_loss']:.4f} after.{advice}")
    elif report.get("ece", 0) > 0.05 and not c:
        out.append(f"Expected calibration error {report['ece']:.4f}: the probabilities are not calibrated "
                   "(--calibration temperature calibrates them).")
    return out
