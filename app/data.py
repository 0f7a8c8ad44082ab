"""Datasets: read labelled text in the forms users have it, and split it.

Sources, chosen by what `--data` is:

* a folder in the aclImdb layout (`train/`, `test/`, optional `valid/`, each with one
  sub-folder of text files per class; `unsup/` and loose files ignored), or class folders
  directly;
* `imdb`: the real Large Movie Review Dataset, downloaded once with `get_file`;
* a table: `.csv`, `.tsv`, `.jsonl` or `.parquet` with text and label columns (for several labels
  per text: a JSON list, a separated string, or one 0/1 column per label);
* `tfds:NAME` through tensorflow-datasets, when it is installed.

Texts are returned as they are in the file: every change bertclf makes to text happens in
`app.preprocessing`, in training and inside the exported model alike.

    python -m app.data inspect --data PATH     # classes, counts and token lengths as JSON
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from app import runtime
from app.config import add_table_arguments
from app.options import BUNDLED_SAMPLE, HEADERS, INPUT_KINDS, TABLE_FORMATS, TASKS

if TYPE_CHECKING:
    from app.preprocessing import Tokenizer

logger = logging.getLogger(__name__)

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"

SPLIT_NAMES = {
    "train": "train",
    "test": "test",
    "valid": "validation",
    "validation": "validation",
    "val": "validation",
    "dev": "validation",
}
IGNORED_FOLDERS = {"unsup"}
TABLE_SUFFIXES = {"." + kind for kind in TABLE_FORMATS}
# A file with another suffix (.txt, .dat, none) is sniffed from its first lines.
SNIFF_LINES = 50
TEXT_COLUMN_GUESSES = ("text", "review", "sentence", "content", "document")
LABEL_COLUMN_GUESSES = ("label", "sentiment", "labels", "class", "target", "category")
TEXT_JOINER = "\n"  # between the columns of a joined --text-column (a line break: whitespace to the encoder)
FEW_EXAMPLES = 10  # a class with fewer training examples than this is warned about
_TRUE, _FALSE = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no", ""}  # --label-columns values


class DataError(ValueError):
    """Input data that cannot be used; the message names the file, column or row."""


@dataclasses.dataclass(frozen=True)
class TableFormat:
    """How a table is read. Columns are named by the header, or by 0-based index (`"0"`, `"1"`,
    ...) in a table without one; `text_column` may join several (`"title,description"`, joined
    with a line break). `label_names` is a file of class names, one a line, for integer labels:
    line k names label value k-1, or k when the labels run from 1 (as AG News's do)."""

    text_column: str | None = None
    label_column: str | None = None
    header: str = "auto"  # "auto": a first row of column names is detected (see _has_header)
    label_names: str | None = None
    text_pair_column: str | None = None  # the second text of text pairs (sentence-pair tasks)
    # Multi-label: each example's labels are a set. They come as a JSON list (JSONL, Parquet),
    # a string split at `label_separator`, or one 0/1 column per label (`label_columns`).
    task: str = "auto"  # "auto": multi-label when the labels come in one of those forms (logged)
    label_separator: str | None = None
    label_columns: str | None = None  # comma-separated names (or indices without a header)
    format: str | None = None  # one of TABLE_FORMATS; None: by the suffix, else sniffed

    def __post_init__(self):
        if self.format is not None and self.format not in TABLE_FORMATS:
            raise ValueError(f"--format must be one of {list(TABLE_FORMATS)}, got {self.format!r}")
        if self.header not in HEADERS:
            raise ValueError(f"--header must be one of {list(HEADERS)}, got {self.header!r}")
        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {list(TASKS)}, got {self.task!r}")
        if self.label_separator == "":
            raise ValueError("--label-separator must be one or more characters, got ''")
        if self.task == "single-label" and (self.label_separator or self.label_columns):
            flag = "--label-separator" if self.label_separator else "--label-columns"
            raise ValueError(f"{flag} gives each text several labels, which --task single-label "
                             "does not take")
        if self.label_columns and self.label_column:
            raise ValueError(f"--label-columns {self.label_columns} and --label-column {self.label_column}: "
                             "give one (the 0/1 columns, or the one column of labels)")


@dataclasses.dataclass
class Split:
    """One split's examples. `labels` are class names (strings), or for multi-label data each
    example's set of names (a tuple, possibly empty); `ids` say where each came from."""

    texts: list[str]
    labels: list
    ids: list[str]
    pairs: list[str] | None = None  # the second texts of text pairs (--text-pair-column)

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, index: Sequence[int]) -> Split:
        pairs = None if self.pairs is None else [self.pairs[i] for i in index]
        return Split([self.texts[i] for i in index], [self.labels[i] for i in index],
                     [self.ids[i] for i in index], pairs)

    @property
    def multi_label(self) -> bool:
        return any(isinstance(label, tuple) for label in self.labels)

    def counts(self) -> dict[str, int]:
        """Examples per class (for multi-label data, the examples carrying each label)."""
        names = [n for label in self.labels for n in label] if self.multi_label else self.labels
        return {str(k): int(v) for k, v in sorted(pd.Series(names, dtype=object).value_counts().items())}


@dataclasses.dataclass
class Dataset:
    """Splits sharing one ordered list of class names, plus what was noticed while reading."""

    classes: list[str]
    splits: dict[str, Split]
    warnings: list[str] = dataclasses.field(default_factory=list)
    # For tables: the columns the texts and labels were read from ({"text": ..., "label": ...}).
    columns: dict[str, str] = dataclasses.field(default_factory=dict)
    multi_label: bool = False  # each example has a set of labels (any number, none included)
    # Where each split came from, as a person would say it ("heldout.csv", "10 % of ... held out").
    sources: dict[str, str] = dataclasses.field(default_factory=dict)

    def label_ids(self, split: str) -> np.ndarray:
        """Class indices `[n]` (int32), or for multi-label data a 0/1 matrix `[n, classes]`
        (float32, what binary cross-entropy takes)."""
        return label_ids(self.splits[split].labels, self.classes, self.multi_label)


def label_ids(labels: Sequence, classes: Sequence[str], multi_label: bool = False) -> np.ndarray:
    """`Dataset.label_ids` for any labels (class names, or tuples of them)."""
    index = {c: i for i, c in enumerate(classes)}
    if not multi_label:
        return np.asarray([index[label] for label in labels], dtype=np.int32)
    hot = np.zeros((len(labels), len(classes)), np.float32)
    for row, names in enumerate(labels):
        hot[row, [index[n] for n in names]] = 1.0
    return hot


# ----------------------------------------------------------------------------- reading


class _Notes:
    """Collects warnings so that nothing is dropped or replaced without saying so, and the table
    columns that were used."""

    def __init__(self):
        self.messages: list[str] = []
        self.columns: dict[str, str] = {}
        self.classes: list[str] | None = None  # an order the source fixes (--label-columns)

    def add(self, message: str) -> None:
        logger.warning(message)
        self.messages.append(message)


def _decode(raw: bytes, where: str, notes: _Notes) -> str:
    text = raw.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first column's name
    if "\ufffd" in text and "\ufffd".encode() not in raw:
        bad = text.count("\ufffd") - raw.count("\ufffd".encode())
        notes.add(f"{where}: {bad} byte sequence(s) that are not UTF-8 were replaced with U+FFFD")
    return text


def _read_class_folders(folder: Path, notes: _Notes) -> Split:
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
            text = _decode(path.read_bytes(), str(path), notes)
            if not text.strip():
                bad_files.append(path.name)
                continue
            texts.append(text)
            labels.append(class_dir.name)
            ids.append(f"{class_dir.name}/{path.name}")
        if bad_files:
            notes.add(f"{class_dir}: skipped {len(bad_files)} empty file(s), e.g. {bad_files[:3]}")
    return Split(texts, labels, ids)


def _read_folder(folder: Path, notes: _Notes) -> dict[str, Split]:
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"{folder}: directory is empty")
    split_dirs = {SPLIT_NAMES[p.name.lower()]: p for p in entries
                  if p.is_dir() and p.name.lower() in SPLIT_NAMES}
    if not split_dirs:  # class folders directly
        return {"train": _read_class_folders(folder, notes)}
    return {name: _read_class_folders(path, notes) for name, path in sorted(split_dirs.items())}


def _pick_columns(df: pd.DataFrame, wanted: str | None, guesses: Sequence[str], kind: str,
                  path: Path, header: bool, join: bool = False) -> list[str]:
    """The column(s) a table's texts or labels come from: `wanted` (a name; for texts, several
    joined by commas), else the one column named like `guesses`."""
    columns = [str(c) for c in df.columns]
    if wanted is not None:
        parts = [wanted] if wanted in columns or not join else [w.strip() for w in wanted.split(",")]
        missing = [w for w in parts if w not in columns]
        if missing:
            if header:
                hint = "; a table without a header row takes --header none and 0-based indices"
                raise DataError(f"{path}: no {kind} column {missing[0]!r}; columns are {columns}{hint}")
            raise DataError(f"{path}: no {kind} column {missing[0]!r}: the table has no header row, so "
                            f"its columns are the indices 0 to {len(columns) - 1}")
        return parts
    if not header:
        first = {c: str(df[c].iloc[0])[:40] for c in columns}
        raise DataError(f"{path}: the table has no header row; say which columns to use by 0-based index "
                        f"with --text-column and --label-column (first row: {first})")
    return [_pick_column(df, guesses, kind, path)]


def _pick_column(df: pd.DataFrame, guesses: Sequence[str], kind: str, path: Path) -> str:
    columns = list(df.columns)
    lower = {str(c).lower(): c for c in columns}
    found = [lower[g] for g in guesses if g in lower]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"{path}: no {kind} column found (looked for {list(guesses)}); columns are {columns}. "
            f"Name it with --{kind}-column."
        )
    raise DataError(f"{path}: several possible {kind} columns {found}; choose one with --{kind}-column")


def _json_row(line: str, path: Path, number: int) -> dict | None:
    """One JSONL line as a row (None for a blank line), or a DataError naming the line."""
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} line {number}: not valid JSON ({e.msg})") from e
    if not isinstance(row, dict):
        raise DataError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
    return row


def _read_jsonl(path: Path, raw: str) -> pd.DataFrame:
    rows = [_json_row(line, path, number) for number, line in enumerate(raw.splitlines(), start=1)]
    return pd.DataFrame([row for row in rows if row is not None])


def _has_header(df: pd.DataFrame, table: TableFormat) -> tuple[bool, str]:
    """(whether the first row of a headerless read names the columns, why): as `--header` says,
    else detected where the first row says so unambiguously."""
    if table.header != "auto":
        return table.header == "yes", f"--header {table.header}"
    first = [str(v).strip() for v in df.iloc[0]]
    asked = [c for c in (table.text_column, table.label_column, table.label_columns) if c]
    parts = [p.strip() for c in asked for p in c.split(",")]
    if parts and all(p.isdigit() for p in parts):  # (a header naming columns "0", "1": --header yes)
        return False, "no header row (columns asked for by index); columns named 0, 1, ..."
    if any(name in first for name in asked + parts):
        return True, "a header row (it names the columns asked for)"
    if any(v.lower() in TEXT_COLUMN_GUESSES + LABEL_COLUMN_GUESSES for v in first):
        return True, "a header row (it names a text or label column)"
    if len(df) > 1:
        for i in range(df.shape[1]):
            rest = df.iloc[1:, i]
            if rest.map(_is_number).all():
                if _is_number(first[i]):  # a number where the other rows have numbers: data
                    return False, (f"no header row (column {i} holds numbers in every row, the first "
                                   "included); columns named 0, 1, ...")
                return True, f"a header row ({first[i]!r} heads a column of numbers)"
    return True, "a header row (pass --header none if the first row is data)"


def _is_number(value) -> bool:
    try:
        float(str(value))
        return str(value).strip() != ""
    except ValueError:
        return False


def _with_header(df: pd.DataFrame, names: list, path: Path) -> pd.DataFrame:
    names = [str(n).strip() for n in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: the header row names column(s) {repeated} more than once")
    df.columns = names
    return df


def _text_str(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def sniff_format(head: str) -> tuple[str | None, str]:
    """(csv, tsv, jsonl or None, why): what the first lines of a file with no known suffix are.
    JSON objects a line make JSONL; a tab on every line the same number of times makes TSV; a
    consistent comma count (read as CSV, quotes and all) makes CSV."""
    lines = [line for line in head.splitlines()[:SNIFF_LINES] if line.strip()]
    if len(lines) > 1 and not head.endswith("\n"):
        lines = lines[:-1]  # the last line may be cut where the head was
    if not lines:
        return None, "its first lines are empty"
    if all(line.lstrip().startswith("{") for line in lines):
        return "jsonl", f"each of its first {len(lines)} lines is a JSON object"
    tabs = {line.count("\t") for line in lines}
    if len(tabs) == 1 and tabs != {0}:
        return "tsv", f"each of its first {len(lines)} lines has {tabs.pop()} tab(s)"
    rows = list(csv.reader(lines))
    commas = {len(row) - 1 for row in rows}
    if len(commas) == 1 and commas != {0}:
        return "csv", f"each of its first {len(lines)} lines has {commas.pop() + 1} comma-separated fields"
    return None, (f"its first {len(lines)} lines have neither the same number of tabs "
                  f"({sorted(tabs)[:5]}) nor of comma-separated fields ({sorted(commas)[:5]})")


def table_kind(path: Path, table: TableFormat) -> str:
    """How to read the table at `path`: `--format`, else its suffix, else sniffed (logged)."""
    if table.format is not None:
        return table.format
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return suffix[1:]
    with open(path, "rb") as handle:
        head = handle.read(256 * 1024).decode("utf-8", errors="replace").removeprefix("\ufeff")
    kind, why = sniff_format(head)
    if kind is None:
        raise DataError(f"{path}: unknown file type {suffix or '(no suffix)'!r} and {why}; give --format "
                        f"{'|'.join(TABLE_FORMATS)}, or use a folder")
    logger.info("%s: read as %s: %s (--format says otherwise)", path, kind.upper(), why)
    return kind


def _read_table(path: Path, table: TableFormat, notes: _Notes) -> dict[str, Split]:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    suffix = "." + table_kind(path, table)
    delimited = suffix in (".csv", ".tsv")
    if table.header != "auto" and not delimited:
        raise DataError(f"--header {table.header}: {path} is {suffix}, whose columns are always named; "
                        "--header is for .csv and .tsv")
    header = True
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raw = _decode(path.read_bytes(), str(path), notes)
            if suffix == ".jsonl":
                df = _read_jsonl(path, raw)
            else:
                # A TSV has no quoting: a text starting with '"' (MRPC's and GoEmotions' do) is text.
                df = pd.read_csv(io.StringIO(raw), sep="\t" if suffix == ".tsv" else ",", header=None,
                                 dtype=str, keep_default_na=False, na_filter=False,
                                 quoting=csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL)
                header, why = _has_header(df, table)
                if header:
                    df = _with_header(df.iloc[1:].reset_index(drop=True), list(df.iloc[0]), path)
                else:
                    df.columns = [str(i) for i in range(df.shape[1])]
                if table.header == "auto":
                    logger.info("%s: %s", path, why)
    except DataError:
        raise
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path}: file is empty") from e
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: cannot parse ({str(e).strip()})") from e
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    if df.empty:
        raise DataError(f"{path}: file has no rows")
    text_cols = _pick_columns(df, table.text_column, TEXT_COLUMN_GUESSES, "text", path, header, join=True)
    label_cols = None
    if table.label_columns:
        label_cols = _pick_columns(df, table.label_columns, (), "label", path, header, join=True)
        label_col = ",".join(label_cols)
        notes.classes = label_cols
    else:
        (label_col,) = _pick_columns(df, table.label_column, LABEL_COLUMN_GUESSES, "label", path, header)
    multi, why = _multi_label(df, table, label_col)
    if table.task == "auto" and multi:
        logger.info("%s: multi-label: %s", path, why)
    pair_col = None
    if table.text_pair_column is not None:
        (pair_col,) = _pick_columns(df, table.text_pair_column, (), "text pair", path, header)
    notes.columns = {"text": ",".join(text_cols), "label": label_col}
    if pair_col is not None:
        notes.columns["text_pair"] = pair_col
        logger.info("%s: second texts of the pairs from column %r", path, pair_col)
    if delimited:
        notes.columns["header"] = "yes" if header else "none"
    logger.info("%s: texts from column%s %s%s, labels from %s", path, "s" * (len(text_cols) > 1),
                ", ".join(repr(c) for c in text_cols), " (joined by a line break)" * (len(text_cols) > 1),
                f"the 0/1 columns {label_cols}" if label_cols else f"column {label_col!r}")
    texts, labels, ids, pairs, skipped, unlabelled = [], [], [], [], [], 0
    # Row numbers as a person sees them in the file: a header is line 1.
    first = 2 if delimited and header else 1
    columns = [df[c].tolist() for c in text_cols]
    second = df[pair_col].tolist() if pair_col is not None else None
    flags = [df[c].tolist() for c in label_cols] if label_cols else None
    for i, label in enumerate(df[label_cols[0] if label_cols else label_col].tolist()):
        parts = [_text_str(column[i]) for column in columns]
        text = TEXT_JOINER.join(p for p in parts if p.strip())
        pair = _text_str(second[i]) if second is not None else None
        row = i + first
        where = f"{path} row {row}"
        if flags is not None:
            label = tuple(c for c, column in zip(label_cols, flags, strict=True)
                          if _flag(column[i], where, c))
        elif multi:
            label = _label_set(label, table.label_separator, where)
        else:
            label = _single_label(label, where)
        if not text.strip() or (pair is not None and not pair.strip()) or (not multi and label == ""):
            skipped.append(row)
            continue
        unlabelled += multi and not label
        texts.append(text)
        labels.append(label)
        ids.append(f"{path.name}:{row}")
        pairs.append(pair)
    if skipped:
        what = ("an empty text" + ", second text" * (second is not None) + " or label" * (not multi))
        notes.add(f"{path}: skipped {len(skipped)} row(s) with {what} "
                  f"(rows {skipped[:5]}{' …' if len(skipped) > 5 else ''})")
    if unlabelled:
        logger.info("%s: %d row(s) have none of the labels (kept: the model learns that none applies)",
                    path, unlabelled)
    split = Split(texts, labels, ids, pairs if second is not None else None)
    if "split" in df.columns:  # a table that carries its own split assignment
        names = [SPLIT_NAMES.get(str(s).lower()) for s in df["split"]]
        kept = [names[int(i.rsplit(":", 1)[1]) - first] for i in ids]
        unknown = sorted({str(s) for s, n in zip(df["split"], names, strict=True) if n is None})
        if unknown:
            raise DataError(f"{path}: column 'split' has unknown values {unknown[:5]}; "
                            f"use {sorted(set(SPLIT_NAMES))}")
        return {n: split.take([i for i, k in enumerate(kept) if k == n]) for n in sorted(set(kept))}
    return {"train": split}




@dataclasses.dataclass
class Chunk:
    """Rows of unlabelled input as read (their own columns) and the texts to classify in them."""

    rows: pd.DataFrame
    texts: list[str]
    pairs: list[str] | None
    read: float | None  # the share of the input read so far, when it can be known


def input_kind(source: str, kind: str | None = None) -> str:
    """How `stream_texts` reads `source`: `kind` if given, else a table by its suffix, else lines."""
    if kind is not None:
        if kind not in INPUT_KINDS:
            raise ValueError(f"--format must be one of {list(INPUT_KINDS)}, got {kind!r}")
        return kind
    suffix = Path(source).suffix.lower()
    return suffix[1:] if source != "-" and suffix in TABLE_SUFFIXES else "lines"


def stream_texts(source: str, table: TableFormat | None = None, kind: str | None = None,
                 chunk_rows: int = 1024) -> Iterator[Chunk]:
    """The texts of a file (`-`: standard input) in chunks of `chunk_rows`, for scoring: memory
    stays flat however big the input. A table (.csv, .tsv, .jsonl, .parquet, or `kind`) is read
    as `app.train` reads one (header detection, TSV without quoting, the text column found by
    name or `table.text_column`); its rows keep all their columns, and a row with an empty text
    is kept (scored as the empty string, and counted in the log). Any other file is one text a
    line; blank lines are skipped and counted."""
    table = table or TableFormat()
    kind = input_kind(source, kind)
    path = Path(source)
    if source != "-" and not path.is_file():
        raise DataError(f"--file {source}: no such file")
    if kind == "parquet":
        if source == "-":
            raise DataError("--format parquet cannot be read from standard input; give the file")
        yield from _stream_parquet(path, table, chunk_rows)
        return
    handle = sys.stdin.buffer if source == "-" else open(path, "rb")  # noqa: SIM115 (closed below)
    size = path.stat().st_size if source != "-" else None
    name = Path("<stdin>") if source == "-" else path
    try:
        if kind == "lines":
            yield from _stream_lines(handle, name, size, chunk_rows)
        elif kind == "jsonl":
            yield from _stream_jsonl(handle, name, size, table, chunk_rows)
        else:
            yield from _stream_delimited(handle, name, size, table, kind, chunk_rows)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def _share(handle, size: int | None) -> float | None:
    return min(1.0, handle.tell() / size) if size else None


def _stream_lines(handle, name: Path, size: int | None, chunk_rows: int) -> Iterator[Chunk]:
    texts, blank = [], 0
    for raw in handle:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n").removeprefix("\ufeff")
        if not line.strip():
            blank += 1
            continue
        texts.append(line)
        if len(texts) == chunk_rows:
            yield Chunk(pd.DataFrame({"text": texts}), texts, None, _share(handle, size))
            texts = []
    if texts:
        yield Chunk(pd.DataFrame({"text": texts}), texts, None, 1.0 if size else None)
    if blank:
        logger.info("%s: skipped %d blank line(s)", name, blank)


class _TableTexts:
    """The text (and pair) columns of a table's chunks, chosen once from the first."""

    def __init__(self, name: Path, table: TableFormat, header: bool):
        self.name, self.table, self.header = name, table, header
        self.columns: list[str] | None = None
        self.pair: str | None = None
        self.empty = 0

    def chunk(self, df: pd.DataFrame, read: float | None) -> Chunk:
        if self.columns is None:
            self.columns = _pick_columns(df, self.table.text_column, TEXT_COLUMN_GUESSES, "text", self.name,
                                         self.header, join=True)
            if self.table.text_pair_column is not None:
                (self.pair,) = _pick_columns(df, self.table.text_pair_column, (), "text pair", self.name,
                                             self.header)
            logger.info("%s: texts from column%s %s", self.name, "s" * (len(self.columns) > 1),
                        ", ".join(repr(c) for c in self.columns))
        parts = [[_text_str(v) for v in df[c].tolist()] for c in self.columns]
        texts = [TEXT_JOINER.join(p for p in row if p.strip()) for row in zip(*parts, strict=True)]
        pairs = [_text_str(v) for v in df[self.pair].tolist()] if self.pair is not None else None
        self.empty += sum(not t.strip() for t in texts)
        return Chunk(df, texts, pairs, read)

    def done(self) -> None:
        if self.empty:
            logger.warning("%s: %d row(s) have an empty text; they are scored as the empty string",
                           self.name, self.empty)


def _stream_delimited(handle, name: Path, size: int | None, table: TableFormat, kind: str,
                      chunk_rows: int) -> Iterator[Chunk]:
    tsv = kind == "tsv"
    try:
        reader = pd.read_csv(handle, sep="\t" if tsv else ",", header=None, dtype=str, keep_default_na=False,
                             na_filter=False, quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
                             chunksize=chunk_rows, encoding="utf-8-sig", encoding_errors="replace")
        texts, names = None, None
        for df in reader:
            if names is None:
                header, why = _has_header(df, table)
                if table.header == "auto":
                    logger.info("%s: %s", name, why)
                if header:
                    names = [str(n).strip() for n in df.iloc[0]]
                    df = _with_header(df.iloc[1:].reset_index(drop=True), names, name)
                else:
                    names = [str(i) for i in range(df.shape[1])]
                    df.columns = names
                texts = _TableTexts(name, table, header)
            else:
                df.columns = names
            if len(df):
                yield texts.chunk(df, _share(handle, size))
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{name}: file is empty") from e
    except pd.errors.ParserError as e:
        raise DataError(f"{name}: cannot parse ({str(e).strip()})") from e
    if texts is not None:
        texts.done()


def _stream_jsonl(handle, name: Path, size: int | None, table: TableFormat, chunk_rows: int
                  ) -> Iterator[Chunk]:
    texts = _TableTexts(name, table, header=True)
    rows = []
    for number, raw in enumerate(handle, start=1):
        row = _json_row(raw.decode("utf-8", errors="replace").removeprefix("\ufeff"), name, number)
        if row is None:
            continue
        rows.append(row)
        if len(rows) == chunk_rows:
            yield texts.chunk(pd.DataFrame(rows), _share(handle, size))
            rows = []
    if rows:
        yield texts.chunk(pd.DataFrame(rows), 1.0 if size else None)
    texts.done()


def _stream_parquet(path: Path, table: TableFormat, chunk_rows: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    total, seen = parquet.metadata.num_rows, 0
    texts = _TableTexts(path, table, header=True)
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        df = batch.to_pandas()
        seen += len(df)
        yield texts.chunk(df, seen / total if total else None)
    texts.done()


def _multi_label(df: pd.DataFrame, table: TableFormat, label_col: str) -> tuple[bool, str]:
    """(whether each example has a set of labels, why): as `--task` says, else from the flags
    that give several labels, else from labels that are lists (JSONL, Parquet)."""
    if table.task != "auto":
        return table.task == "multi-label", f"--task {table.task}"
    if table.label_columns:
        return True, f"one 0/1 column per label (--label-columns {table.label_columns})"
    if table.label_separator:
        return True, f"labels separated by {table.label_separator!r} (--label-separator)"
    values = df[label_col] if label_col in df.columns else []
    lists = next((v for v in values if isinstance(v, list | tuple | np.ndarray)), None)
    if lists is not None:
        return True, f"column {label_col!r} holds lists of labels (e.g. {list(lists)[:4]})"
    return False, "one label per example"


def _flag(value, where: str, column: str) -> bool:
    text = str(value).strip().lower() if value is not None and not (
        isinstance(value, float) and np.isnan(value)) else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"{where}: label column {column!r} holds {value!r}; --label-columns takes 0/1 "
                    "(or true/false) in each label's column")


def _label_set(value, separator: str | None, where: str) -> tuple[str, ...]:
    """One example's labels: a list as it is, a string split at `separator` (or a JSON list
    written into a CSV cell), each stripped, repeats and empty parts dropped."""
    if isinstance(value, str) and separator is None and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: label {value[:60]!r} starts like a JSON list but is not one "
                            f"({e.msg}); --label-separator splits plain strings") from e
    if isinstance(value, list | tuple | np.ndarray):
        parts = [_label_str(v) for v in value]
    elif isinstance(value, dict):
        raise DataError(f"{where}: label is a JSON object; expected a list of labels")
    else:
        text = _label_str(value)
        parts = text.split(separator) if separator else [text]
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))


def _single_label(value, where: str) -> str:
    if isinstance(value, list | tuple | np.ndarray):
        raise DataError(f"{where}: the label is a list ({list(value)[:4]}); several labels per text take "
                        "--task multi-label")
    return _label_str(value)


def _label_str(label) -> str:
    if label is None or (isinstance(label, float) and np.isnan(label)):
        return ""
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label).strip()


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
                notes: _Notes | None = None) -> dict[str, Split]:
    """Read one `--data` value into splits (train/validation/test as the source has them); a
    table as `table` says, and integer labels named from `table.label_names`."""
    notes = notes or _Notes()
    table = table or TableFormat()
    if table.text_pair_column is not None and (source == "imdb" or source.startswith("tfds:")):
        raise DataError(f"--text-pair-column {table.text_pair_column}: --data {source} has single texts; "
                        "text pairs come in a table (.csv, .tsv, .jsonl, .parquet)")
    if source == "imdb":
        return _read_folder(download_imdb(), notes)
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
    splits = _read_folder(path, notes) if path.is_dir() else _read_table(path, table, notes)
    if table.label_names:
        splits, rule = name_labels(splits, read_label_names(table.label_names), table.label_names)
        logger.info("%s: class names from --label-names: %s", source, rule)
    return splits


# ----------------------------------------------------------------------------- splitting


def class_order(labels: Sequence[str]) -> list[str]:
    """One fixed order: numeric labels by value, others alphabetically (neg before pos)."""
    unique = sorted(set(labels))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def stratified_subset(split: Split, n: int, seed: int) -> tuple[Split, Split]:
    """(subset of n examples, the rest), keeping class proportions."""
    from sklearn.model_selection import train_test_split

    if n >= len(split):
        return split, Split([], [], [])
    index = np.arange(len(split))
    stratify = None  # label sets: a seeded random subset
    if not split.multi_label:
        counts = pd.Series(split.labels).value_counts()
        stratify = split.labels if counts.min() >= 2 and n >= len(counts) else None
    keep, rest = train_test_split(index, train_size=n, stratify=stratify, random_state=seed)
    return split.take(sorted(keep)), split.take(sorted(rest))


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


def read_dataset(data: str, test_data: str | None = None, table: TableFormat | None = None) -> Dataset:
    """Read `data` (and `test_data`) as they are and fix the ordered list of class names: the
    `--label-names` file's order, or `--label-columns`', else `class_order`.

    A single class, or a label in another split that training never saw, is an error; so is
    test data with label sets for single-label training data, and the reverse.
    """
    notes = _Notes()
    table = table or TableFormat()
    splits = read_source(data, table, notes)
    sources = {name: data if len(splits) == 1 else f"{data} ({name} split)" for name in splits}
    if test_data:
        test_splits = read_source(test_data, table, notes)
        if "test" in splits:
            notes.add(f"--test-data {test_data} replaces the test split found in {data}")
        splits["test"] = test_splits.get("test") or test_splits.get("train")
        sources["test"] = test_data if len(test_splits) == 1 else (
            f"{test_data} ({'test' if 'test' in test_splits else 'train'} split)")
    if "train" not in splits or not len(splits["train"]):
        raise DataError(f"--data {data}: no training examples (found splits {sorted(splits)})")
    multi = splits["train"].multi_label
    for name, split in splits.items():
        if len(split) and split.multi_label != multi:
            raise DataError(f"the {name} split has {'sets of labels' if split.multi_label else 'one label'} "
                            f"per text, the training data {'sets of labels' if multi else 'one label'}")
    present = set(splits["train"].counts())
    classes = [c for c in notes.classes if c in present] if notes.classes else class_order(list(present))
    if table.label_names:
        names = read_label_names(table.label_names)
        classes = [n for n in names if n in present]
        unused = [n for n in names if n not in present]
        if unused:
            notes.add(f"--label-names {table.label_names}: no training examples of {unused}; "
                      "the classifier will not know them")
    few = {c: n for c, n in splits["train"].counts().items() if n < FEW_EXAMPLES}
    if few:
        notes.add(f"class(es) with fewer than {FEW_EXAMPLES} training examples: {few}; their recall "
                  "will be poor and their figures in the report uncertain")
    if notes.classes:
        unused = [c for c in notes.classes if c not in present]
        if unused:
            notes.add(f"--label-columns: no training example has label(s) {unused}; the classifier "
                      "will not know them")
    if len(classes) < 2:
        raise DataError(f"--data {data}: training data has a single class {classes}; need two or more")
    for name, split in splits.items():
        unseen = sorted(set(split.counts()) - set(classes))
        if unseen:
            raise DataError(f"{name} split has label(s) {unseen[:5]} that are not in the training "
                            f"classes {classes}")
    ordered = {k: splits[k] for k in ("train", "validation", "test") if k in splits}
    return Dataset(classes, ordered, notes.messages, notes.columns, multi, sources)


def load_dataset(
    data: str,
    test_data: str | None = None,
    table: TableFormat | None = None,
    validation_split: float = 0.1,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    seed: int = 42,
) -> Dataset:
    """`read_dataset`, then the splits a run uses: train, validation and (if any) test.

    Without a validation split in the data, a stratified, seeded `validation_split` of train is
    held out. `max_*_examples` take stratified, seeded subsets for quick runs.
    """
    dataset = read_dataset(data, test_data, table)
    splits, classes, sources = dict(dataset.splits), dataset.classes, dict(dataset.sources)
    notes = _Notes()
    notes.messages = list(dataset.warnings)
    train = splits["train"]
    if max_train_examples and max_train_examples < len(train):
        train, _ = stratified_subset(train, max_train_examples, seed)
        sources["train"] += f", a stratified sample of {len(train)}"
    if "validation" not in splits:
        if not 0 < validation_split < 1:
            raise ValueError(f"--validation-split must be in (0, 1) when the data has no validation "
                             f"split, got {validation_split}")
        n_val = max(len(classes), int(round(len(train) * validation_split)))
        if n_val >= len(train):
            raise DataError(f"--data {data}: {len(train)} training examples are too few to hold out "
                            f"a validation split")
        val, train = stratified_subset(train, n_val, seed)
        splits["validation"] = val
        sources["validation"] = f"{n_val} examples of {sources['train']} held out (stratified, seed {seed})"
        sources["train"] += ", less the validation split"
    splits["train"] = train
    if max_eval_examples:
        for name in ("validation", "test"):
            if name in splits and max_eval_examples < len(splits[name]):
                splits[name], _ = stratified_subset(splits[name], max_eval_examples, seed)
                sources[name] += f", a stratified sample of {len(splits[name])}"
    for name, split in splits.items():
        missing = sorted(set(classes) - set(split.counts()))
        if missing and len(split):
            notes.add(f"{name} split has no examples of class(es) {missing}")
    ordered = {k: splits[k] for k in ("train", "validation", "test") if k in splits}
    logger.info("classes %s; examples %s", classes, {k: len(v) for k, v in ordered.items()})
    return Dataset(classes, ordered, notes.messages, dataset.columns, dataset.multi_label,
                   {k: sources[k] for k in ordered})


# Multi-label `--class-weight balanced`: a label's positive examples weigh its negatives over
# its positives, at most this much (a label with a handful of positives would otherwise swing
# whole batches).
MAX_POSITIVE_WEIGHT = 10.0


def class_weights(split: Split, classes: Sequence[str], spec: str) -> dict[str, float]:
    """Each class's loss weight for `--class-weight`: 1 for `none`; for `balanced`, the number
    of examples over (classes x the class's examples), scikit-learn's rule, so every class
    weighs as much in the loss as the others; or from a JSON file {class name: weight}, classes
    it does not list weighing 1. For multi-label data a label's weight multiplies the loss of
    its positive examples: `balanced` gives each label its negatives over its positives (at
    most `MAX_POSITIVE_WEIGHT`, at least 1), so a rare label is not learnt as "never"."""
    if spec == "none":
        return {c: 1.0 for c in classes}
    if spec == "balanced" and split.multi_label:
        counts = split.counts()
        return {c: round(float(min(MAX_POSITIVE_WEIGHT, max(1.0, (len(split) - counts.get(c, 0))
                                                            / max(counts.get(c, 0), 1)))), 6)
                for c in classes}
    if spec == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = [c for c in classes if c in set(split.labels)]
        weights = compute_class_weight("balanced", classes=np.asarray(present), y=np.asarray(split.labels))
        found = dict(zip(present, weights, strict=True))
        return {c: round(float(found.get(c, 1.0)), 6) for c in classes}
    try:
        raw = json.loads(Path(spec).expanduser().read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"--class-weight {spec}: cannot read ({e.strerror or e})") from e
    except json.JSONDecodeError as e:
        raise DataError(f"--class-weight {spec}: not valid JSON ({e.msg})") from e
    if not isinstance(raw, dict):
        raise DataError(f"--class-weight {spec}: expected a JSON object {{class name: weight}}, "
                        f"got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - set(classes))
    if unknown:
        raise DataError(f"--class-weight {spec} names class(es) {unknown} that are not in the training "
                        f"classes {list(classes)}")
    for name, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < float("inf"):
            raise DataError(f"--class-weight {spec}: the weight of {name!r} must be a positive number, "
                            f"got {weight!r}")
    return {c: float(raw.get(c, 1.0)) for c in classes}


# ----------------------------------------------------------------------------- inspect CLI


def table_format(args: argparse.Namespace) -> TableFormat:
    return TableFormat(**{name: getattr(args, name, None) for name in
                          ("text_column", "label_column", "header", "label_names", "text_pair_column", "task",
                           "label_separator", "label_columns", "format")})


def inspect(dataset: Dataset, tokenizer: Tokenizer | None, limit: int = 512) -> dict:
    """Classes, per-split counts and token-length statistics, as `app.data inspect` prints; for
    the training split also the length `app.train --max-seq-length auto` would pick (`limit`:
    the encoder's)."""
    from app import budget

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
            from app import encoders
            from app.preprocessing import Tokenizer

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
