"""Convert a Hugging Face BERT-family checkpoint into TF-Hub preprocess + encoder SavedModels.

    python -m app.convert --checkpoint DIR --output OUT [--seq-length 128] [--compute-dtype bfloat16]
                          [--implementation fast|plain]

DIR holds `config.json`, `model.safetensors` and `vocab.txt` (optionally `tokenizer_config.json`
or `tokenizer.json`, which decide lower-casing). OUT receives `preprocess/` and `encoder/`, which
`hub.KerasLayer` loads exactly like the published TF-Hub BERT models, and `bertclf_convert.json`,
which records the options and a fingerprint of the converter's code: a cached conversion whose
fingerprint differs from what this converter would write is redone (`app.model.encoders`).
"""

from __future__ import annotations

import argparse
import sys

from app import runtime
from app.model import conversion


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m app.convert` (docs/flags.md is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m app.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="Hugging Face BERT checkpoint folder")
    parser.add_argument("--output", required=True, help="folder for preprocess/ and encoder/")
    parser.add_argument("--seq-length", type=int, default=128,
                        help="sequence length of the preprocessor's default call (default 128)")
    parser.add_argument("--compute-dtype", choices=conversion.COMPUTE_DTYPES, default="float32",
                        help="dtype the encoder computes in; weights stay float32 (default float32)")
    parser.add_argument("--implementation", choices=conversion.IMPLEMENTATIONS, default="fast",
                        help="encoder graph: fast (CPU speed techniques, docs/speed.md) or plain "
                             "(the reference), the same function (default fast)")
    parser.add_argument("--verbose", action="store_true", help="keep TensorFlow's own start-up lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runtime.setup(args.verbose)
    try:
        out = conversion.convert(args.checkpoint, args.output, args.seq_length, args.compute_dtype,
                      args.implementation)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'preprocess'} and {out / 'encoder'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
