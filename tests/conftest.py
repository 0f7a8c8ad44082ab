"""Shared fixtures and helpers: a tiny random BERT checkpoint, its TF-Hub conversion, small
datasets, one trained tiny run, and the way tests run the CLIs in subprocesses.

Everything here is made on the fly, so the suite needs neither the network nor ../shared.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pickle
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# CPU fusion (app.runtime) compiles XLA clusters in every process for every new shape: on the
# suite's many tiny models and subprocesses that costs time and buys nothing. It is off here
# (and in the CLIs the tests start) except in the tests that run it explicitly (test_runtime.py).
os.environ.setdefault("BERTCLF_CPU_FUSION", "0")
# Throughput probes of the tiny encoders (app.training.budget) go to a cache of the suite's own.
os.environ["BERTCLF_CACHE_DIR"] = tempfile.mkdtemp(prefix="bertclf-test-cache-")

import app  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow)

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
# The environment outside the suite: CPU fusion as the CLIs set it up.
FUSION_ENV = {**{k: v for k, v in ENV.items() if k not in ("TF_XLA_FLAGS", "BERTCLF_CPU_FUSION")},
              "BERTCLF_CPU_FUSION": "1"}


def run_module(module: str, *args, env: dict | None = None, timeout: int = 600, stdin: str | None = None,
               preexec=None) -> subprocess.CompletedProcess:
    """`python -m app.MODULE ARGS` in a new process, from the repository root."""
    return subprocess.run([sys.executable, "-m", f"app.{module}", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=env or ENV, timeout=timeout, input=stdin,
                          preexec_fn=preexec)


def run_script(script: str, *args, env: dict | None = None, timeout: int = 600, cwd: Path = ROOT
               ) -> subprocess.CompletedProcess:
    """`python -c SCRIPT ARGS` in a new process."""
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env or ENV, timeout=timeout)


def run_in_process(module: str, *args) -> subprocess.CompletedProcess:
    """`python -m app.MODULE ARGS` as a call of its `main(argv)`: the same code path, without
    the seconds a new process takes to import TensorFlow."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = importlib.import_module(f"app.{module}").main([*map(str, args)])
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def assert_clear_failure(proc: subprocess.CompletedProcess, message: str) -> None:
    """Non-zero exit, the message on stderr, and no Python traceback."""
    assert proc.returncode != 0, proc.stdout[-1000:]
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]

TINY = {
    "model_type": "bert",
    "architectures": ["BertModel"],
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "layer_norm_eps": 1e-12,
}

_WORDS = (
    "the a an and or but is was were be been it this that film movie story plot acting actor "
    "actors good great bad terrible awful wonderful boring funny love loved hate hated best worst "
    "not very really so too much well no yes i you he she they we of to in on for with as at by "
    "from ending scene scenes character characters director music watch watched again never ever "
    "one two ten time minutes hours script dialogue beautiful dull brilliant mess masterpiece"
).split()


def tiny_vocab() -> list[str]:
    """Specials, every printable ASCII character alone and as a suffix piece, some words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    tokens = specials + chars + ["##" + c for c in chars if c.isalnum()] + _WORDS
    return list(dict.fromkeys(tokens))


def write_tiny_checkpoint(folder: Path, seed: int = 0, **overrides) -> Path:
    """A Hugging Face-style BERT checkpoint with random weights (names as BertModel saves them)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    cfg = dict(TINY, vocab_size=len(vocab), **overrides)
    rng = np.random.default_rng(seed)
    h, f = cfg["hidden_size"], cfg["intermediate_size"]

    def normal(*shape):
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    t = {
        "embeddings.word_embeddings.weight": normal(cfg["vocab_size"], h),
        "embeddings.position_embeddings.weight": normal(cfg["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": normal(cfg["type_vocab_size"], h),
        "embeddings.LayerNorm.weight": np.ones(h, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(h, np.float32),
        "embeddings.position_ids": np.arange(cfg["max_position_embeddings"])[None].astype(np.int64),
        "pooler.dense.weight": normal(h, h),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            t[p + name + ".weight"] = normal(h, h)
            t[p + name + ".bias"] = normal(h)
        t[p + "intermediate.dense.weight"] = normal(f, h)
        t[p + "intermediate.dense.bias"] = normal(f)
        t[p + "output.dense.weight"] = normal(h, f)
        t[p + "output.dense.bias"] = normal(h)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + norm + ".weight"] = 1.0 + normal(h)
            t[p + norm + ".bias"] = normal(h)
    save_file(t, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_ckpt") / "checkpoint")


@pytest.fixture(scope="session")
def tiny_hub(tiny_checkpoint, tmp_path_factory) -> Path:
    """`app.convert` output for the tiny checkpoint: a folder with preprocess/ and encoder/."""
    from app.model.conversion import convert

    return convert(tiny_checkpoint, tmp_path_factory.mktemp("tiny_hub") / "tiny", seq_length=32)


@pytest.fixture(scope="session")
def tiny_hub_still(tmp_path_factory) -> Path:
    """A tiny encoder without dropout: with `--dropout 0`, training is a function of the seed and
    the data order alone, so an interrupted run can be compared with an uninterrupted one."""
    from app.model.conversion import convert

    checkpoint = write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_still_ckpt") / "checkpoint",
                                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return convert(checkpoint, tmp_path_factory.mktemp("tiny_hub_still") / "tiny", seq_length=32)


@pytest.fixture(scope="session")
def tiny_hub_plain(tiny_checkpoint, tmp_path_factory) -> Path:
    """The same checkpoint converted with the plain reference encoder (app.model.bert)."""
    from app.model.conversion import convert

    return convert(tiny_checkpoint, tmp_path_factory.mktemp("tiny_hub_plain") / "tiny", seq_length=32,
                   implementation="plain")


@pytest.fixture(scope="session")
def tiny_weights(tiny_checkpoint):
    """(BertConfig, weights as app.convert maps them) of the tiny checkpoint, for building
    encoders in memory."""
    from safetensors.numpy import load_file

    from app.model.conversion import map_weights, read_bert_config

    config = read_bert_config(tiny_checkpoint / "config.json")
    return config, map_weights(load_file(str(tiny_checkpoint / "model.safetensors")), config, "tiny")


POSITIVE = ["good", "great", "wonderful", "brilliant", "loved", "best", "beautiful", "funny"]
NEGATIVE = ["bad", "terrible", "awful", "boring", "hated", "worst", "dull", "mess"]
FILLER = ["the", "film", "movie", "story", "acting", "was", "really", "very", "plot", "music"]


# Words only the unlabelled reviews have, one a class: what self-training can teach the n-gram model.
UNSUP_WORDS = {"pos": "splendid", "neg": "dismal"}


def write_tiny_reviews(root: Path, train_per_class: int = 100, test_per_class: int = 10,
                       seed: int = 0, unsup_per_class: int = 0) -> Path:
    """An aclImdb-layout dataset of short reviews built from the tiny vocabulary's words; with
    `unsup_per_class`, `train/unsup/` holds that many unlabelled reviews of each class, each
    with its class's word of `UNSUP_WORDS`, plus an empty file and a copy of a training review."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for label, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                tokens = list(rng.choice(FILLER, size=6)) + list(rng.choice(words, size=2))
                rng.shuffle(tokens)
                (folder / f"{i}_5.txt").write_text(" ".join(tokens) + ".")
    if unsup_per_class:
        rng = np.random.default_rng(seed + 1)
        folder = root / "train" / "unsup"
        folder.mkdir(parents=True, exist_ok=True)
        for label, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
            for i in range(unsup_per_class):
                tokens = [*rng.choice(FILLER, size=5), *rng.choice(words, size=2), UNSUP_WORDS[label]]
                rng.shuffle(tokens)
                (folder / f"{label}{i}_0.txt").write_text(" ".join(tokens) + ".")
        (folder / "empty_0.txt").write_text("  \n")
        (folder / "copy_0.txt").write_text((root / "train" / "pos" / "0_5.txt").read_text())
    return root


@pytest.fixture(scope="session")
def tiny_reviews(tmp_path_factory) -> Path:
    return write_tiny_reviews(tmp_path_factory.mktemp("reviews") / "aclImdb", unsup_per_class=100)


PAIR_CLASSES = ["different", "same"]


PAIR_HEADER = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")


def write_tiny_pairs(folder: Path, n: int = 160, seed: int = 0) -> tuple[Path, Path]:
    """A sentence-pair table in the shape paraphrase corpora ship in (msr_paraphrase_train.txt):
    a .txt file, tab-separated, a byte-order mark, the header `PAIR_HEADER`, the label 0
    (different) or 1 (same) first, named in a separate file; `same` when the second sentence has
    the first's sentiment words. One pair in four is `same` (imbalanced)."""
    rng = np.random.default_rng(seed)
    lines = ["\t".join(PAIR_HEADER)]
    for i in range(n):
        words, other = (POSITIVE, NEGATIVE) if i % 2 else (NEGATIVE, POSITIVE)
        same = i % 4 == 0
        first = " ".join([*rng.choice(FILLER, size=4), *rng.choice(words, size=2)])
        second = " ".join([*rng.choice(FILLER, size=3), *rng.choice(words if same else other, size=2)])
        lines.append(f"{int(same)}\t{2 * i}\t{2 * i + 1}\t{first}\t{second}")
    table = folder / "msr_paraphrase_train.txt"
    table.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    names = folder / "classes.txt"
    names.write_text("\n".join(PAIR_CLASSES) + "\n")
    return table, names


def _headerless_tsv(table: Path, rows: list[tuple], names: Path, classes: list[str]) -> tuple[Path, Path]:
    """(table, names file): `rows` as a TSV without a header, the class names one a line."""
    pd.DataFrame(rows).to_csv(table, sep="\t", header=False, index=False)
    names.write_text("\n".join(classes) + "\n")
    return table, names


def shared_once(tmp_path_factory, name: str, build):
    """`build(folder)` run once per test run and shared by every pytest-xdist worker: the first
    to ask builds it under a lock and pickles the result; the others wait and load it. (A
    session fixture alone is built once per worker.) What it returns must pickle and may point
    at files of another worker's, which live until the run ends."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        done = folder / "result.pickle"
        if done.is_file():
            return pickle.loads(done.read_bytes())
        folder.mkdir(exist_ok=True)
        result = build(folder)
        done.write_bytes(pickle.dumps(result))
        return result


def run_tiny(tiny_hub: Path, data: Path, tmp: Path, **flags):
    """(RunResult, config) of one `app.train` run of the tiny encoder with `tiny_train_args`."""
    import argparse

    from app import config, train

    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    cfg = config.build_config(parser.parse_args(tiny_train_args(tiny_hub, data, tmp, **flags)))
    # A tiny run validates on about 20 texts, too few for a temperature (calibration.MIN_EXAMPLES):
    # it fits one all the same, so that the tests see the export apply one.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("app.training.calibration.MIN_EXAMPLES", 10)
        return train.run(cfg), cfg


@pytest.fixture(scope="session")
def trained_pairs(tiny_hub, tmp_path_factory):
    """One finished `app.train` run of the tiny encoder on text pairs read as paraphrase corpora
    ship them (a .txt TSV with a byte-order mark and its own header, label names in a file), with
    balanced class weights and mean pooling: (RunResult, config)."""
    def build(tmp):
        table, names = write_tiny_pairs(tmp)
        return run_tiny(tiny_hub, table, tmp, epochs=2, text_column="#1 String", text_pair_column="#2 String",
                        label_column="Quality", label_names=names, class_weight="balanced", pooling="mean",
                        model_name="pairs", baseline="none")

    return shared_once(tmp_path_factory, "trained_pairs", build)


LEARNABLE_TAGS = ["praise", "complaint", "music"]
# 28 labels in all, as emotion corpora have: 25 rare ones on three texts each, with no word of
# their own to find them by (the thresholds and weights must cope with labels barely seen).
TAG_CLASSES = LEARNABLE_TAGS + [f"rare{k}" for k in range(25)]
RARE_EVERY = 53


def write_tiny_tags(folder: Path, n: int = 160, seed: int = 0) -> tuple[Path, Path]:
    """A multi-label table in the shape emotion corpora come in: TSV without a header, columns
    text, label ids separated by commas (0-based, 28 names in a separate file), an id. `praise`
    when the text has positive words, `complaint` negative ones, `music` the word music: any
    number of the three, none included; text i also has rare label k when i % 53 == k (k < 25)."""
    rng = np.random.default_rng(seed)
    filler = [w for w in FILLER if w != "music"]
    rows = []
    for i in range(n):
        words, tags = list(rng.choice(filler, size=4)), []
        for tag, (vocabulary, share) in enumerate(((POSITIVE, 0.5), (NEGATIVE, 0.4), (["music"], 0.35))):
            if rng.random() < share:
                words += list(rng.choice(vocabulary, size=2 if tag < 2 else 1))
                tags.append(str(tag))
        if i % RARE_EVERY < 25:
            tags.append(str(len(LEARNABLE_TAGS) + i % RARE_EVERY))
        rng.shuffle(words)
        rows.append((" ".join(words), ",".join(tags), f"t{i}"))
    return _headerless_tsv(folder / "tags.tsv", rows, folder / "tags.txt", TAG_CLASSES)


@pytest.fixture(scope="session")
def trained_tags(tiny_hub, tmp_path_factory):
    """One finished multi-label `app.train` run of the tiny encoder, read from the TSV as it
    comes (no header, 28 label ids separated by commas, their names in a file), each label's
    positives weighted (--class-weight balanced): (RunResult, config)."""
    def build(tmp):
        table, names = write_tiny_tags(tmp)
        return run_tiny(tiny_hub, table, tmp, epochs=3, text_column="0", label_column="1",
                        label_separator=",", label_names=names, model_name="tags", class_weight="balanced")

    return shared_once(tmp_path_factory, "trained_tags", build)


def tiny_train_args(tiny_hub: Path, data: Path, tmp: Path, **flags) -> list[str]:
    """`app.train` flags for a quick run of the tiny encoder."""
    # A random tiny encoder needs about 100 steps to pick up the sentiment words.
    args = {"data": str(data), "encoder": str(tiny_hub), "epochs": "5", "patience": "5",
            "batch-size": "8", "max-seq-length": "32", "learning-rate": "1e-3", "run-dir": str(tmp / "run"),
            "output-dir": str(tmp / "models"), "model-name": "tiny"}
    args.update({k.replace("_", "-"): str(v) for k, v in flags.items()})
    return [x for k, v in args.items() for x in (f"--{k}", v)]


@pytest.fixture(scope="session")
def trained_tiny(tiny_hub, tiny_reviews, tmp_path_factory):
    """One finished `app.train` run of the tiny encoder, self-training on the reviews of
    `train/unsup/` (`--unlabeled-data` given the aclImdb folder): (RunResult, config)."""
    return shared_once(tmp_path_factory, "trained_tiny",
                       lambda tmp: run_tiny(tiny_hub, tiny_reviews, tmp, unlabeled_data=tiny_reviews))


@pytest.fixture(scope="session")
def exported(trained_tiny) -> Path:
    """The version folder of the trained tiny run's export."""
    return trained_tiny[0].export_dir


def tiny_classifier(tiny_hub: Path, seq_length: int | None = 16, num_classes: int = 2):
    """(classifier, tokenizer) of the tiny encoder, untrained, as app.train builds them."""
    from app.model.classifier import build_classifier
    from app.model.preprocessing import Tokenizer

    model = build_classifier(str(tiny_hub / "encoder"), num_classes, seq_length=seq_length, pooled_only=True)
    return model, Tokenizer(str(tiny_hub / "preprocess"), seq_length or 32)


@pytest.fixture(scope="session")
def minilm_hub_cache(tmp_path_factory) -> Path:
    """A hub cache holding the offline MiniLM, converted once per test session (~20 s)."""
    from app.model.encoders import ensure_offline_encoder

    cache = tmp_path_factory.mktemp("hub_cache")
    ensure_offline_encoder(cache)
    return cache


def write_class_folders(root: Path, per_class: dict[str, list[str]]) -> Path:
    for label, texts in per_class.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            (root / label / f"{i}_1.txt").write_text(text)
    return root


def bad_data_inputs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (path given as --data, text the error must contain)."""
    cases = {}
    cases["missing path"] = (str(tmp_path / "nope"), "no such file or directory")
    (tmp_path / "empty_dir").mkdir()
    cases["empty directory"] = (str(tmp_path / "empty_dir"), "directory is empty")
    one = write_class_folders(tmp_path / "one", {"pos": ["good", "great"]})
    cases["single class"] = (str(one), "single class")
    hollow = write_class_folders(tmp_path / "hollow", {"pos": ["good"]})
    (hollow / "neg").mkdir()
    cases["class folder with no files"] = (str(hollow), "neg: class folder has no files")
    cols = tmp_path / "cols.csv"
    cols.write_text("body,rating\nnice,5\n")
    cases["missing columns"] = (str(cols), "no text column found")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases["empty file"] = (str(empty), "empty.csv: file is empty")
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n")
    cases["header only"] = (str(header_only), "header.csv: file has no rows")
    truncated = tmp_path / "truncated.csv"
    truncated.write_text('text,label\n"good film",pos\n"bad film, cut off')
    cases["truncated csv"] = (str(truncated), "truncated.csv: cannot parse")
    jsonl = tmp_path / "broken.jsonl"
    jsonl.write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "lab\n')
    cases["truncated jsonl"] = (str(jsonl), "broken.jsonl line 2: not valid JSON")
    unknown = tmp_path / "data.xlsx"
    unknown.write_text("x")
    cases["unknown file type"] = (str(unknown), "unknown file type '.xlsx'")
    return cases
