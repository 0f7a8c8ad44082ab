"""Tables: `.csv`, `.tsv`, `.jsonl` and `.parquet` (or a file of another suffix, sniffed), read
whole for training (`read_table`) or streamed in chunks for prediction (`stream_texts`). Which
columns hold the texts, the second texts and the labels (`TableFormat`, from the flags, else
guessed and logged), whether there is a header, and the labels' form (one a row, a separated or
JSON list, or one 0/1 column per label) are decided here, the same way for both."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from app.data.examples import SPLIT_NAMES, DataError, Notes, Split
from app.options import HEADERS, INPUT_KINDS, TABLE_FORMATS, TASKS

logger = logging.getLogger("app.data")

TABLE_SUFFIXES = {"." + kind for kind in TABLE_FORMATS}

# A file with another suffix (.txt, .dat, none) is sniffed from its first lines.
SNIFF_LINES = 50

TEXT_COLUMN_GUESSES = ("text", "review", "sentence", "content", "document")

LABEL_COLUMN_GUESSES = ("label", "sentiment", "labels", "class", "target", "category")

TEXT_JOINER = "\n"  # between the columns of a joined --text-column (a line break: whitespace to the encoder)

_TRUE, _FALSE = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no", ""}  # --label-columns values

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

def decode(raw: bytes, where: str, notes: Notes) -> str:
    text = raw.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first column's name
    if "\ufffd" in text and "\ufffd".encode() not in raw:
        bad = text.count("\ufffd") - raw.count("\ufffd".encode())
        notes.add(f"{where}: {bad} byte sequence(s) that are not UTF-8 were replaced with U+FFFD")
    return text

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

def read_table(path: Path, table: TableFormat, notes: Notes) -> dict[str, Split]:
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
            raw = decode(path.read_bytes(), str(path), notes)
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
