"""The examples a run reads: `Split` (texts, labels, ids, optional second texts), `Dataset` (the
splits sharing one ordered list of class names), the split names a source may use, and how a
split is cut (`stratified_subset`) and its classes ordered (`class_order`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger("app.data")

# The names a folder, a file or a table's `split` column may give a split, and what they mean.
SPLIT_NAMES = {
    "train": "train",
    "test": "test",
    "valid": "validation",
    "validation": "validation",
    "val": "validation",
    "dev": "validation",
}


class DataError(ValueError):
    """Input data that cannot be used; the message names the file, column or row."""

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

class Notes:
    """Collects warnings so that nothing is dropped or replaced without saying so, and the table
    columns that were used."""

    def __init__(self):
        self.messages: list[str] = []
        self.columns: dict[str, str] = {}
        self.classes: list[str] | None = None  # an order the source fixes (--label-columns)

    def add(self, message: str) -> None:
        logger.warning(message)
        self.messages.append(message)

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
