"""Hugging Face Transformers on PyTorch (CPU): the recipe many users would pick instead.

Runs in the benchmark's own virtualenv (bench/requirements-bench.txt), never in the project's.
AutoModelForSequenceClassification + torch.optim.AdamW on the same MiniLM weights, tokenization
included in the timed loop; fp32 or bf16 autocast. Prints one `RESULT {json}` line.

    python bench/torch_worker.py --checkpoint DIR --data DIR --seq-length 128 --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import random
import time
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


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--seq-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--window", type=int, default=3)
    args = p.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(args.checkpoint, num_labels=2)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    texts, labels = read_texts(Path(args.data), args.batch_size * 8)
    steps = args.warmup + args.windows * args.window
    times = [time.perf_counter()]
    for step in range(steps):
        i = (step * args.batch_size) % len(texts)
        batch_texts = texts[i:i + args.batch_size]
        batch_labels = torch.tensor(labels[i:i + args.batch_size])
        enc = tok(batch_texts, truncation=True, max_length=args.seq_length, padding="max_length",
                  return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            loss = model(**enc, labels=batch_labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad()
        times.append(time.perf_counter())
    steps_t = np.diff(times)[args.warmup:]
    rates = [args.batch_size * args.window / steps_t[i:i + args.window].sum()
             for i in range(0, len(steps_t) - args.window + 1, args.window)]
    print("RESULT " + json.dumps({"examples_per_second": float(np.median(rates)),
                                  "windows": [float(r) for r in rates], "torch": torch.__version__,
                                  "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
