"""Shared by the benchmark workers: the same reviews, the same flags, the same windowed rates.

Plain Python and NumPy only, so every worker (TensorFlow, Keras 3, PyTorch) can import it.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np


def read_texts(folder: Path, n: int) -> tuple[list[str], list[int]]:
    """The first n reviews (balanced, shuffled) of an aclImdb-layout train/ split."""
    pairs = []
    train = folder / "train" if (folder / "train").is_dir() else folder
    for label, name in enumerate(sorted(p.name for p in train.iterdir() if p.is_dir() and p.name != "unsup")):
        files = sorted((train / name).iterdir())[: n // 2 + 1]
        pairs += [(f.read_text(encoding="utf-8", errors="replace").replace("<br />", " "), label)
                  for f in files]
    random.Random(0).shuffle(pairs)
    pairs = pairs[:n]
    return [t for t, _ in pairs], [y for _, y in pairs]


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True)
    p.add_argument("--seq-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--window", type=int, default=3)


def windows_rate(times: list[float], batch: int, warmup: int, window: int) -> dict:
    """Examples/s per window of `window` steps after `warmup` steps; median and all windows."""
    steps = np.diff(times)[warmup:]
    rates = [batch * window / steps[i:i + window].sum() for i in range(0, len(steps) - window + 1, window)]
    return {"examples_per_second": float(np.median(rates)), "windows": [float(r) for r in rates]}


def read_csv(path: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of a text,label CSV that bench/tta.py wrote (csv module: no pandas in
    every worker's environment)."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


# The rule that fits a contender's recipe into a time budget (bench/tta.py): time PROBE_STEPS
# training steps at learning rate 0 (the weights do not move), then train one shuffled epoch
# over as many examples as that rate covers in the time left, less SLACK, with the recipe's
# warm-up and linear decay sized to those steps; stop at the budget whatever the rate did.
PROBE_STEPS = 8
SLACK = 0.05


def examples_in_budget(rate: float, seconds_left: float, available: int, batch: int) -> int:
    """How many training examples one epoch at `rate` examples/s covers in `seconds_left`."""
    fit = int(rate * seconds_left * (1 - SLACK)) // batch * batch
    return max(batch, min(available // batch * batch, fit))


def training_order(available: int, count: int, seed: int = 0):
    """`count` example indices: shuffled passes over `available` examples, one after another (a
    recipe's epochs; a probe longer than a small data set cycles through it)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    passes = -(-count // max(available, 1))
    return np.concatenate([rng.permutation(available) for _ in range(passes)])[:count]
