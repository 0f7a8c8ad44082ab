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
from app.data import DataError, tables
from app.options import BUNDLED_SAMPLE
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
    # As in the file: app.model.preprocessing, not the reader, turns <br /> into a space.
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
    # Said, and saved with the run; a CSV/TSV also says whether its first row was a header.
    header = {"header": "yes"} if suffix in (".csv", ".tsv") else {}
    assert ds.columns == {"text": "review", "label": "sentiment", **header}


def test_integer_labels_are_ordered_numerically(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(12)], "label": [10, 2, 1] * 4}).to_csv(path, index=False)
    ds = data.read_dataset(str(path))
    assert ds.classes == ["1", "2", "10"]


def test_named_columns_and_table_split_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"body": ["a", "b", "c", "d"], "y": ["x", "z", "x", "z"],
                  "split": ["train", "train", "test", "test"]}).to_csv(path, index=False)
    ds = data.read_dataset(str(path), table=data.TableFormat("body", "y"))
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
    (warning,) = [w for w in ds.warnings if "skipped" in w]
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
    ds = data.read_dataset(str(BUNDLED_SAMPLE))
    assert ds.classes == ["neg", "pos"]
    train, test = ds.splits["train"].counts(), ds.splits["test"].counts()
    assert train["neg"] == train["pos"] and test["neg"] == test["pos"]
    assert sum(train.values()) + sum(test.values()) >= 400
    assert len(set(ds.splits["train"].texts)) == len(ds.splits["train"])


# ----------------------------------------------------------------------------- inspect


def test_inspect_reports_counts_and_token_lengths(acl_tree, tiny_hub):
    from app.model.preprocessing import Tokenizer

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


# ----------------------------------------------------------------------------- tables as they come

NEWS_NAMES = ["World", "Sports", "Business", "Sci/Tech"]


def _news(tmp_path, rows_per_class: int = 12, labels=(1, 2, 3, 4)) -> tuple[Path, Path]:
    """A 4-class news table as AG News is distributed: no header, class index 1-4, title,
    description; the class names in a separate file."""
    rows = [f'"{c}","Title {c}-{i}","Description, with a comma, {c}-{i}"' for i in range(rows_per_class)
            for c in labels]
    table = tmp_path / "news.csv"
    table.write_text("\n".join(rows) + "\n")
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(NEWS_NAMES) + "\n")
    return table, names


def test_a_headerless_table_reads_by_column_index_with_joined_texts_and_named_labels(tmp_path):
    table, names = _news(tmp_path)
    ds = data.read_dataset(str(table), table=data.TableFormat("1,2", "0", label_names=str(names)))
    assert ds.classes == NEWS_NAMES  # the names file's order, not alphabetical
    assert ds.columns == {"text": "1,2", "label": "0", "header": "none"}
    train = ds.splits["train"]
    assert train.counts() == {name: 12 for name in NEWS_NAMES}
    # The first row is data (row 1, no header); label 1 is the file's first name.
    assert (train.ids[0], train.labels[0]) == ("news.csv:1", "World")
    assert train.texts[0] == f"Title 1-0{data.TEXT_JOINER}Description, with a comma, 1-0"
    # Detected without the column flags, it asks for them by index, showing the first row.
    with pytest.raises(DataError, match=r"no header row; say which columns to use by 0-based index"):
        data.read_dataset(str(table))
    # --header yes takes the first row as names.
    with pytest.raises(DataError, match=r"no text column '2'; columns are \['1', 'Title 1-0'"):
        data.read_dataset(str(table), table=data.TableFormat("1,2", "0", header="yes"))


def test_header_detection_and_named_column_joins(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"title": ["Good", "Bad"] * 6, "description": ["fun film", "dull plot"] * 6,
                  "stars": [5, 1] * 6}).to_csv(path, index=False)
    ds = data.read_dataset(str(path), table=data.TableFormat("title,description", "stars"))
    assert ds.columns == {"text": "title,description", "label": "stars", "header": "yes"}
    assert ds.splits["train"].texts[:2] == ["Good\nfun film", "Bad\ndull plot"]
    assert ds.splits["train"].ids[0] == "t.csv:2"  # line 1 is the header
    # "stars" heads a column of numbers: a header row, found without naming a column.
    assert tables._has_header(pd.read_csv(path, header=None, dtype=str), data.TableFormat())[0] is True
    numbers = pd.DataFrame([["1", "some text"], ["2", "more text"]])
    assert tables._has_header(numbers, data.TableFormat())[0] is False
    pd.DataFrame({"text": ["a"], "label": ["b"]}).to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    with pytest.raises(DataError, match=r"--header is for .csv and .tsv"):
        data.read_dataset(str(tmp_path / "t.jsonl"), table=data.TableFormat(header="none"))
    with pytest.raises(ValueError, match=r"--header must be one of"):
        data.TableFormat(header="maybe")


@pytest.mark.parametrize("case", ["missing index", "too few names", "too many names", "text label",
                                  "repeated name", "missing file"])
def test_tables_as_they_come_get_clear_errors(tmp_path, case):
    table, names = _news(tmp_path)
    fmt = data.TableFormat("1,2", "0", label_names=str(names))
    if case == "missing index":
        fmt = data.TableFormat("1,5", "0", label_names=str(names))
        message = (r"news.csv: no text column '5': the table has no header row, so its columns are the "
                   r"indices 0 to 2")
    elif case == "too few names":
        names.write_text("World\nSports\nBusiness\n")
        message = r"has 3 names, which do not cover the labels 1 to 4 found"
    elif case == "too many names":
        names.write_text("\n".join([*NEWS_NAMES, "Extra"]))  # labels 1-4: neither 0-4 nor 1-5
        message = r"has 5 names, which do not cover the labels 1 to 4 found"
    elif case == "text label":
        table.write_text(table.read_text() + '"five","t","d"\n')
        message = r"names integer labels; news.csv:49 has label 'five'"
    elif case == "repeated name":
        names.write_text("World\nSports\nWorld\nTech\n")
        message = r"names \['World'\] more than once"
    else:
        names.unlink()
        message = r"--label-names .*classes.txt: cannot read"
    with pytest.raises(DataError, match=message):
        data.read_dataset(str(table), table=fmt)


def test_zero_based_labels_and_a_class_with_a_handful_of_examples(tmp_path):
    rows = [{"text": f"review {i}", "label": 1 + i % 2} for i in range(40)] + [{"text": "rare", "label": 0}]
    path = tmp_path / "t.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    names = tmp_path / "names.txt"
    names.write_text("rare\nsome\nmany\n")
    ds = data.read_dataset(str(path), table=data.TableFormat(label_names=str(names)))
    assert ds.classes == ["rare", "some", "many"]  # label 0 is line 1
    assert ds.splits["train"].counts()["rare"] == 1
    assert any("fewer than 10 training examples: {'rare': 1}" in w for w in ds.warnings)


def test_inspect_cli_reads_a_headerless_table_and_says_which_columns(tmp_path):
    table, names = _news(tmp_path)
    proc = run_in_process("data", "inspect", "--data", table, "--text-column", "1,2", "--label-column", "0",
                          "--label-names", names, "--no-tokens")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["columns"] == {"text": "1,2", "label": "0", "header": "none"}
    assert report["classes"] == NEWS_NAMES


def test_text_pairs_come_from_a_second_column_and_travel_with_their_rows(tmp_path, acl_tree):
    path = tmp_path / "pairs.tsv"
    path.write_text("q1\tq2\tis_duplicate\nHow old?\tWhat age?\t1\nWhere?\t\t0\nWho?\tWhich one?\t0\n"
                    + "".join(f"Q{i}\tP{i}\t{i % 2}\n" for i in range(20)))
    ds = data.load_dataset(str(path), table=data.TableFormat("q1", "is_duplicate", text_pair_column="q2"),
                           validation_split=0.25)
    assert ds.columns == {"text": "q1", "label": "is_duplicate", "text_pair": "q2", "header": "yes"}
    train = ds.splits["train"]
    for text, pair in zip(train.texts, train.pairs, strict=True):  # still side by side after the split
        assert (text, pair) in {("How old?", "What age?"), ("Who?", "Which one?")} or pair == "P" + text[1:]
    assert len(train) + len(ds.splits["validation"]) == 22
    skipped = "skipped 1 row(s) with an empty text, second text or label (rows [3])"
    assert any(skipped in w for w in ds.warnings)
    with pytest.raises(DataError, match=r"no text pair column 'q3'"):
        data.read_dataset(str(path), table=data.TableFormat("q1", "is_duplicate", text_pair_column="q3"))
    with pytest.raises(DataError, match=r"text pairs come in a table"):
        data.read_dataset(str(acl_tree), table=data.TableFormat(text_pair_column="second"))


def test_multi_label_tables_read_in_each_form_they_come_in(tmp_path):
    """Label sets from a separated string (ids named from a file, as emotion corpora ship
    them), JSONL lists, Parquet lists, one 0/1 column per label, and a JSON list written into a
    CSV cell; an example with no labels is kept, as an empty set."""
    (tmp_path / "go.tsv").write_text("good film\t0,2\tx1\nbad film\t1\tx2\nthe plot\t\tx3\ngreat\t2,0\tx4\n")
    (tmp_path / "names.txt").write_text("joy\nanger\nlove\n")
    table = data.TableFormat("0", "1", "none", str(tmp_path / "names.txt"), label_separator=",")
    ds = data.read_dataset(str(tmp_path / "go.tsv"), table=table)
    assert ds.multi_label and ds.classes == ["joy", "anger", "love"]
    assert ds.splits["train"].labels == [("joy", "love"), ("anger",), (), ("love", "joy")]
    np.testing.assert_array_equal(ds.label_ids("train"), [[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 0, 1]])
    assert ds.label_ids("train").dtype == np.float32
    assert ds.splits["train"].counts() == {"anger": 1, "joy": 2, "love": 2}

    rows = [{"text": "a", "labels": ["x", "y"]}, {"text": "b", "labels": []}, {"text": "c", "labels": ["y"]}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = data.read_dataset(str(tmp_path / "t.jsonl"))  # detected: the labels are lists
    assert ds.multi_label and ds.splits["train"].labels == [("x", "y"), (), ("y",)]
    pd.DataFrame(rows).to_parquet(tmp_path / "t.parquet")
    assert data.read_dataset(str(tmp_path / "t.parquet")).splits["train"].labels == [("x", "y"), (), ("y",)]

    pd.DataFrame({"text": ["a", "b", "c"], "toxic": [1, 0, 1], "insult": ["0", "false", "true"]}).to_csv(
        tmp_path / "cols.csv", index=False)
    ds = data.read_dataset(str(tmp_path / "cols.csv"), table=data.TableFormat(label_columns="toxic,insult"))
    assert ds.classes == ["toxic", "insult"]  # the columns' order, not alphabetical
    assert ds.splits["train"].labels == [("toxic",), (), ("toxic", "insult")]

    pd.DataFrame({"text": ["a", "b"], "label": ['["x", "y"]', "[]"]}).to_csv(tmp_path / "j.csv", index=False)
    ds = data.read_dataset(str(tmp_path / "j.csv"), table=data.TableFormat(task="multi-label"))
    assert ds.splits["train"].labels == [("x", "y"), ()]


def test_multi_label_validation_split_is_seeded_and_keeps_every_example(tmp_path):
    rows = [{"text": f"text {i}", "labels": [["a"], ["b"], ["a", "b"], []][i % 4]} for i in range(40)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    one = data.load_dataset(str(tmp_path / "t.jsonl"), validation_split=0.25, seed=3)
    two = data.load_dataset(str(tmp_path / "t.jsonl"), validation_split=0.25, seed=3)
    assert len(one.splits["validation"]) == 10 and len(one.splits["train"]) == 30
    assert one.splits["validation"].ids == two.splits["validation"].ids
    assert sorted(one.splits["train"].ids + one.splits["validation"].ids) == sorted(f"t.jsonl:{i}"
                                                                                    for i in range(1, 41))


@pytest.mark.parametrize("case", ["bad flag value", "list for single-label", "separator with single-label",
                                  "both label flags", "folder", "mixed test data", "unknown test label"])
def test_multi_label_input_mistakes_get_clear_errors(tmp_path, acl_tree, case):
    pd.DataFrame({"text": ["a", "b"], "toxic": [1, 2]}).to_csv(tmp_path / "cols.csv", index=False)
    (tmp_path / "t.jsonl").write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": ["y"]}\n')
    (tmp_path / "single.jsonl").write_text('{"text": "a", "labels": "x"}\n{"text": "b", "labels": "y"}\n')
    (tmp_path / "other.jsonl").write_text('{"text": "a", "labels": ["z"]}\n')
    source, test, table, message = {
        "bad flag value": ("cols.csv", None, dict(label_columns="toxic"),
                           "cols.csv row 3: label column 'toxic' holds '2'"),
        "list for single-label": ("t.jsonl", None, dict(task="single-label"), "several labels per text take "
                                  "--task multi-label"),
        "separator with single-label": ("t.jsonl", None, dict(task="single-label", label_separator=","),
                                        "--label-separator gives each text several labels"),
        "both label flags": ("cols.csv", None, dict(label_column="toxic", label_columns="toxic"),
                             "give one"),
        "folder": (str(acl_tree), None, dict(label_separator=","), "several labels per text come in a table"),
        "mixed test data": ("t.jsonl", "single.jsonl", {}, "the test split has one label per text"),
        "unknown test label": ("t.jsonl", "other.jsonl", {}, "test split has label(s) ['z']"),
    }[case]
    with pytest.raises(ValueError) as error:
        data.read_dataset(str(tmp_path / source), test and str(tmp_path / test), data.TableFormat(**table))
    assert message in str(error.value)


def test_a_tsv_is_read_without_quoting_as_paraphrase_corpora_ship(tmp_path):
    """MRPC's TSV has a header of its own and sentences that open with a quote mark: a CSV
    reader's quoting would run them into the next rows."""
    (tmp_path / "mrpc.tsv").write_text(
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        '1\t1\t2\t"Amrozi accused his brother\tReferring to him as "the witness", Amrozi accused\n'
        "0\t3\t4\tYucaipa owned Dominick's\t\"Yucaipa bought Dominick's in 1995\n")
    table = data.TableFormat("#1 String", "Quality", text_pair_column="#2 String")
    split = data.read_dataset(str(tmp_path / "mrpc.tsv"), table=table).splits["train"]
    assert split.texts == ['"Amrozi accused his brother', "Yucaipa owned Dominick's"]
    assert split.pairs == ['Referring to him as "the witness", Amrozi accused',
                           '"Yucaipa bought Dominick\'s in 1995']
    assert split.labels == ["1", "0"]


BOM = "\ufeff"
MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def test_a_paraphrase_txt_with_a_byte_order_mark_reads_as_distributed(tmp_path):
    """msr_paraphrase_train.txt: a .txt suffix, a BOM, a header with spaces and '#': sniffed as
    TSV (the decision logged), the BOM kept out of the first column's name."""
    path = tmp_path / "msr_paraphrase_train.txt"
    path.write_text(BOM + MRPC_HEADER + "1\t1\t2\t\"He said it\tHe stated it\n0\t3\t4\tA cat\tA dog sat\n"
                    "1\t5\t6\tRain fell\tIt rained\n", encoding="utf-8")
    table = data.TableFormat("#1 String", "Quality", text_pair_column="#2 String")
    split = data.read_dataset(str(path), table=table).splits["train"]
    assert split.labels == ["1", "0", "1"] and split.texts[0] == '"He said it'
    assert split.pairs == ["He stated it", "A dog sat", "It rained"]
    # Found by name without being told: "Quality" is not a guess, so it must be asked for.
    with pytest.raises(DataError, match="no label column found"):
        data.read_dataset(str(path), table=data.TableFormat("#1 String"))


@pytest.mark.parametrize("name, content, kind", [
    ("news.dat", '3,"Wall St. Bears Claw Back","Reuters - Short-sellers, ..."\n'
                 '4,"Oil and Economy","Soaring crude prices plus worries"\n', "csv"),
    ("emotions", "My favourite food\t27\teebbqej\nNow if he does off\t2,27\ted00q6i\n", "tsv"),
    ("rows.txt", '{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n', "jsonl"),
])
def test_a_table_without_a_known_suffix_is_sniffed_and_the_decision_logged(tmp_path, caplog, name, content,
                                                                          kind):
    (tmp_path / name).write_text(BOM + content, encoding="utf-8")
    with caplog.at_level("INFO", logger="app.data"):
        assert data.table_kind(tmp_path / name, data.TableFormat()) == kind
    assert f"read as {kind.upper()}" in caplog.text and "--format" in caplog.text
    # --format decides without sniffing.
    assert data.table_kind(tmp_path / name, data.TableFormat(format="csv")) == "csv"


def test_format_overrides_the_suffix_and_an_unsniffable_file_names_the_flag(tmp_path):
    path = tmp_path / "actually_tab_separated.csv"
    path.write_text("text\tlabel\ngood, really\tpos\nbad\tneg\n")
    ds = data.read_dataset(str(path), table=data.TableFormat(format="tsv"))
    assert ds.splits["train"].texts == ["good, really", "bad"]
    prose = tmp_path / "notes.txt"
    prose.write_text("A paragraph of prose, with a comma.\nAnother line\twith a tab, and more, commas\n")
    with pytest.raises(DataError, match=r"notes.txt: unknown file type '.txt' and .*give --format "
                                        r"csv\|tsv\|jsonl\|parquet"):
        data.read_dataset(str(prose))
    with pytest.raises(ValueError, match="--format must be one of"):
        data.TableFormat(format="xlsx")


def test_a_byte_order_mark_never_reaches_a_column_name_in_any_reader(tmp_path):
    for name, content in (("t.csv", "text,label\ngood,pos\nbad,neg\n"),
                          ("t.tsv", "text\tlabel\ngood\tpos\nbad\tneg\n"),
                          ("t.jsonl", '{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n')):
        (tmp_path / name).write_text(BOM + content, encoding="utf-8")
        ds = data.read_dataset(str(tmp_path / name))
        assert ds.splits["train"].texts == ["good", "bad"], name
        chunks = list(data.stream_texts(str(tmp_path / name)))
        assert list(chunks[0].rows.columns)[0] == "text" and chunks[0].texts == ["good", "bad"], name
    (tmp_path / "lines.txt").write_text(BOM + "first\nsecond\n", encoding="utf-8")
    assert next(data.stream_texts(str(tmp_path / "lines.txt"))).texts == ["first", "second"]


# ----------------------------------------------------------------------------- --unlabeled-data


def test_unlabeled_texts_come_from_a_folder_the_acl_folder_a_table_or_lines(acl_tree, tmp_path):
    # The aclImdb folder (or its train/) stands for its unsup/; unsup/ itself is one text a file.
    for given in (acl_tree, acl_tree / "train", acl_tree / "train" / "unsup"):
        texts, notes = data.read_unlabeled(str(given))
        assert (texts, notes) == (["no label here"], [])
    table = tmp_path / "unlabeled.csv"
    pd.DataFrame({"id": [1, 2, 3], "review": ["one", "two", "three"]}).to_csv(table, index=False)
    assert data.read_unlabeled(str(table))[0] == ["one", "two", "three"]  # the text column, by name
    assert data.read_unlabeled(str(table), data.TableFormat(text_column="id"))[0] == ["1", "2", "3"]
    lines = tmp_path / "texts.txt"
    lines.write_text("first text\n\nsecond text\n")
    assert data.read_unlabeled(str(lines))[0] == ["first text", "second text"]


def test_unlabeled_texts_leave_out_empty_repeated_and_labelled_ones_and_say_so(tmp_path):
    folder = write_class_folders(tmp_path, {"unsup": ["a", "b", "b", "  ", "labelled", "c"]}) / "unsup"
    texts, notes = data.read_unlabeled(str(folder), exclude={"labelled"})
    assert texts == ["a", "b", "c"]
    assert len(notes) == 3 and all(str(folder) in n for n in notes)
    assert any("1 text(s) empty" in n for n in notes) and any("1 text(s) repeated" in n for n in notes)
    assert any("1 text(s) also in the labelled data" in n for n in notes)
    # Above the limit, a seeded sample in reading order.
    many = write_class_folders(tmp_path / "many", {"unsup": [f"text {i}" for i in range(50)]}) / "unsup"
    first, notes = data.read_unlabeled(str(many), limit=10, seed=1)
    assert len(first) == 10 == len(set(first))
    assert first == data.read_unlabeled(str(many), limit=10, seed=1)[0]
    assert first != data.read_unlabeled(str(many), limit=10, seed=2)[0]
    assert "a seeded sample of 10 of its 50 texts" in notes[-1]


def test_unlabeled_data_that_cannot_be_used_is_refused_by_name(tmp_path):
    with pytest.raises(DataError, match=r"--unlabeled-data .*missing: no such file"):
        data.read_unlabeled(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"--unlabeled-data .*empty: no text files"):
        data.read_unlabeled(str(tmp_path / "empty"))
    only = tmp_path / "only.txt"
    only.write_text("labelled\n")
    with pytest.raises(DataError, match=r"only.txt: no texts left to use \(1 read\)"):
        data.read_unlabeled(str(only), exclude=["labelled"])
