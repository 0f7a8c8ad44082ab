"""Time to accuracy: how good a classifier each recipe trains in the minutes a user has.

    make bench-tta                                   # everything (about 90 minutes on 2 cores)
    .venv/bin/python bench/tta.py --only tfidf bertclf-10   # some contenders, into a new results file

On the IMDb train split in ../shared/data, a fixed, seeded, stratified held-out slice of 5,000
reviews; every contender trains on the other 20,000 and is tested on the slice:

* `tfidf`: scikit-learn's TF-IDF (word 1- and 2-grams, sublinear tf) + logistic regression.
* `tutorial`, `transformers`: the TensorFlow tutorial recipe and Hugging Face Transformers (the
  throughput bench's workers) given 15 minutes by the rule in bench/common.py: their rate timed
  over a few steps at learning rate 0, then one epoch over the examples that rate trains in the
  time left (128 tokens, their schedules sized to it), stopped at the budget in any case.
* `bertclf-10`, `bertclf-30`: `python -m app.train --time-budget 10` / `30`, as a user runs it.

Training minutes are each contender's own wall time for training (and validation, for bertclf);
testing on the slice comes after and is not counted. Writes bench/results/<date>-tta-<host>.json,
a PNG of accuracy against minutes beside it, and the table in bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import PLAIN_TF, _cpu_name, bench_data, code_commit, worker  # noqa: E402

HELD_OUT = 5000
SEED = 0
CONTENDERS = ("tfidf", "tutorial", "transformers", "bertclf-10", "bertclf-30")
CONTENDER_MINUTES = 15


def split_imdb(folder: Path, out: Path) -> tuple[Path, Path]:
    """train.csv (20,000) and heldout.csv (5,000), stratified and seeded; written once."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    train_csv, heldout_csv = out / "train.csv", out / "heldout.csv"
    if train_csv.exists() and heldout_csv.exists():
        return train_csv, heldout_csv
    rows = [(p.read_text(encoding="utf-8", errors="replace"), label)
            for label in ("neg", "pos") for p in sorted((folder / "train" / label).iterdir())]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    train, held = train_test_split(frame, test_size=HELD_OUT, stratify=frame["label"], random_state=SEED)
    out.mkdir(parents=True, exist_ok=True)
    train.to_csv(train_csv, index=False)
    held.to_csv(heldout_csv, index=False)
    return train_csv, heldout_csv


def tfidf(train_csv: Path, heldout_csv: Path) -> dict:
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, held = pd.read_csv(train_csv), pd.read_csv(heldout_csv)
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    classifier = LogisticRegression(C=10.0, max_iter=2000, random_state=SEED)
    classifier.fit(vectorizer.fit_transform(train["text"]), train["label"])
    seconds = time.perf_counter() - start
    accuracy = float((classifier.predict(vectorizer.transform(held["text"])) == held["label"]).mean())
    return {"accuracy": accuracy, "train_seconds": seconds, "train_examples": len(train)}


def wrong_probe_cache(factor: float, scratch: Path) -> dict[str, str]:
    """The environment of a run whose probe was `factor` times too slow (above 1: pessimistic, the
    run goes faster than planned) or too fast: a copy of this machine's throughput cache with the
    costs of a training and a prediction step scaled. The cache must hold this machine's entries
    (run a budgeted run first)."""
    sys.path.insert(0, str(ROOT))
    from app.training.budget import cache_file

    entries = json.loads(cache_file().read_text())
    for entry in entries.values():
        if "train" in entry:
            entry["correction"] = entry.get("correction", 1.0) * factor
            entry["predict"] = [factor * c for c in entry["predict"]]
    folder = scratch / f"cache-x{factor:g}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "throughput.json").write_text(json.dumps(entries))
    return {**os.environ, "BERTCLF_CACHE_DIR": str(folder)}


def bertclf(train_csv: Path, heldout_csv: Path, minutes: float, scratch: Path,
            probe_error: float = 1.0, name: str | None = None, flags: Sequence[str] = ()) -> dict:
    """`python -m app.train --time-budget MINUTES` (and `flags`) on the CSVs, as a user runs it."""
    name = name or f"tta-{minutes:g}-{os.getpid()}"
    env = wrong_probe_cache(probe_error, scratch) if probe_error != 1.0 else None
    cmd = [sys.executable, "-m", "app.train", "--data", str(train_csv), "--test-data", str(heldout_csv),
           "--time-budget", str(minutes), "--model-name", name, "--output-dir", str(scratch / "models"),
           "--run-dir", str(scratch / "runs" / name), *flags]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    (scratch / "runs" / name).mkdir(parents=True, exist_ok=True)
    (scratch / "runs" / name / "train.log").write_text(proc.stderr)  # the run's log, to read afterwards
    if proc.returncode:
        return {"error": proc.stderr[-3000:]}
    report = json.loads((scratch / "runs" / name / "report" / "report.json").read_text())
    config, record = report["config"], report["record"]
    return {"accuracy": report["accuracy"], "train_seconds": record["training"]["wall_seconds"],
            "budget_seconds": record["training"]["budget_seconds"],
            "stopped_by_budget": record["training"]["stopped_by_budget"],
            "seq_length": config["settings"]["max_seq_length"], "epochs": config["settings"]["epochs"],
            "epochs_run": record["training"].get("epochs_run"), "probe_error": probe_error,
            "train_examples": record["data"]["examples"]["train"], "ngram": record.get("ngram", {}),
            "plan": {k: config["plan"].get(k) for k in ("why", "probe_seconds", "startup_seconds",
                                                         "expected_epochs", "options", "regime",
                                                         "contrastive_pairs")},
            "contrastive": record.get("contrastive", {}), "self_training": record.get("self_training", {}),
            "rates": {k: record["training"].get(k) for k in ("planned_examples_per_second",
                                                               "trained_examples_per_second")},
            "after_fit": {k: record["training"].get(k) for k in ("validation_pass_seconds",
                                                                   "after_pass_seconds")},
            "ece": report.get("ece"), "log_loss": report.get("log_loss"),
            "calibration": report.get("calibration"),
            "baseline": (report.get("baseline") or {}).get("accuracy"),
            "backups": {k: record["training"].get(k) for k in ("backup_every", "backups", "backup_seconds")},
            "command_seconds": time.perf_counter() - start}


def free_stem(out_dir: Path, name: str) -> str:
    """`<date>-NAME`, or `<date>-NAME-N` with the first N whose JSON is not yet in `out_dir`: a
    result file per run, none overwritten."""
    first = stem = f"{datetime.date.today().isoformat()}-{name}"
    n = 1
    while (out_dir / f"{stem}.json").exists():
        n += 1
        stem = f"{first}-{n}"
    return stem


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results["contenders"].items():
        if "accuracy" in r:
            ax.plot(r["train_seconds"] / 60, 100 * r["accuracy"], "o", markersize=8, label=name)
            ax.annotate(f"{100 * r['accuracy']:.2f}", (r["train_seconds"] / 60, 100 * r["accuracy"]),
                        textcoords="offset points", xytext=(6, -4))
    ax.set_xlabel("training minutes (wall)")
    ax.set_ylabel(f"held-out accuracy, % ({HELD_OUT:,} IMDb reviews)")
    ax.set_title(f"Time to accuracy on {results['cpu']} ({results['cores']} cores)")
    save_plot(fig, ax, path)


def save_plot(fig, ax, path: Path) -> None:
    """The benches' common finish: grid, legend, written at 110 dpi, closed."""
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: dict) -> str:
    lines = [f"Measured {results['date']} on {results['cpu']} ({results['cores']} cores): "
             f"{results['train_examples']:,} IMDb train reviews to train on, {HELD_OUT:,} held out "
             f"(seeded, stratified)"
             + (f"; bertclf told `{results['bertclf_flags']}`" if results.get("bertclf_flags") else "")
             + f". Plot: `{results['plot']}`.", "",
             "| contender | held-out accuracy | training minutes | trained on |", "| --- | --- | --- | --- |"]
    for name, r in results["contenders"].items():
        if "accuracy" not in r:
            lines.append(f"| {name} | failed | | |")
            continue
        detail = f"{r.get('train_examples', '?'):,} examples"
        if r.get("seq_length"):
            detail += f" x {r.get('epochs', 1)} epoch(s) at {r['seq_length']} tokens"
        if r.get("ngram", {}).get("weight") is not None:
            detail += f"; n-gram weight {r['ngram']['weight']:.2f}"
        lines.append(f"| {name} | {100 * r['accuracy']:.2f} % | {r['train_seconds'] / 60:.1f} | {detail} |")
    return "\n".join(lines)


def update_readme(text: str, marker: str = "tta", heading: str = "Time to accuracy") -> None:
    """Put `text` between bench/README.md's `<!-- marker -->` lines (added under `heading` if absent)."""
    readme = HERE / "README.md"
    old = readme.read_text()
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start not in old:
        old += f"\n## {heading}\n\n{start}\n{end}\n"
    pattern = f"{re.escape(start)}.*{re.escape(end)}"
    readme.write_text(re.sub(pattern, lambda _: f"{start}\n{text}\n{end}", old, flags=re.S))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=CONTENDERS, help="run these contenders only")
    p.add_argument("--torch-python", default=str(ROOT / ".venv-torch" / "bin" / "python"))
    p.add_argument("--scratch", default="/tmp/bertclf-bench")
    p.add_argument("--no-readme", action="store_true", help="leave bench/README.md as it is")
    p.add_argument("--probe-error", type=float, default=1.0,
                   help="bertclf plans with its cached probe's cost times this (1.7: a pessimistic probe)")
    p.add_argument("--bertclf-flags", default="",
                   help="more app.train flags for bertclf's runs (a lever measured at equal time), e.g. "
                        "'--learning-rate 5e-5'")
    args = p.parse_args()
    scratch = Path(args.scratch)
    folder, description = bench_data(scratch)
    if "IMDb" not in description:
        raise SystemExit(f"bench-tta needs the IMDb train split in {ROOT.parent / 'shared' / 'data'}")
    train_csv, heldout_csv = split_imdb(Path(folder), scratch / "tta")
    sys.path.insert(0, str(ROOT))
    from app.model.encoders import ensure_offline_encoder, minilm_checkpoint

    checkpoint = str(minilm_checkpoint())
    started = time.perf_counter()
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
               "cpu": _cpu_name(), "commit": code_commit(), "cores": os.cpu_count(), "held_out": HELD_OUT,
               "bertclf_flags": args.bertclf_flags,
               "train_examples": 25000 - HELD_OUT, "contenders": {}}
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stem = free_stem(out_dir, f"tta-{platform.node()}")
    results["plot"] = f"bench/results/{stem}.png"
    tf_worker = [sys.executable, str(HERE / "tf_worker.py")]
    csvs = ["--train-csv", str(train_csv), "--test-csv", str(heldout_csv),
            "--minutes", str(CONTENDER_MINUTES)]
    for name in args.only or CONTENDERS:
        print(f"[tta] {name} ...", flush=True)
        if name == "tfidf":
            r = tfidf(train_csv, heldout_csv)
        elif name == "tutorial":
            hub_style = worker([*tf_worker, "hub_style_encoder", "--output",
                                str(scratch / "hub-style-minilm")])
            r = worker([*tf_worker, "tta", "--tutorial-encoder", hub_style["encoder"], *csvs], env=PLAIN_TF,
                       timeout=3600)
        elif name == "transformers":
            r = worker([args.torch_python, str(HERE / "torch_worker.py"), "--tta", "--checkpoint", checkpoint,
                        "--data", str(train_csv.parent), *csvs], timeout=3600)
        else:
            ensure_offline_encoder()
            r = bertclf(train_csv, heldout_csv, float(name.split("-")[1]), scratch, args.probe_error,
                        flags=shlex.split(args.bertclf_flags))
        results["contenders"][name] = r
        print(f"[tta] {name}: {json.dumps(r)[:300]}", flush=True)
        # After each contender, so that an interrupted run keeps what it measured.
        results["seconds"] = time.perf_counter() - started
        (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2))
    plot(results, out_dir / f"{stem}.png")
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2))
    text = table(results)
    print(text)
    if not args.no_readme and not args.only and args.probe_error == 1.0 and not args.bertclf_flags:
        update_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
