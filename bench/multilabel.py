"""Multi-label look-alike: an emotion-corpus shape built from IMDb, and recipes compared on it.

    .venv/bin/python bench/multilabel.py                       # build the corpus, run every variant
    .venv/bin/python bench/multilabel.py --only tfidf default  # some variants

No multi-label corpus can be downloaded here, so this one is made in GoEmotions' shape from the IMDb
train split in ../shared/data: short texts (one sentence of a review, 6 to 40 words), 28 labels of
very different frequency (27 aspects a sentence talks about, and `neutral` when it names none, kept for
40 % of such sentences), about
5,400 training and 5,400 test texts, written as GoEmotions distributes them (a headerless TSV: text,
comma-separated label ids, an id; the names in `emotions.txt`). An aspect is labelled when the sentence
holds one of its cue words; half the time (seeded) those cue words are then deleted from the text, so
half the labels can only be inferred from the context, as most emotions must be. The labels are
therefore partly lexical and partly semantic, and noisy where the context says little.

Variants are `python -m app.train` with the GoEmotions command line from docs/data.md plus their
flags; `tfidf` is scikit-learn's TF-IDF + one-vs-rest logistic regression with one global threshold
tuned on the test split itself (an upper bound for a tuned baseline, as the issue's figure was).
Writes bench/results/<date>-multilabel-<host>.json. The text never leaves /tmp.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARBALL = ROOT.parent / "shared" / "data" / "aclImdb_train.tar.gz"
SEED = 0

ASPECTS = {
    "acting": ["acting", "actor", "actors", "actress", "actresses", "performance", "performances"],
    "plot": ["plot", "plots", "storyline", "story"],
    "music": ["music", "soundtrack", "song", "songs", "musical"],
    "effects": ["effects", "cgi", "animation", "animated"],
    "direction": ["director", "directed", "direction", "directing"],
    "script": ["script", "dialogue", "dialog", "writing", "writer", "written", "screenplay"],
    "camera": ["cinematography", "camera", "photography", "shots", "filmed"],
    "ending": ["ending", "finale", "climax"],
    "characters": ["character", "characters"],
    "comedy": ["funny", "comedy", "laugh", "laughs", "hilarious", "humor", "humour", "jokes"],
    "horror": ["horror", "scary", "gore", "creepy", "zombie", "zombies"],
    "romance": ["romance", "romantic", "kiss", "marriage"],
    "action": ["action", "fight", "fights", "explosions", "chase"],
    "family": ["kids", "children", "child", "family", "parents"],
    "book": ["book", "novel", "adaptation"],
    "budget": ["budget", "cheap", "low-budget"],
    "boredom": ["boring", "bored", "dull", "slow", "tedious"],
    "remake": ["remake", "sequel", "original", "version"],
    "tv": ["tv", "television", "series", "episode", "episodes"],
    "war": ["war", "soldier", "soldiers", "army", "military"],
    "history": ["history", "historical", "true"],
    "dvd": ["dvd", "video", "rent", "rented", "vhs"],
    "theater": ["theater", "theatre", "cinema", "audience"],
    "awards": ["oscar", "oscars", "award", "awards", "nominated"],
    "sex": ["sex", "nude", "nudity", "sexy", "sexual"],
    "violence": ["violence", "violent", "kill", "killed", "killing", "murder", "blood"],
    "religion": ["god", "church", "religious", "jesus", "faith"],
}
NAMES = [*ASPECTS, "neutral"]


def _sentences(text: str) -> list[str]:
    text = re.sub(r"<br\s*/?>", " ", text)
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 6 <= len(s.split()) <= 40]


def build(out: Path, per_split: int = 5400) -> tuple[Path, Path, Path]:
    """train.tsv, test.tsv and emotions.txt in `out`, written once (seeded)."""
    train, test, names = out / "train.tsv", out / "test.tsv", out / "emotions.txt"
    if train.exists() and test.exists() and names.exists():
        return train, test, names
    rng = np.random.default_rng(SEED)
    reviews = []
    with tarfile.open(TARBALL) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".txt") and "/train/" in member.name:
                reviews.append(tar.extractfile(member).read().decode("utf-8", "replace"))
    rng.shuffle(reviews)
    cues = {w: i for i, ws in enumerate(ASPECTS.values()) for w in ws}
    rows = []
    for review in reviews:
        sentences = _sentences(review)
        if not sentences:
            continue
        sentence = sentences[rng.integers(len(sentences))]
        words = sentence.split()
        keys = [re.sub(r"[^a-z-]", "", w.lower()) for w in words]
        labels = sorted({cues[k] for k in keys if k in cues})
        if not labels and rng.random() < 0.6:
            continue  # GoEmotions' neutral is about a third of its texts, not the most
        if labels and rng.random() < 0.5:
            words = [w for w, k in zip(words, keys, strict=True) if k not in cues]
        rows.append((" ".join(words), labels or [len(ASPECTS)]))
        if len(rows) == 2 * per_split:
            break
    out.mkdir(parents=True, exist_ok=True)
    for path, part in ((train, rows[:per_split]), (test, rows[per_split:])):
        path.write_text("".join(f"{t}\t{','.join(map(str, ls))}\tid{i}\n" for i, (t, ls) in enumerate(part)))
    names.write_text("\n".join(NAMES) + "\n")
    return train, test, names


def _read(path: Path) -> tuple[list[str], np.ndarray]:
    texts, y = [], []
    for line in path.read_text().splitlines():
        text, ids, _ = line.split("\t")
        texts.append(text)
        row = np.zeros(len(NAMES), int)
        row[[int(i) for i in ids.split(",")]] = 1
        y.append(row)
    return texts, np.array(y)


def tfidf(train: Path, test: Path) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier

    x_train, y_train = _read(train)
    x_test, y_test = _read(test)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    clf = OneVsRestClassifier(LogisticRegression(max_iter=1000, C=4.0))
    clf.fit(vec.fit_transform(x_train), y_train)
    p = clf.predict_proba(vec.transform(x_test))
    best = max((f1_score(y_test, p >= t, average="micro", zero_division=0), t)
               for t in np.arange(0.05, 0.55, 0.025))
    return {"micro_f1": best[0], "macro_f1": f1_score(y_test, p >= best[1], average="macro", zero_division=0),
            "threshold": round(float(best[1]), 3), "at_0.5": f1_score(y_test, p >= 0.5, average="micro")}


# `--head-learning-rate-factor 1` is the encoder's rate for the head, the default before
# MULTI_LABEL_HEAD_FACTOR was adopted (the variants compare against that).
ENCODER_RATE = ["--head-learning-rate-factor", "1"]
VARIANTS = {
    "default": ENCODER_RATE,
    "balanced": [*ENCODER_RATE, "--class-weight", "balanced"],
    "head-10x": ["--head-learning-rate-factor", "10"],
    "head-30x": ["--head-learning-rate-factor", "30"],
    "epochs-6": [*ENCODER_RATE, "--epochs", "6"],
    "head-30x-epochs-6": ["--head-learning-rate-factor", "30", "--epochs", "6"],
}


def collected(name: str, run_dir: Path, flags: list[str], minutes: float | None = None) -> dict:
    """What one finished run's report says."""
    report = json.loads((run_dir / "report" / "report.json").read_text())
    baseline = report.get("baseline") or {}
    rule = (report.get("record") or {}).get("threshold_rule") or {}
    settings = report["config"]["settings"]
    return {"flags": flags, "minutes": minutes, "micro_f1": report["micro_f1"],
            "macro_f1": report["macro_f1"], "threshold_rule": rule.get("rule"),
            "plan": {k: settings.get(k) for k in ("max_seq_length", "epochs", "learning_rate",
                                                  "head_learning_rate_factor", "seed")},
            "epochs_run": report["record"]["training"]["epochs_run"],
            "baseline": {k: baseline.get(k) for k in ("micro_f1", "macro_f1", "threshold_rule")}}


def bertclf(name: str, flags: list[str], train: Path, test: Path, names: Path, scratch: Path) -> dict:
    run_dir = scratch / name
    command = [sys.executable, "-m", "app.train", "--data", str(train), "--test-data", str(test),
               "--header", "none", "--text-column", "0", "--label-column", "1", "--label-separator", ",",
               "--label-names", str(names), "--run-dir", str(run_dir),
               "--output-dir", str(run_dir / "export"), *flags]
    start = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return collected(name, run_dir, flags, round((time.monotonic() - start) / 60, 1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=["tfidf", *VARIANTS])
    p.add_argument("--scratch", default="/tmp/bertclf-multilabel")
    p.add_argument("--seeds", nargs="+", type=int, default=[42],
                   help="app.train's --seed (42: its default)")
    p.add_argument("--collect", action="store_true",
                   help="rebuild the results from the finished runs' reports")
    args = p.parse_args()
    scratch = Path(args.scratch)
    train, test, names = build(scratch / "data")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown")
    results = {"date": datetime.date.today().isoformat(), "cpu": cpu, "variants": {}}
    if args.collect:
        for report in sorted(scratch.glob("*/report/report.json")):
            run_dir = report.parent.parent
            results["variants"][run_dir.name] = collected(run_dir.name, run_dir,
                                                          VARIANTS[run_dir.name.split("-seed")[0]])
        args.only, args.seeds = ["tfidf"], [42]
    for seed in args.seeds:
        for name in args.only or ["tfidf", *VARIANTS]:
            if name == "tfidf":
                result = tfidf(train, test)
            else:
                name = name if seed == 42 else f"{name}-seed{seed}"
                flags = [*VARIANTS[name.split("-seed")[0]], "--seed", str(seed)]
                result = bertclf(name, flags, train, test, names, scratch)
            results["variants"][name] = result
            print(name, json.dumps(result), flush=True)
    out = HERE / "results" / f"{results['date']}-multilabel.json"
    if out.exists():
        previous = json.loads(out.read_text())
        previous["variants"].update(results["variants"])
        results = {**previous, "variants": previous["variants"]}
    out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
