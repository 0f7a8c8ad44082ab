"""Data: labelled text read in the forms users have it, and split.

What it owns: reading (`sources`: folders, `imdb`, `tfds:NAME`, tables; `tables`: the table
formats, whole or streamed), the examples and their splits (`examples`, `splits`), and the
`python -m app.data inspect` command (`cli`). It imports only `app.options`, `app.config` (the
table flags) and `app.runtime`; the later stages import it.

Texts are returned as they are in the file: every change bertclf makes to text happens in
`app.model.preprocessing`, in training and inside the exported model alike.

    python -m app.data inspect --data PATH     # classes, counts and token lengths as JSON
"""

from app.data.cli import build_parser, inspect, main, table_format
from app.data.examples import (
    SPLIT_NAMES,
    DataError,
    Dataset,
    Split,
    class_order,
    label_ids,
    stratified_subset,
)
from app.data.sources import download_imdb, read_label_names, read_source, read_unlabeled
from app.data.splits import FEW_EXAMPLES, load_dataset, read_dataset
from app.data.tables import (
    TEXT_JOINER,
    Chunk,
    TableFormat,
    input_kind,
    sniff_format,
    stream_texts,
    table_kind,
)
from app.options import BUNDLED_SAMPLE  # the small labelled sample the demo trains on

__all__ = [
    "BUNDLED_SAMPLE",
    "FEW_EXAMPLES", "SPLIT_NAMES", "TEXT_JOINER", "Chunk", "DataError", "Dataset", "Split", "TableFormat",
    "build_parser", "class_order", "download_imdb", "input_kind", "inspect", "label_ids", "load_dataset",
    "main", "read_dataset", "read_label_names", "read_source", "read_unlabeled", "sniff_format",
    "stratified_subset",
    "stream_texts", "table_format", "table_kind",
]
