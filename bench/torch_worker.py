"""Hugging Face Transformers on PyTorch (CPU): the recipe many users would pick instead.

Runs in the benchmark's own virtualenv (bench/requirements-bench.txt), never in the project's.
AutoModelForSequenceClassification + torch.optim.AdamW on the same MiniLM weights, tokenization
included in the timed loop; fp32 or bf16 autocast. Prints one `RESULT {json}` line.

    python bench/torch_worker.py --checkpoint DIR --data DIR --seq-length 128 --dtype bf16
    python bench/torch_worker.py --checkpoint DIR --tta --train-csv F --test-csv F --minutes 15
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import (
    PROBE_STEPS,
    add_common_args,
    examples_in_budget,
    read_csv,
    read_texts,
    training_order,
    windows_rate,
)


def tta(args) -> dict:
    """The recipe given `--minutes` (bench/common.py's rule), then its held-out accuracy: the
    Trainer's defaults (AdamW, linear decay), as a user's first script would run them."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    torch.manual_seed(0)
    budget, start = args.minutes * 60, time.perf_counter()
    texts, labels = read_csv(args.train_csv)
    test_texts, test_labels = read_csv(args.test_csv)
    classes = sorted(set(labels))
    y = [classes.index(label) for label in labels]
    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(args.checkpoint, num_labels=len(classes))
    model.train()
    b = args.batch_size

    def step(index, optim, scheduler=None):
        enc = tok([texts[i] for i in index], truncation=True, max_length=args.seq_length, padding=True,
                  return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            loss = model(**enc, labels=torch.tensor([y[i] for i in index])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        if scheduler is not None:
            scheduler.step()
        optim.zero_grad()

    probe = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.0)
    times = []
    order = training_order(len(texts), b * (2 + PROBE_STEPS))
    for k in range(2 + PROBE_STEPS):
        step(order[k * b:(k + 1) * b], probe)
        times.append(time.perf_counter())
    rate = b * PROBE_STEPS / (times[-1] - times[1])
    # Up to --epochs passes (the small-data bench gives the Trainer's own 3), as the rate allows.
    n = examples_in_budget(rate, budget - (time.perf_counter() - start), len(texts) * args.epochs, b)
    order = training_order(len(texts), n)
    optim = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optim, int(0.1 * n // b), n // b)
    for k in range(n // b):
        step(order[k * b:(k + 1) * b], optim, scheduler)
        if time.perf_counter() - start > budget:
            break
    train_seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    by_length = sorted(range(len(test_texts)), key=lambda i: len(test_texts[i]))
    with torch.no_grad():
        for k in range(0, len(by_length), 64):
            index = by_length[k:k + 64]
            enc = tok([test_texts[i] for i in index], truncation=True, max_length=args.seq_length,
                      padding=True, return_tensors="pt")
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
                predicted = model(**enc).logits.argmax(-1).tolist()
            correct += sum(classes[p] == test_labels[i] for p, i in zip(predicted, index, strict=True))
    return {"accuracy": correct / len(test_texts), "train_seconds": train_seconds, "train_examples": n,
            "probe_examples_per_second": rate, "seq_length": args.seq_length,
            "epochs": round(n / len(texts), 2),
            "torch": torch.__version__}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--tta", action="store_true", help="time to accuracy (bench/tta.py)")
    p.add_argument("--train-csv")
    p.add_argument("--test-csv")
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=1, help="--tta: at most this many passes over the data")
    add_common_args(p)
    args = p.parse_args()
    if args.tta:
        print("RESULT " + json.dumps(tta(args)))
        return 0

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
    result = windows_rate(times, args.batch_size, args.warmup, args.window)
    print("RESULT " + json.dumps({**result, "torch": torch.__version__,
                                  "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
