"""Evaluate an exported model on labelled data and write a report a person can act on.

    python -m app.evaluate --model saved_models/NAME[/VERSION] --data PATH [--output DIR]

Runs the same SavedModel TF Serving would run and writes, into the report folder:
`report.json` (metrics), `predictions.csv`, PNG plots, `report.md` and a self-contained
`report.html`. `app.train` calls `write_report` at the end of every run.

The figures come from `app.reporting.metrics` and the plots from `app.reporting.plots`; this
module decides what the report says and in what order (`_sections`, rendered by
`app.reporting.render`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from app import data as data_mod
from app import runtime
from app.config import add_table_arguments
from app.reporting.metrics import Predictions, compute_metrics, compute_multi_label_metrics
from app.reporting.plots import multi_label_plots, plots
from app.reporting.render import Block, Section, to_html, to_markdown
from app.serving import inference

logger = logging.getLogger(__name__)

QUOTE_CHARS = 300
SURPRISE_SAMPLE = 500  # training examples scored for the most surprising (a seeded sample)
SURPRISING = 5


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "…"


def _multi_label_mistakes(pred: Predictions, classes: Sequence[str], n: int = 10) -> list[dict]:
    """The texts with the most wrong label decisions, the surest wrong decision first among equals."""
    wrong = pred.predicted != pred.true
    surety = np.where(wrong, np.abs(pred.probabilities - pred.thresholds[None]), 0).max(1)
    rows = np.flatnonzero(wrong.any(1))
    rows = rows[np.lexsort((-surety[rows], -wrong[rows].sum(1)))][:n]

    def names(hot):
        return ", ".join(c for c, h in zip(classes, hot, strict=True) if h) or "(none)"

    def why(i):  # each wrong decision, with its probability against the label's threshold
        return "; ".join(
            f"{'missed' if pred.true[i, j] else 'wrongly'} {c} ({pred.probabilities[i, j]:.3f} "
            f"{'<' if pred.true[i, j] else '>='} {pred.thresholds[j]:.3f})"
            for j, c in enumerate(classes) if wrong[i, j])

    return [{"id": pred.ids[i], "true": names(pred.true[i]), "predicted": names(pred.predicted[i]),
             "confidence": float(surety[i]), "why": why(i), "text": _quote(pred.texts[i])} for i in rows]


def _mistakes(pred: Predictions, classes: Sequence[str], n: int = 10) -> list[dict]:
    if pred.multi_label:
        return _multi_label_mistakes(pred, classes, n)
    predicted = pred.decided
    wrong = np.flatnonzero(predicted != pred.true)
    wrong = wrong[np.argsort(-pred.probabilities[wrong, predicted[wrong]])][:n]
    rows = []
    for i in wrong:
        rows.append({"id": pred.ids[i], "true": classes[pred.true[i]], "predicted": classes[predicted[i]],
                     "confidence": float(pred.probabilities[i, predicted[i]]), "text": _quote(pred.texts[i])})
    return rows


SUMMARY_KEYS = ("accuracy", "macro_f1", "weighted_f1", "roc_auc", "average_precision", "log_loss",
                "brier", "ece")
MULTI_LABEL_SUMMARY_KEYS = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss",
                            "label_cardinality", "predicted_cardinality", "roc_auc", "average_precision",
                            "log_loss")


def _summary_keys(report: dict) -> tuple[str, ...]:
    return MULTI_LABEL_SUMMARY_KEYS if report.get("task") == "multi-label" else SUMMARY_KEYS


def _class_columns(report: dict) -> tuple[str, ...]:
    multi = report.get("task") == "multi-label"
    return ("precision", "recall", "f1", "support") + (("roc_auc", "threshold") if multi else ())


def _cell(value) -> str:
    return str(value) if isinstance(value, int) else _fmt(value)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _training_sentence(report: dict) -> str:
    """How long the model trained (and against which budget), and how: its epochs, or for the
    contrastive regime its pairs and then the head's epochs, when the report knows."""
    t = report.get("training") or {}
    if not t.get("wall_seconds"):
        return ""
    epochs = f"{t.get('epochs_run', '?')} epoch(s)"
    regime = ((report.get("config") or {}).get("settings") or {}).get("regime")
    pairs = ((report.get("record") or {}).get("contrastive") or {})
    pairs = pairs.get("pairs_trained", pairs.get("pairs"))
    if regime == "contrastive" and pairs:
        epochs = f"the contrastive regime: {pairs:,} pairs of training texts, then the head {epochs}"
    text = f" Trained in {t['wall_seconds'] / 60:.1f} min ({epochs}"
    if t.get("budget_seconds"):
        text += f", budget {t['budget_seconds'] / 60:g} min"
        if t.get("stopped_by_budget"):
            text += ", stopped by it"
    return text + ")."


def _calibration_figures(pred: Predictions, classes: Sequence[str], record: dict) -> dict:
    """The temperature and what it did on these examples: log loss (and for one label a text,
    ECE) before and after."""
    from app.model.ngram import binary_cross_entropy

    def figures(p):
        if pred.multi_label:
            return {"log_loss": binary_cross_entropy(pred.true, p)}
        m = compute_metrics(pred.true, p, classes)
        return {"log_loss": m["log_loss"], "ece": m["ece"]}

    why = {"why": record["why"]} if record.get("why") else {}
    return {"temperature": record.get("temperature"), "fitted_on": record.get("validation_examples"),
            "before": figures(pred.raw_probabilities), "after": figures(pred.probabilities), **why}


def _calibration_sentence(report: dict) -> str:
    c = report.get("calibration")
    if not c:
        return ""
    parts = [f"{k.replace('_', ' ')} {c['before'][k]:.4f} before, {c['after'][k]:.4f} after"
             for k in ("ece", "log_loss") if k in c["before"]]
    if c.get("why"):  # too few validation texts: T = 1
        figures = ", ".join(f"{k.replace('_', ' ')} {c['after'][k]:.4f}" for k in ("ece", "log_loss")
                            if k in c["after"])
        return (f"Probabilities not calibrated ({c['why']}: {c['fitted_on']}; a larger --validation-split "
                f"fits one): {figures}.")
    t = c["temperature"]
    shown = f"{t:.3g}" if isinstance(t, float | int) else "one a label"
    return (f"Probabilities calibrated by temperature scaling (T = {shown}, fitted on "
            f"{c['fitted_on']} validation examples): " + "; ".join(parts) + ".")


def _self_training_sentence(report: dict) -> str:
    """What `--unlabeled-data` bought on validation (app.train's self-training), when it ran."""
    s = (report.get("record") or {}).get("self_training")
    if not s:
        return ""
    before, after = s["validation_accuracy"]["before"], s["validation_accuracy"]["after"]
    labels = ", ".join(f"{c} {n}" for c, n in s["pseudo_labels"].items())
    return (f"Self-training: {s['unlabeled_texts']} unlabelled texts ({s['source']}), labelled by the "
            f"trained model ({labels}), trained the n-gram model again. Validation accuracy "
            f"({s.get('validation_examples', '?')} texts) {before['ensemble']:.4f} "
            f"before, {after['ensemble']:.4f} after (the n-gram model alone {before['ngram']:.4f}, "
            f"{after['ngram']:.4f})" + ("." if s.get("kept", True) else "; the model before it was kept."))


def _operating_lines(report: dict) -> tuple[list[list[str]], list[str]]:
    """(table rows, sentences) of the operating points, for two classes."""
    o = report.get("operating_points")
    if not o:
        return [], []
    rows = [["threshold", "precision", "recall", "F1", "predicted positive"]]
    rows += [[f"{r['threshold']:.2f}", f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}",
              str(r["positives"])] for r in o["grid"]]
    b = o["best_f1"]
    sentences = [f"Positive class: {report['classes'][1]}; the export decides by "
                 f"{report['decision_threshold']}.",
                 f"Best F1 {b['f1']:.4f} at threshold {b['threshold']:.4f} (precision {b['precision']:.4f}, "
                 f"recall {b['recall']:.4f})."]
    for target, r in o["precision"].items():
        sentences.append(f"Precision {target} from threshold {r['threshold']:.4f} (recall {r['recall']:.4f})."
                         if r else f"No threshold reaches precision {target}.")
    for target, r in o["recall"].items():
        if r:
            sentences.append(f"Recall {target} up to threshold {r['threshold']:.4f} "
                             f"(precision {r['precision']:.4f}).")
        else:
            sentences.append(f"No threshold reaches recall {target}.")
    sentences.append("Chosen on these examples, a threshold is optimistic for new ones; train with "
                     "--decision-threshold T to bake one into the export's class_id and label.")
    return rows, sentences


def _comparison(report: dict) -> list[tuple[str, str, str, str]]:
    """(row, figure one, figure two, training time) for the model and the baseline."""
    b = report.get("baseline")
    if not b:
        return []
    keys = ("micro_f1", "macro_f1") if report.get("task") == "multi-label" else ("accuracy", "macro_f1")
    seconds = (report.get("training") or {}).get("wall_seconds")
    model_time = f"{seconds / 60:.1f} min" if seconds else "n/a"
    return [("", *keys, "training"), ("this model", *(_fmt(report[k]) for k in keys), model_time),
            (b["name"], *(_fmt(b.get(k)) for k in keys), f"{b['seconds']:.0f} s")]


def _threshold_sentence(report: dict) -> str:
    """Multi-label: which rule set the decision thresholds, with each rule's validation figure."""
    rule = (report.get("record") or {}).get("threshold_rule") or {}
    if not rule.get("rules"):
        return ""
    figures = ", ".join(f"{name} {f['cross_validated_micro_f1']:.4f}" for name, f in rule["rules"].items())
    baseline = (report.get("baseline") or {}).get("threshold_rule")
    return (f"Decision thresholds: the {rule['rule']} rule, the best cross-validated micro F1 on "
            f"{rule['examples']} validation examples ({figures})."
            + (f" The baseline's are set by the same comparison (it chose {baseline})." if baseline else ""))


def baseline_line(report: dict) -> str:
    b = report["baseline"]
    keys = ("micro_f1", "macro_f1") if report.get("task") == "multi-label" else ("accuracy", "macro_f1")
    figures = ", ".join(f"{k.replace('_', ' ')} {b[k]:.4f}" for k in keys)
    return f"({b['name']}, {b['seconds']:.0f} s): {figures} on the same {b['n_examples']} examples"


def _sections(report: dict, images: list[str], mistakes: list[dict]) -> list[Section]:
    """What the report says, in reading order (rendered by app.reporting.render): the headline figures
    against the baseline, the findings, the metrics, the plots, the operating points, the quoted
    examples."""
    multi = report.get("task") == "multi-label"
    first = ("micro F1", "micro_f1") if multi else ("accuracy", "accuracy")
    top = [Block("text", f"Data: {report['data']} ({report['n_examples']} examples). Throughput: "
                         f"{report['examples_per_second']:.1f} examples/s.{_training_sentence(report)}"),
           Block("strong", [(first[0], f"{report[first[1]]:.4f}"),
                            ("macro F1", f"{report['macro_f1']:.4f}")])]
    comparison = _comparison(report)
    if comparison:
        top += [Block("text", "Against the classic baseline, fitted on the same training split:"),
                Block("tables", [comparison])]
    parts = [Section(f"Evaluation report: {report['model']}", top)]
    if report.get("findings"):
        parts.append(Section("Findings", [Block("items", list(report["findings"]))]))
    metrics = [Block("notes", list(report["notes"]))] if report["notes"] else []
    metrics += [Block("text", s) for s in (_self_training_sentence(report), _calibration_sentence(report),
                                           _threshold_sentence(report)) if s]
    columns = _class_columns(report)
    summary = [("metric", "value"), *((k, _fmt(report.get(k))) for k in _summary_keys(report))]
    per_class = [("class", *columns), *((c, *(_cell(m[k]) for k in columns))
                                         for c, m in report["per_class"].items())]
    metrics.append(Block("tables", [summary, per_class]))
    if "confusion_matrix" in report:
        matrix = [("true \\ predicted", *report["classes"]),
                  *((c, *map(str, row)) for c, row in zip(report["classes"], report["confusion_matrix"],
                                                          strict=True))]
        metrics += [Block("text", "Confusion matrix (rows: true, columns: predicted):"),
                    Block("tables", [matrix])]
    parts.append(Section("Metrics", metrics))
    if images:
        parts.append(Section("Plots", [Block("images", list(images))]))
    table, sentences = _operating_lines(report)
    if table:
        parts.append(Section("Operating points",
                             [Block("text", " ".join(sentences)), Block("tables", [table])]))
    if report.get("surprising_training_examples"):
        parts.append(Section("Most surprising training examples (highest loss: check their labels)",
                             [Block("quotes", report["surprising_training_examples"], "surprising")]))
    parts.append(Section("Most confident mistakes",
                         [Block("quotes", mistakes, "mistake") if mistakes
                          else Block("text", "None: every example was classified correctly.")]))
    return parts


def write_report(pred: Predictions, classes: Sequence[str], out: str | Path, model: str, data: str,
                 history: pd.DataFrame | None = None, config: dict | None = None,
                 baseline: dict | None = None, surprising: list[dict] | None = None,
                 record: dict | None = None) -> dict:
    """Write every report file into `out` and return the report.json content. `config` is what
    the run was told and `record` what it did (the export's `assets/config.json` and
    `assets/record.json`), kept in report.json under those names; `baseline`
    is `app.reporting.baseline.score` on the same examples, shown beside the model's figures; `surprising`
    the training examples with the highest loss, quoted."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--output {out}: cannot create the report folder ({e.strerror})") from e
    if len(pred.true) == 0:
        raise ValueError(f"--data {data}: no labelled examples to evaluate")
    if pred.multi_label:
        report = compute_multi_label_metrics(pred.true, pred.probabilities, pred.predicted, classes,
                                             pred.thresholds)
    else:
        report = compute_metrics(pred.true, pred.probabilities, classes, pred.class_ids)
        if len(classes) == 2 and len(set(pred.true.tolist())) == 2:
            from app.training.decision import operating_points

            report["operating_points"] = operating_points(pred.true, pred.probabilities[:, 1])
            threshold = (config or {}).get("settings", {}).get("decision_threshold")
            report["decision_threshold"] = threshold if threshold is not None else "argmax (0.5)"
    report.update({"model": model, "data": data,
                   "examples_per_second": float(len(pred.true) / pred.seconds) if pred.seconds else None,
                   "seconds": pred.seconds, "config": config or {}, "record": record or {},
                   # How long training took (app.train's wall time, budget), as the export recorded it.
                   "training": (record or {}).get("training", {})})
    if baseline is not None:
        report["baseline"] = baseline
    if pred.raw_probabilities is not None:
        report["calibration"] = _calibration_figures(pred, classes, (record or {}).get("calibration", {}))
    if surprising:
        report["surprising_training_examples"] = surprising
    from app.reporting.findings import findings

    report["findings"] = findings(report, history)
    if pred.multi_label:
        def names(hot):
            return "|".join(c for c, h in zip(classes, hot, strict=True) if h)

        frame = pd.DataFrame({"id": pred.ids, "true_labels": [names(r) for r in pred.true],
                              "predicted_labels": [names(r) for r in pred.predicted]})
    else:
        predicted = pred.decided
        frame = pd.DataFrame({"id": pred.ids, "true_label": [classes[i] for i in pred.true],
                              "predicted_label": [classes[i] for i in predicted]})
    for i, c in enumerate(classes):
        frame[f"prob_{c}"] = pred.probabilities[:, i]
    frame["n_words"] = [len(t.split()) for t in pred.texts]
    frame.to_csv(out / "predictions.csv", index=False)
    images = (multi_label_plots(pred, classes, report, out, history) if pred.multi_label
              else plots(pred, classes, out, history))
    report["plots"] = images
    mistakes = _mistakes(pred, classes)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    parts = _sections(report, images, mistakes)
    (out / "report.md").write_text(to_markdown(parts), encoding="utf-8")
    (out / "report.html").write_text(to_html(parts, out), encoding="utf-8")
    logger.info("report written to %s (accuracy %.4f)", out, report["accuracy"])
    return report


def evaluate_export(model: str, texts: Sequence[str], labels: Sequence, ids: Sequence[str],
                    out: str | Path, data: str, history: pd.DataFrame | None = None,
                    batch_size: int = 64, pairs: Sequence[str] | None = None,
                    train_split: data_mod.Split | None = None, baseline: bool = True, seed: int = 42) -> dict:
    """Run an exported model over labelled texts (or text pairs) and write the report. With the
    model's `train_split`, the baseline (app.reporting.baseline, unless not `baseline`) fitted on it is
    scored on the same texts beside, and the training examples the model finds most surprising
    are quoted. For a multi-label model each of `labels` is a tuple of label names."""
    from app.reporting import baseline as baseline_mod

    loaded = inference.load(model)
    classes = loaded.classes
    multi = loaded.multi_label
    given_sets = any(isinstance(y, tuple) for y in labels)
    if len(labels) and given_sets != multi:
        raise ValueError(f"--data {data} has {'sets of labels' if given_sets else 'one label'} per text; "
                         f"the model {loaded.folder} is {'multi' if multi else 'single'}-label "
                         + ("(read the data with --task multi-label)" if multi else ""))
    seen = {n for y in labels for n in y} if given_sets else set(labels)
    unknown = sorted(seen - set(classes))
    if unknown:
        raise ValueError(f"--data {data}: label(s) {unknown[:5]} are not classes of the model {classes}")
    logger.info("evaluating %s on %d texts", loaded.folder, len(texts))
    outputs, seconds = loaded.predict_outputs(texts, batch_size, pairs)
    probabilities = outputs.get("probabilities", np.zeros((0, len(classes)), np.float32))
    original = list(texts)
    if pairs is not None:  # quoted in the report as the pair
        texts = [f"{t} [SEP] {p}" for t, p in zip(texts, pairs, strict=True)]
    true = data_mod.label_ids(list(labels), classes, multi)
    thresholds = None
    if multi:
        recorded = loaded.record.get("thresholds") or {}
        thresholds = np.asarray([recorded.get(c, np.nan) for c in classes], np.float32)
    raw = None
    temperature = (loaded.record.get("calibration") or {}).get("temperature")
    if temperature is not None and len(probabilities):  # undone: softmax(T log p), or sigmoid(T logit p)
        from app.training.calibration import apply_temperature

        t = np.asarray([temperature[c] for c in classes]) if isinstance(temperature, dict) else temperature
        raw = apply_temperature(probabilities, 1.0 / np.asarray(t, np.float64), multi)
    compared, surprising = None, None
    if train_split is not None:
        unknown = sorted(set(train_split.counts()) - set(classes))
        if unknown or train_split.multi_label != multi:
            raise ValueError(f"--train-data: its labels {unknown[:5] or ''} do not match the model's "
                             f"{'label sets' if multi else 'classes'} {classes}")
        if baseline:
            train_true = data_mod.label_ids(train_split.labels, classes, multi)
            compared = baseline_mod.score(train_split.texts, train_true, original, true, len(classes), seed,
                                          train_split.pairs, pairs)
        surprising = _most_surprising(loaded, train_split, classes, multi, batch_size, seed)
    pred = Predictions(list(ids), list(texts), true, probabilities, seconds,
                       outputs.get("predicted") if multi else None, thresholds, raw,
                       None if multi else outputs.get("class_id"))
    return write_report(pred, classes, out, model=str(loaded.folder), data=data, history=history,
                        config=loaded.config, record=loaded.record, baseline=compared, surprising=surprising)


def _most_surprising(loaded, split: data_mod.Split, classes: Sequence[str], multi: bool,
                     batch_size: int, seed: int) -> list[dict]:
    """The training examples (of a seeded sample) with the highest loss under the model: where
    a label may be wrong, or the model has not learnt something."""
    rng = np.random.default_rng(seed)
    sample = split.take(sorted(rng.choice(len(split), min(len(split), SURPRISE_SAMPLE), replace=False)))
    outputs, _ = loaded.predict_outputs(sample.texts, batch_size, sample.pairs)
    p = np.clip(outputs["probabilities"].astype(np.float64), 1e-7, 1 - 1e-7)
    true = data_mod.label_ids(sample.labels, classes, multi)
    if multi:
        loss = -np.mean(true * np.log(p) + (1 - true) * np.log(1 - p), axis=1)
    else:
        loss = -np.log(p[np.arange(len(true)), true])
    rows = []
    for i in np.argsort(-loss)[:SURPRISING]:
        text = sample.texts[i] if sample.pairs is None else f"{sample.texts[i]} [SEP] {sample.pairs[i]}"
        if multi:
            label = ", ".join(sample.labels[i]) or "(none)"
            hot = outputs["predicted"][i]
            said = ", ".join(c for c, h in zip(classes, hot, strict=True) if h) or "(none)"
        else:
            label, said = sample.labels[i], classes[int(outputs["class_id"][i])]
        rows.append({"id": sample.ids[i], "label": label, "model": said, "loss": round(float(loss[i]), 4),
                     "text": _quote(text)})
    return rows


def summary_line(report: dict) -> str:
    """The figures a CLI ends with."""
    if report.get("task") == "multi-label":
        return (f"micro F1 {report['micro_f1']:.4f}, macro F1 {report['macro_f1']:.4f}, subset accuracy "
                f"{report['subset_accuracy']:.4f} on {report['n_examples']} examples")
    return (f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f} "
            f"on {report['n_examples']} examples")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m app.evaluate` (docs/flags.md is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m app.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved_models/NAME or saved_models/NAME/VERSION")
    parser.add_argument("--data", required=True, help="labelled data (any app.data source)")
    parser.add_argument("--split", default=None, help="split to evaluate (default: test, else all)")
    add_table_arguments(parser)
    parser.add_argument("--train-data", help="the model's training data (read with the same table flags): "
                        "the report then sets the model against TF-IDF + logistic regression fitted on "
                        "its train split")
    parser.add_argument("--output", default=None, help="report folder (default: reports/NAME_VERSION)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per call (default 64)")
    parser.add_argument("--verbose", action="store_true", help="keep TensorFlow's own start-up lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runtime.setup(args.verbose)
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
        folder = inference.resolve_model_dir(args.model)
        splits = data_mod.read_source(args.data, data_mod.table_format(args))
        name = args.split or ("test" if "test" in splits else None)
        if name is not None and name not in splits:
            raise ValueError(f"--split {name}: {args.data} has splits {sorted(splits)}")
        if name is None:
            parts = list(splits.values())
            split = data_mod.Split([t for s in parts for t in s.texts], [y for s in parts for y in s.labels],
                                   [i for s in parts for i in s.ids],
                                   None if parts[0].pairs is None else [p for s in parts for p in s.pairs])
        else:
            split = splits[name]
        train = None
        if args.train_data:
            train_splits = data_mod.read_source(args.train_data, data_mod.table_format(args))
            if "train" not in train_splits:
                raise ValueError(f"--train-data {args.train_data}: no train split "
                                 f"(found {sorted(train_splits)})")
            train = train_splits["train"]
        out = Path(args.output) if args.output else Path("reports") / f"{folder.parent.name}_{folder.name}"
        report = evaluate_export(str(folder), split.texts, split.labels, split.ids, out, args.data,
                                 batch_size=args.batch_size, pairs=split.pairs, train_split=train)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary_line(report))
    if report.get("baseline"):
        print(f"baseline {baseline_line(report)}")
    print(f"report: {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
