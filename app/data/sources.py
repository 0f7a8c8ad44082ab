"""Where examples come from, by what `--data` is: a folder in the aclImdb layout (`train/`,
`test/`, optional `valid/`, one sub-folder of text files per class; `unsup/` and loose files
ignored) or class folders directly; `imdb`, downloaded once; `tfds:NAME`; or a table
(`app.data.tables`). Integer labels are named from a `--label-names` file here.
`read_unlabeled` reads `--unlabeled-data`: texts without labels."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np

from app.data.examples import SPLIT_NAMES, DataError, Notes, Split
from app.data.tables import TableFormat, decode, read_table, stream_texts

logger = logging.getLogger("app.data")

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"

IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"


IGNORED_FOLDERS = {"unsup"}

def _read_class_folders(folder: Path, notes: Notes) -> Split:
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in IGNORED_FOLDERS
                        and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{folder}: no class folders (expected one sub-folder of text files per class)")
    texts, labels, ids = [], [], []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{class_dir}: class folder has no files")
        bad_files = []
        for path in files:
            text = decode(path.read_bytes(), str(path), notes)
            if not text.strip():
                bad_files.append(path.name)
                continue
            texts.append(text)
            labels.append(class_dir.name)
            ids.append(f"{class_dir.name}/{path.name}")
        if bad_files:
            notes.add(f"{class_dir}: skipped {len(bad_files)} empty file(s), e.g. {bad_files[:3]}")
    return Split(texts, labels, ids)

def read_folder(folder: Path, notes: Notes) -> dict[str, Split]:
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"{folder}: directory is empty")
    split_dirs = {SPLIT_NAMES[p.name.lower()]: p for p in entries
                  if p.is_dir() and p.name.lower() in SPLIT_NAMES}
    if not split_dirs:  # class folders directly
        return {"train": _read_class_folders(folder, notes)}
    return {name: _read_class_folders(path, notes) for name, path in sorted(split_dirs.items())}

def _read_tfds(name: str) -> dict[str, Split]:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(f"--data tfds:{name} needs tensorflow-datasets "
                        "(pip install tensorflow-datasets)") from e
    ds, info = tfds.load(name, with_info=True, as_supervised=True)
    names = info.features["label"].names
    out = {}
    for split_name, split_ds in ds.items():
        if split_name not in SPLIT_NAMES:
            continue
        texts, labels = [], []
        for text, label in tfds.as_numpy(split_ds):
            texts.append(text.decode("utf-8", errors="replace"))
            labels.append(names[int(label)])
        out[SPLIT_NAMES[split_name]] = Split(texts, labels, [f"{split_name}:{i}" for i in range(len(texts))])
    return out

def download_imdb(cache_dir: str | None = None, origin: str = IMDB_URL,
                  file_hash: str | None = IMDB_SHA256) -> Path:
    """Download (once), check and extract the IMDb archive; return the `aclImdb` folder."""
    import tensorflow as tf

    archive = tf.keras.utils.get_file(
        "aclImdb_v1.tar.gz", origin=origin, file_hash=file_hash, hash_algorithm="sha256",
        extract=True, cache_dir=cache_dir, cache_subdir="datasets",
    )
    base = Path(archive).parent
    for candidate in (base / "aclImdb", base / "aclImdb_v1" / "aclImdb", base / "aclImdb_v1"):
        if (candidate / "train").is_dir():
            return candidate
    raise DataError(f"{archive}: extracted archive has no aclImdb/train folder")

def read_source(source: str, table: TableFormat | None = None,
                notes: Notes | None = None) -> dict[str, Split]:
    """Read one `--data` value into splits (train/validation/test as the source has them); a
    table as `table` says, and integer labels named from `table.label_names`."""
    notes = notes or Notes()
    table = table or TableFormat()
    if table.text_pair_column is not None and (source == "imdb" or source.startswith("tfds:")):
        raise DataError(f"--text-pair-column {table.text_pair_column}: --data {source} has single texts; "
                        "text pairs come in a table (.csv, .tsv, .jsonl, .parquet)")
    if source == "imdb":
        return read_folder(download_imdb(), notes)
    if source.startswith("tfds:"):
        return _read_tfds(source[len("tfds:"):])
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"--data {source}: no such file or directory")
    if path.is_dir() and table.text_pair_column is not None:
        raise DataError(f"--text-pair-column {table.text_pair_column}: --data {source} is a folder of "
                        "single texts; text pairs come in a table (.csv, .tsv, .jsonl, .parquet)")
    if path.is_dir() and (table.task == "multi-label" or table.label_separator or table.label_columns):
        raise DataError(f"--data {source} is a folder, one class a sub-folder: several labels per text "
                        "come in a table (.csv, .tsv, .jsonl, .parquet)")
    splits = read_folder(path, notes) if path.is_dir() else read_table(path, table, notes)
    if table.label_names:
        splits, rule = name_labels(splits, read_label_names(table.label_names), table.label_names)
        logger.info("%s: class names from --label-names: %s", source, rule)
    return splits

def read_label_names(path: str) -> list[str]:
    """The class names of a `--label-names` file: one a line, blank lines and surrounding spaces
    ignored."""
    try:
        raw = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"--label-names {path}: cannot read ({e.strerror or e})") from e
    names = [line.strip() for line in raw.splitlines() if line.strip()]
    if len(names) < 2:
        raise DataError(f"--label-names {path}: needs one class name a line, at least two; "
                        f"found {len(names)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"--label-names {path}: names {repeated} more than once")
    return names

def name_labels(splits: dict[str, Split], names: list[str], path: str) -> tuple[dict[str, Split], str]:
    """Replace integer labels by their names: value k is line k+1 of the file, or line k when
    the labels run from 1 to len(names) (never 0); each label of a set likewise. (named splits,
    which of the two)."""
    values = {}
    for split in splits.values():
        for label, where in zip(split.labels, split.ids, strict=True):
            for value in label if isinstance(label, tuple) else (label,):
                if value not in values:
                    try:
                        values[value] = int(value)
                    except ValueError:
                        raise DataError(f"--label-names {path} names integer labels; {where} has label "
                                        f"{value!r}") from None
    seen = sorted(set(values.values()))
    if not seen:
        raise DataError(f"--label-names {path}: the data has no labels to name")
    if seen[0] >= 1 and seen[-1] == len(names):
        base, rule = 1, f"label 1 is line 1 of {path} (labels run 1 to {len(names)})"
    elif seen[0] == 0 and seen[-1] < len(names):
        base, rule = 0, f"label 0 is line 1 of {path}"
    else:
        raise DataError(f"--label-names {path} has {len(names)} names, which do not cover the labels "
                        f"{seen[0]} to {seen[-1]} found: its lines name the labels 0 to {len(names) - 1}, "
                        f"or 1 to {len(names)}")
    def name(label):
        if isinstance(label, tuple):
            return tuple(names[values[v] - base] for v in label)
        return names[values[label] - base]

    named = {k: dataclasses.replace(v, labels=[name(label) for label in v.labels]) for k, v in splits.items()}
    return named, rule


def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_unlabeled(source: str, table: TableFormat | None = None, exclude: Collection[str] = (),
                   limit: int | None = None, seed: int = 42) -> tuple[list[str], list[str]]:
    """(texts, notes) of `--unlabeled-data`: a folder of text files, one text a file (aclImdb's
    `unsup/`; a folder with an `unsup/` or `train/unsup/` stands for it), a table's text column (as
    `app.train` finds it: `table.text_column` or by name), or any other file one text a line.
    Empty texts, repeats and texts in `exclude` (the labelled ones) are left out and counted in
    the notes; above `limit` texts a seeded sample is kept."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"--unlabeled-data {source}: no such file or directory")
    notes = Notes()
    if path.is_dir():
        folder = next((p for p in (path / "unsup", path / "train" / "unsup") if p.is_dir()), path)
        if folder != path:  # (the aclImdb folder and its train/ hold other files too)
            logger.info("--unlabeled-data %s: the texts of %s", source, folder)
        files = _text_files(folder)
        if not files:
            raise DataError(f"--unlabeled-data {source}: no text files (one text a file, as in aclImdb's "
                            "unsup/), nor an unsup/ folder")
        raw = [decode(f.read_bytes(), str(f), notes) for f in files]
    else:
        if table is not None and table.text_pair_column is not None:
            raise DataError(f"--unlabeled-data {source}: unlabelled texts are for single-text "
                            f"classifiers, not text pairs (--text-pair-column {table.text_pair_column})")
        raw = [t for chunk in stream_texts(str(path), table) for t in chunk.texts]
    excluded, seen, texts, empty, repeated, labelled = set(exclude), set(), [], 0, 0, 0
    for text in raw:
        if not text.strip():
            empty += 1
        elif text in excluded:
            labelled += 1
        elif text in seen:
            repeated += 1
        else:
            seen.add(text)
            texts.append(text)
    for n, what in ((empty, "empty"), (repeated, "repeated"), (labelled, "also in the labelled data")):
        if n:
            notes.add(f"--unlabeled-data {source}: left out {n} text(s) {what}")
    if not texts:
        raise DataError(f"--unlabeled-data {source}: no texts left to use ({len(raw)} read)")
    if limit is not None and len(texts) > limit:
        rng = np.random.default_rng(seed)
        texts = [texts[i] for i in sorted(rng.choice(len(texts), limit, replace=False))]
        notes.add(f"--unlabeled-data {source}: a seeded sample of {limit} of its {len(seen)} texts")
    return texts, notes.messages
