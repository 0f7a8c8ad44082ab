"""The splits a run uses: `read_dataset` reads `--data` (and `--test-data`) as they are and fixes
the ordered class names; `load_dataset` then holds out a stratified, seeded validation split
when the data has none and takes the `--max-*-examples` subsets. Each split's source is named as
a person would say it (`Dataset.sources`)."""

from __future__ import annotations

import logging

from app.data.examples import DataError, Dataset, Notes, class_order, stratified_subset
from app.data.sources import read_label_names, read_source
from app.data.tables import TableFormat

logger = logging.getLogger("app.data")

FEW_EXAMPLES = 10  # a class with fewer training examples than this is warned about

def read_dataset(data: str, test_data: str | None = None, table: TableFormat | None = None) -> Dataset:
    """Read `data` (and `test_data`) as they are and fix the ordered list of class names: the
    `--label-names` file's order, or `--label-columns`', else `class_order`.

    A single class, or a label in another split that training never saw, is an error; so is
    test data with label sets for single-label training data, and the reverse.
    """
    notes = Notes()
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
    notes = Notes()
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
