"""Hugging Face Transformers on PyTorch (CPU): the recipe many users would pick instead.

Runs in the benchmark's own virtualenv (bench/requirements-bench.txt), never in the project's.
AutoModelForSequenceClassification + torch.optim.AdamW on the same MiniLM weights, tokenization
included in the timed loop; fp32 or bf16 autocast. Prints one `RESULT {json}` line.

    python bench/torch_worker.py --checkpoint DIR --data DIR --seq-length 128 --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import add_common_args, read_texts, windows_rate


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    add_common_args(p)
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
    result = windows_rate(times, args.batch_size, args.warmup, args.window)
    print("RESULT " + json.dumps({**result, "torch": torch.__version__,
                                  "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
