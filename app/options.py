"""The values bertclf's options take, shared by the modules that read, check and document them.

A leaf: it imports nothing, so `app.config` (and with it `--help`) needs neither TensorFlow nor
pandas, and no stage has to import a later one for a tuple of names.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"

# data
TABLE_FORMATS = ("csv", "tsv", "jsonl", "parquet")
INPUT_KINDS = ("lines", *TABLE_FORMATS)  # what app.predict reads: a table, or one text a line
HEADERS = ("auto", "yes", "none")
TASKS = ("auto", "single-label", "multi-label")
CLASS_WEIGHTS = ("none", "balanced")  # or a JSON file
UNLABELED_EXAMPLES = 10_000  # --max-unlabeled-examples: self-training's texts at most, by default
# model
TRUNCATIONS = ("head", "tail", "head+tail")
POOLINGS = ("cls", "mean")
# optimisation
REGIMES = ("auto", "fine-tune", "contrastive")
# Training examples up to which `--regime auto` is contrastive (app.training.contrastive says why).
SMALL_DATA = 2000
# hardware
STRATEGIES = ("auto", "tpu", "multi-worker", "mirrored", "gpu", "cpu")
MIXED_PRECISION = ("auto", "none", "bf16")
CPU_FUSION_CHOICES = ("auto", "on", "off")
# outputs
CALIBRATIONS = ("temperature", "none")
BASELINES = ("tfidf", "none")
