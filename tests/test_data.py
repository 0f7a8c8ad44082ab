"""app.data: every source, the splits, inspect, and every kind of bad input."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import data
from app.data import DataError
from tests.conftest import (
    assert_clear_failure,
    bad_data_inputs,
    run_in_process,
    run_module,
    write_class_folders,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def acl_tree(tmp_path) -> Path:
    """A small aclImdb-layout tree, with the unsup/ folder and loose files the real one has."""
    root = tmp_path / "aclImdb"
    pos = [f"great film number {i}<br /><br />loved it" for i in range(12)]
    neg = [f"awful film number {i}<br />hated it" for i in range(12)]
    write_class_folders(root / "train", {"pos": pos, "neg": neg})
    write_class_folders(root / "test", {"pos": pos[:4], "neg": neg[:4]})
    write_class_folders(root / "train", {"unsup": ["no label here"]})
    (root / "train" / "urls_pos.txt").write_text("http://example.invalid\n")
    (root / "README").write_text("readme")
    return root


def test_acl_layout(acl_tree):
    ds = data.read_dataset(str(acl_tree))
    assert ds.classes == ["neg", "pos"]
    assert ds.splits["train"].counts() == {"neg": 12, "pos": 12}
    assert ds.splits["test"].counts() == {"neg": 4, "pos": 4}
    # As in the file: app.preprocessing, not the reader, turns <br /> into a space.
    text = ds.splits["train"].texts[ds.splits["train"].labels.index("pos")]
    assert text == "great film number 0<br /><br />loved it"
    assert ds.columns == {}
    np.testing.assert_array_equal(ds.label_ids("test"), [0] * 4 + [1] * 4)


def test_class_folders_directly(tmp_path):
    root = write_class_folders(tmp_path / "d", {"sports": ["a ball game"] * 3, "politics": ["a vote"] * 3,
                                                "music": ["a song"] * 3})
    ds = data.read_dataset(str(root))
    assert ds.classes == ["music", "politics", "sports"]
    assert list(ds.splits) == ["train"]


def test_validation_split_is_stratified_and_seeded(acl_tree):
    a = data.load_dataset(str(acl_tree), validation_split=0.25, seed=1)
    b = data.load_dataset(str(acl_tree), validation_split=0.25, seed=1)
    c = data.load_dataset(str(acl_tree), validation_split=0.25, seed=2)
    assert a.splits["validation"].counts() == {"neg": 3, "pos": 3}
    assert a.splits["train"].counts() == {"neg": 9, "pos": 9}
    assert a.splits["validation"].ids == b.splits["validation"].ids
    assert a.splits["validation"].ids != c.splits["validation"].ids
    assert not set(a.splits["validation"].ids) & set(a.splits["train"].ids)


def test_max_examples_take_stratified_subsets(acl_tree):
    ds = data.load_dataset(str(acl_tree), validation_split=0.2, max_train_examples=10,
                           max_eval_examples=4)
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == 10
    assert ds.splits["test"].counts() == {"neg": 2, "pos": 2}


def test_explicit_validation_folder_is_used(acl_tree):
    write_class_folders(acl_tree / "valid", {"pos": ["fine"] * 2, "neg": ["poor"] * 2})
    ds = data.load_dataset(str(acl_tree))
    assert ds.splits["validation"].counts() == {"neg": 2, "pos": 2}
    assert len(ds.splits["train"]) == 24


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_tables_with_detected_columns(tmp_path, suffix):
    df = pd.DataFrame({"review": ["good one", "bad one", "fine", "poor"] * 3,
                       "sentiment": ["positive", "negative"] * 6})
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    ds = data.read_dataset(str(path))
    assert ds.classes == ["negative", "positive"]
    assert ds.splits["train"].counts() == {"negative": 6, "positive": 6}
    assert ds.columns == {"text": "review", "label": "sentiment"}  # said, and saved with the run


def test_integer_labels_are_ordered_numerically(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(12)], "label": [10, 2, 1] * 4}).to_csv(path, index=False)
    ds = data.read_dataset(str(path))
    assert ds.classes == ["1", "2", "10"]


def test_named_columns_and_table_split_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"body": ["a", "b", "c", "d"], "y": ["x", "z", "x", "z"],
                  "split": ["train", "train", "test", "test"]}).to_csv(path, index=False)
    ds = data.read_dataset(str(path), text_column="body", label_column="y")
    assert ds.splits["train"].counts() == {"x": 1, "z": 1}
    assert ds.splits["test"].counts() == {"x": 1, "z": 1}


def test_test_data_from_another_file(acl_tree, tmp_path):
    path = tmp_path / "extra.csv"
    pd.DataFrame({"text": ["x", "y"], "label": ["pos", "neg"]}).to_csv(path, index=False)
    ds = data.read_dataset(str(acl_tree), test_data=str(path))
    assert len(ds.splits["test"]) == 2
    assert any("replaces the test split" in w for w in ds.warnings)


def test_empty_rows_are_skipped_and_counted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\ngood,pos\n   ,neg\nbad,\nbad,neg\nok,pos\nmeh,neg\n")
    ds = data.read_dataset(str(path))
    assert len(ds.splits["train"]) == 4
    (warning,) = ds.warnings
    assert "skipped 2 row(s)" in warning and "[3, 4]" in warning and "t.csv" in warning


def test_non_utf8_bytes_are_replaced_and_counted(tmp_path):
    root = tmp_path / "d"
    write_class_folders(root, {"pos": ["good"] * 2, "neg": ["bad"] * 2})
    (root / "pos" / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    ds = data.read_dataset(str(root))
    assert "caf\ufffd cr\ufffdme" in ds.splits["train"].texts
    assert any("latin1.txt: 2 byte sequence(s)" in w for w in ds.warnings)


def test_empty_review_files_are_skipped_with_a_warning(tmp_path):
    root = write_class_folders(tmp_path / "d", {"pos": ["good", "  "], "neg": ["bad", "poor"]})
    ds = data.read_dataset(str(root))
    assert len(ds.splits["train"]) == 3
    assert any("skipped 1 empty file" in w for w in ds.warnings)


def test_every_bad_input_gets_one_clear_error(tmp_path):
    for name, (path, message) in bad_data_inputs(tmp_path).items():
        with pytest.raises(DataError) as info:
            data.read_dataset(path)
        assert message in str(info.value), name


def test_unseen_test_label_is_an_error(acl_tree):
    write_class_folders(acl_tree / "test", {"meh": ["so so"]})
    with pytest.raises(DataError, match=r"test split has label\(s\) \['meh'\]"):
        data.read_dataset(str(acl_tree))


def test_imdb_download_uses_get_file_with_hash(acl_tree, tmp_path):
    """The real loader, pointed at a file:// archive built here instead of Stanford's URL."""
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(acl_tree, arcname="aclImdb")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    folder = data.download_imdb(cache_dir=str(tmp_path / "cache"), origin=archive.as_uri(), file_hash=sha)
    ds = data.read_dataset(str(folder))
    assert ds.splits["train"].counts() == {"neg": 12, "pos": 12}
    with pytest.raises(ValueError):
        data.download_imdb(cache_dir=str(tmp_path / "cache2"), origin=archive.as_uri(), file_hash="0" * 64)


def test_bundled_sample_is_balanced_with_train_and_test():
    ds = data.read_dataset(str(data.BUNDLED_SAMPLE))
    assert ds.classes == ["neg", "pos"]
    train, test = ds.splits["train"].counts(), ds.splits["test"].counts()
    assert train["neg"] == train["pos"] and test["neg"] == test["pos"]
    assert sum(train.values()) + sum(test.values()) >= 400
    assert len(set(ds.splits["train"].texts)) == len(ds.splits["train"])


# ----------------------------------------------------------------------------- inspect


def test_inspect_reports_counts_and_token_lengths(acl_tree, tiny_hub):
    from app.preprocessing import Tokenizer

    ds = data.read_dataset(str(acl_tree))
    report = data.inspect(ds, Tokenizer(str(tiny_hub / "preprocess"), seq_length=8))
    train = report["splits"]["train"]
    assert train["counts"] == {"neg": 12, "pos": 12}
    assert set(train["tokens"]) >= {"median", "p90", "over_seq_length"}
    assert train["tokens"]["over_seq_length"] == 24  # every review is longer than 8 tokens
    assert train["tokens"]["auto_seq_length"] == 64  # short reviews: the shortest candidate
    json.dumps(report)  # JSON-serialisable as printed by the CLI


def test_inspect_cli_prints_json_and_nothing_from_tensorflow(acl_tree, tiny_hub):
    proc = run_module("data", "inspect", "--data", acl_tree, "--encoder", tiny_hub, "--max-seq-length", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["splits"]["test"]["counts"] == {"neg": 4, "pos": 4}
    assert report["splits"]["train"]["tokens"]["seq_length"] == 16
    assert proc.stderr == ""


def test_inspect_cli_refuses_every_bad_input(tmp_path):
    for i, (path, message) in enumerate(bad_data_inputs(tmp_path).values()):
        cli = run_module if i == 0 else run_in_process
        assert_clear_failure(cli("data", "inspect", "--data", path, "--no-tokens"), message)
