"""`python -m app.data inspect --data PATH`: the classes, counts and token lengths of a data set,
as JSON, read with the same flags as `app.train`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

import numpy as np

from app import runtime
from app.config import add_table_arguments
from app.data.examples import Dataset
from app.data.splits import read_dataset
from app.data.tables import TableFormat
from app.options import BUNDLED_SAMPLE

if TYPE_CHECKING:
    from app.model.preprocessing import Tokenizer

def table_format(args: argparse.Namespace) -> TableFormat:
    return TableFormat(**{name: getattr(args, name, None) for name in
                          ("text_column", "label_column", "header", "label_names", "text_pair_column", "task",
                           "label_separator", "label_columns", "format")})

def inspect(dataset: Dataset, tokenizer: Tokenizer | None, limit: int = 512) -> dict:
    """Classes, per-split counts and token-length statistics, as `app.data inspect` prints; for
    the training split also the length `app.train --max-seq-length auto` would pick (`limit`:
    the encoder's)."""
    from app.training import budget

    report = {"classes": dataset.classes, "columns": dataset.columns,
              "task": "multi-label" if dataset.multi_label else "single-label", "splits": {},
              "warnings": list(dataset.warnings)}
    for name, split in dataset.splits.items():
        entry = {"n_examples": len(split), "counts": split.counts()}
        if tokenizer is not None and len(split):
            lengths = np.concatenate([
                tokenizer.token_lengths(split.texts[i:i + 1024],
                                        None if split.pairs is None else split.pairs[i:i + 1024])
                for i in range(0, len(split), 1024)
            ]) + 2  # [CLS] and [SEP]
            entry["tokens"] = {
                "median": float(np.median(lengths)),
                "p90": float(np.percentile(lengths, 90)),
                "max": int(lengths.max()),
                "over_seq_length": int((lengths > tokenizer.seq_length).sum()),
                "seq_length": tokenizer.seq_length,
            }
            if name == "train":
                entry["tokens"]["auto_seq_length"] = budget.auto_seq_length(lengths - 2, limit)[0]
        report["splits"][name] = entry
    return report

def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m app.data` (docs/flags.md is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m app.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print classes, counts and token lengths as JSON")
    p.add_argument("--data", default=str(BUNDLED_SAMPLE),
                   help="folder, table file, imdb or tfds:NAME (default: the bundled sample)")
    p.add_argument("--test-data", help="labelled test set, when --data has none")
    add_table_arguments(p)
    p.add_argument("--encoder", default=None,
                   help="encoder whose tokenizer counts tokens (default: the offline MiniLM)")
    p.add_argument("--max-seq-length", type=int, default=128,
                   help="length to count texts over (default 128)")
    p.add_argument("--no-tokens", action="store_true", help="skip token statistics (faster)")
    p.add_argument("--verbose", action="store_true", help="keep TensorFlow's own start-up lines")
    return parser

def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # stdout carries the JSON; warnings go to stderr
    runtime.setup(args.verbose, logging.WARNING)
    try:
        if args.max_seq_length < 8:
            raise ValueError(f"--max-seq-length must be at least 8, got {args.max_seq_length}")
        # Every split as it is: inspect reports the data, it holds nothing out.
        dataset = read_dataset(args.data, args.test_data, table_format(args))
        tokenizer = None
        if not args.no_tokens:
            from app.model import encoders
            from app.model.preprocessing import Tokenizer

            spec = encoders.resolve(args.encoder or encoders.DEFAULT_ENCODER)
            tokenizer = Tokenizer(spec.preprocess, args.max_seq_length)
        report = inspect(dataset, tokenizer, spec.max_seq_length if tokenizer is not None else 512)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
