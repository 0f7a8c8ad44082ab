"""The ensemble's rules on held-out texts: does the adopted one ever do worse than the average?

    .venv/bin/python bench/ensembles.py /tmp/bertclf-bench/models/tta-30-*/1 --test-data heldout.csv

For each export (of a run with the n-gram model), on the held-out table: the export's own answers
(`serving_default`, the rule the run chose on validation), the encoder and the n-gram model alone
(`encoder_part`, `ngram_probabilities`), and the weighted average with the weight the run chose on
validation (`ngram.weight` in the run record: the ensemble before log-linear pooling). Then each rule
of `app.model.ngram.ENSEMBLE_RULES` fitted on one half of the held-out texts and scored on the
other, both ways (what each rule can do given more fitting data than validation had), and the
texts on which the encoder is right and sure (above 0.9) that a rule answers wrongly or below 0.75.
Writes bench/results/<date>-ensembles-<host>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from run import _cpu_name  # noqa: E402

BATCH = 64
SURE, DILUTED = 0.9, 0.75  # the bounds: an encoder this sure must not come back below that


def parts(export: Path, texts: list[str]) -> dict[str, np.ndarray]:
    """The export's served probabilities and class ids (batched as app.evaluate batches them), and
    its encoder's and n-gram model's parts."""
    from app import runtime

    runtime.setup()
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the export tokenizes)

    from app.serving import inference

    loaded = tf.saved_model.load(str(export))
    served, _ = inference.predict_outputs(loaded.signatures["serving_default"], texts, BATCH)
    out: dict[str, list] = {"encoder": [], "ngram": [], "known": []}
    for i in range(0, len(texts), BATCH):
        batch = tf.constant(texts[i:i + BATCH])
        out["encoder"].append(loaded.encoder_part(batch).numpy())
        out["ngram"].append(loaded.ngram_probabilities(batch).numpy())
        out["known"].append(loaded.ngram_known(batch).numpy())
    return {"served": served["probabilities"], "class_id": served["class_id"],
            **{k: np.concatenate(v) for k, v in out.items()}}


def diluted(encoder: np.ndarray, combined: np.ndarray, y: np.ndarray) -> int:
    """Texts the encoder answers right above SURE that `combined` answers wrongly or below DILUTED."""
    rows = np.arange(len(y))
    sure = encoder[rows, y] > SURE
    return int(np.sum(sure & (combined[rows, y] < DILUTED)))


def cross_fitted(p: dict[str, np.ndarray], y: np.ndarray, seed: int = 0) -> dict:
    """Each rule fitted on half the texts and scored on the other half, both ways."""
    from sklearn.model_selection import StratifiedKFold

    from app.model import ngram

    figures = {}
    for rule in ngram.ENSEMBLE_RULES:
        held = np.zeros_like(p["encoder"])
        for fit_rows, test_rows in StratifiedKFold(2, shuffle=True, random_state=seed).split(y, y):
            e, g, t = p["encoder"][fit_rows], p["ngram"][fit_rows], y[fit_rows]
            params = ({"weight": ngram.choose_weight(e, g, t)[0]} if rule == "average"
                      else ngram.fit_log_linear(e, g, t))
            held[test_rows] = ngram.combine(rule, params, p["encoder"][test_rows], p["ngram"][test_rows],
                                            p["known"][test_rows])
        figures[rule] = {"accuracy": round(float(np.mean(held.argmax(1) == y)), 4),
                         "sure_encoder_diluted": diluted(p["encoder"], held, y)}
    return figures


def evaluate(export: Path, texts: list[str], labels: list[str]) -> dict:
    from app.model import ngram

    assets = export / "assets"
    record = json.loads((assets / "record.json").read_text())
    config = json.loads((assets / "config.json").read_text())
    classes = (assets / "labels.txt").read_text().split("\n")
    classes = [c for c in classes if c]
    y = np.array([classes.index(str(label)) for label in labels])
    p = parts(export, texts)
    chosen = record.get("ngram", {})
    weight = float(chosen.get("weight", 0.0))
    average = (1 - weight) * p["encoder"] + weight * p["ngram"]  # the ensemble before pooling
    if chosen.get("rule") == "log-linear":
        pooling = chosen["pooling"]
        adopted = ngram.combine("log-linear", pooling, p["encoder"], p["ngram"], p["known"])
    else:
        adopted = ngram.combine("average", {"weight": weight}, p["encoder"], p["ngram"], p["known"])

    def accuracy(probabilities):
        return round(float(np.mean(probabilities.argmax(1) == y)), 4)

    return {"export": str(export), "seq_length": config["settings"]["max_seq_length"],
            "train_seconds": record["training"].get("wall_seconds"),
            "rule": chosen.get("rule"), "weight": weight, "pooling": chosen.get("pooling"),
            "texts": len(y), "texts_without_known_ngrams": int(np.sum(~p["known"].astype(bool))),
            "accuracy": {"served": round(float(np.mean(p["class_id"] == y)), 4),
                         "adopted_argmax": accuracy(adopted), "average_before": accuracy(average),
                         "encoder": accuracy(p["encoder"]), "ngram": accuracy(p["ngram"])},
            "sure_encoder_diluted": {"adopted": diluted(p["encoder"], adopted, y),
                                     "average_before": diluted(p["encoder"], average, y),
                                     "served": diluted(p["encoder"], p["served"], y)},
            "sure_encoder_texts": int(np.sum(p["encoder"][np.arange(len(y)), y] > SURE)),
            "cross_fitted_on_held_out": cross_fitted(p, y)}


def main() -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exports", nargs="+", type=Path, help="export version folders (…/model/1)")
    ap.add_argument("--test-data", type=Path, default=Path("/tmp/bertclf-bench/tta/heldout.csv"))
    ap.add_argument("--output", type=Path, help="default: bench/results/<date>-ensembles-<host>.json")
    args = ap.parse_args()
    table = pd.read_csv(args.test_data)
    texts, labels = table["text"].astype(str).tolist(), table["label"].astype(str).tolist()
    stem = f"{datetime.date.today().isoformat()}-ensembles-{platform.node()}"
    output = args.output or HERE / "results" / f"{stem}.json"
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": _cpu_name(),
               "test_data": str(args.test_data), "exports": []}
    for export in args.exports:
        r = evaluate(export, texts, labels)
        results["exports"].append(r)
        shown = ("export", "rule", "accuracy", "sure_encoder_diluted")
        print(json.dumps({k: r[k] for k in shown}), flush=True)
        output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
