"""app.model.preprocessing: one text normalization for training and serving, truncation, the tf.data
pipeline and its length buckets."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from app.model import preprocessing
from app.model.preprocessing import Tokenizer, make_tf_dataset, truncate_tokens
from tests.conftest import ENV, run_script

# Raw texts as users have them: HTML line breaks in every spelling, tabs, newlines, control and
# zero-width characters, emoji, other scripts, and a text far past any sequence length.
RAW_TEXTS = [
    "good film<br /><br />great plot",
    "bad<BR>awful<br/>boring <Br  />the end",
    "tabs\tand\nnewlines\r\nand \x00control\x07 chars\u200b here",
    "loved it \U0001F600\U0001F44D so much",
    "Ein wunderbarer Film, 素晴らしい映画! caf\u00e9",
    "the worst " * 2000,  # 20,000 characters
    "",
]


def test_normalize_text_turns_html_line_breaks_into_spaces():
    out = preprocessing.normalize_text(tf.constant(["a<br />b", "a<BR>b", "a<br/>b", "a<br  />b", "a<b>r"]))
    assert [t.decode() for t in out.numpy()] == ["a b", "a b", "a b", "a b", "a<b>r"]


def test_a_line_break_is_tokenized_as_a_space(tiny_hub):
    tok = Tokenizer(str(tiny_hub / "preprocess"), seq_length=32)
    ids = tok(tf.constant(["good film<br /><br />great", "good film great"]))["input_word_ids"].numpy()
    np.testing.assert_array_equal(ids[0], ids[1])


def _unpadded(inputs) -> list[list[int]]:
    ids, mask = np.asarray(inputs["input_word_ids"]), np.asarray(inputs["input_mask"])
    return [row[m.astype(bool)].tolist() for row, m in zip(ids, mask, strict=True)]


_EXPORT_TOKENIZE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    model = tf.saved_model.load(sys.argv[1])
    texts = json.loads(open(sys.argv[2], encoding="utf-8").read())
    inputs = model.tokenize(tf.constant(texts))
    ids = [row[m.astype(bool)].tolist() for row, m in zip(inputs["input_word_ids"].numpy(),
                                                         inputs["input_mask"].numpy())]
    probs = model.signatures["serving_default"](text=tf.constant(texts))["probabilities"].numpy()
    print(json.dumps({"ids": ids, "probabilities": probs.tolist()}))
""")


def test_training_and_the_export_give_raw_texts_the_same_token_ids(trained_tiny, exported, tiny_hub,
                                                                   tmp_path):
    """The same raw strings through app.train's input pipeline and through the export, loaded in
    a process with only TensorFlow and TF Text: identical token ids, and the export's answer for
    a text with HTML breaks is its answer for the text with spaces."""
    _, cfg = trained_tiny
    tok = Tokenizer(str(tiny_hub / "preprocess"), cfg.max_seq_length, cfg.truncation)
    labels = np.arange(len(RAW_TEXTS), dtype=np.int32)
    pipeline = make_tf_dataset(RAW_TEXTS, labels, tok, batch_size=3, shuffle=True,
                                             length_buckets=True)  # as app.train feeds training
    training = {}
    for x, y in pipeline:
        training.update(zip(y.numpy().tolist(), _unpadded(x), strict=True))
    spaced = ["good film  great plot", "bad awful boring  the end"]  # the first two, breaks as spaces
    (tmp_path / "texts.json").write_text(json.dumps(RAW_TEXTS + spaced), encoding="utf-8")
    env = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    proc = run_script(_EXPORT_TOKENIZE, exported, tmp_path / "texts.json", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["ids"][:len(RAW_TEXTS)] == [training[i] for i in range(len(RAW_TEXTS))]
    assert len(training[5]) == cfg.max_seq_length  # the long text, truncated to the full length
    n = len(RAW_TEXTS)
    assert served["ids"][n:] == served["ids"][:2]
    np.testing.assert_allclose(served["probabilities"][n:], served["probabilities"][:2], rtol=0, atol=1e-6)


def test_truncation_strategies():
    tokens = tf.ragged.constant([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [1, 2, 3]], dtype=tf.int64)
    assert truncate_tokens(tokens, 8, "head").to_list() == [[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3]]
    assert truncate_tokens(tokens, 8, "tail").to_list() == [[5, 6, 7, 8, 9, 10, 11, 12], [1, 2, 3]]
    assert truncate_tokens(tokens, 8, "head+tail").to_list() == [[1, 2, 7, 8, 9, 10, 11, 12],
                                                                      [1, 2, 3]]
    with pytest.raises(ValueError, match="--truncation"):
        truncate_tokens(tokens, 8, "middle")


def test_pipeline_batches_of_packed_int_inputs(tiny_hub):
    tok = Tokenizer(str(tiny_hub / "preprocess"), seq_length=16, truncation="tail")
    texts = ["good film " * 20 + "the plot", "bad", "great", "awful", "fine"]
    ds = make_tf_dataset(texts, np.array([1, 0, 1, 0, 1]), tok, batch_size=2, shuffle=True, seed=3)
    batches = list(ds)
    assert [int(y.shape[0]) for _, y in batches] == [2, 2, 1]
    x, _ = batches[0]
    assert sorted(x) == ["input_mask", "input_type_ids", "input_word_ids"]
    assert all(v.dtype == tf.int32 and v.shape[1] == 16 for v in x.values())
    assert ds.element_spec[0]["input_word_ids"].shape.as_list() == [None, 16]
    # Seeded shuffling: the same order twice from a fresh pipeline.
    again = make_tf_dataset(texts, np.array([1, 0, 1, 0, 1]), tok, batch_size=2, shuffle=True, seed=3)
    np.testing.assert_array_equal(next(iter(again))[1], batches[0][1])
    # Tail truncation keeps the end of the long review: "... the plot [SEP]".
    vocab = (tiny_hub / "preprocess" / "assets" / "vocab.txt").read_text().splitlines()
    full = tok(tf.constant(texts[:1]))["input_word_ids"].numpy()[0]
    assert [vocab[i] for i in full[-3:]] == ["the", "plot", "[SEP]"]


def _bucket_texts(n: int = 70) -> tuple[list[str], np.ndarray]:
    """Texts of 1 to 70 words (most longer than the buckets' 32-token multiple), labelled by index."""
    words = ["good", "film", "bad", "plot", "the", "great"]
    texts = [" ".join(words[(i + j) % len(words)] for j in range(1 + (i * 37) % 70)) for i in range(n)]
    return texts, np.arange(n, dtype=np.int32)


def test_length_buckets_pad_each_batch_to_its_bucket_and_lose_nothing(tiny_hub, monkeypatch):
    monkeypatch.setattr(preprocessing, "BUCKET_WINDOW", 2)  # windows of 2 batches: several windows here
    tok = Tokenizer(str(tiny_hub / "preprocess"), seq_length=80, truncation="head")
    texts, ids = _bucket_texts()
    ds = make_tf_dataset(texts, ids, tok, batch_size=8, shuffle=True, seed=5, length_buckets=True)
    assert ds.cardinality().numpy() == 9  # ceil(70 / 8), as without buckets
    assert ds.element_spec[0]["input_word_ids"].shape.as_list() == [None, None]
    plain = {int(i): row for x, y in make_tf_dataset(texts, ids, tok, batch_size=8)
             for i, row in zip(y.numpy(), x["input_word_ids"].numpy(), strict=True)}
    seen, lengths = [], set()
    for x, y in ds:
        word_ids, mask = x["input_word_ids"].numpy(), x["input_mask"].numpy()
        width = word_ids.shape[1]
        lengths.add(width)
        real = mask.sum(axis=1)
        assert width == min(80, -(-real.max() // 32) * 32)
        np.testing.assert_array_equal(mask, (np.arange(width) < real[:, None]).astype(np.int32))
        for i, row in zip(y.numpy(), word_ids, strict=True):
            # The same tokens as the fixed-length pipeline, only less padding.
            np.testing.assert_array_equal(row, plain[int(i)][:width])
            assert not plain[int(i)][width:].any()
        seen.extend(int(i) for i in y.numpy())
    assert sorted(seen) == list(range(70))  # every example exactly once
    assert lengths == {32, 64, 80}
    # Seeded: the same batches again; a new pass reshuffles.
    again = [y.numpy().tolist() for _, y in make_tf_dataset(
        texts, ids, tok, batch_size=8, shuffle=True, seed=5, length_buckets=True)]
    first = [y.numpy().tolist() for _, y in ds]
    assert len(first) == 9 and seen != [i for b in first for i in b]
    assert [y.numpy().tolist() for _, y in make_tf_dataset(
        texts, ids, tok, batch_size=8, shuffle=True, seed=5, length_buckets=True)] == again


def test_length_buckets_group_similar_lengths(tiny_hub):
    tok = Tokenizer(str(tiny_hub / "preprocess"), seq_length=128, truncation="head")
    texts, ids = _bucket_texts(64)
    lengths = np.array([len(t.split()) for t in texts])
    ds = make_tf_dataset(texts, ids, tok, batch_size=8, shuffle=True, seed=1, length_buckets=True,
                              drop_remainder=True)
    spreads = [np.ptp(lengths[y.numpy()]) for _, y in ds]
    # One window holds all 64 texts: each batch is 8 neighbours in length order.
    assert len(spreads) == 8 and max(spreads) <= 12
    padded = sum(x["input_word_ids"].shape[1] * 8 for x, _ in ds)
    assert padded < 0.75 * 64 * 128


@pytest.mark.parametrize("seq_length, width", [(16, 32), (128, 32), (256, 32), (257, 64), (512, 64),
                                               (1024, 128)])
def test_length_buckets_keep_to_eight_shapes(tiny_hub, seq_length, width):
    tok = Tokenizer(str(tiny_hub / "preprocess"), seq_length)
    assert tok.bucket_width == width
    assert len(range(0, seq_length, width)) <= preprocessing.MAX_BUCKETS


def test_length_buckets_need_labels(tiny_hub):
    tok = Tokenizer(str(tiny_hub / "preprocess"), seq_length=16)
    with pytest.raises(ValueError, match="length_buckets=True.*labels=None"):
        make_tf_dataset(["a", "b"], None, tok, batch_size=2, length_buckets=True)




# ----------------------------------------------------------------------------- text pairs


@pytest.mark.parametrize("first, second, budget, expected", [
    (3, 4, 13, (3, 4)),  # both fit
    (20, 2, 13, (11, 2)),  # the short second text leaves the rest to the first
    (2, 20, 13, (2, 11)),
    (20, 20, 13, (7, 6)),  # both long: half each, the odd one to the first
    (0, 30, 13, (0, 13)),
])
def test_pair_budgets_share_the_length_round_robin(first, second, budget, expected):
    a, b = preprocessing.pair_budgets(tf.constant([first]), tf.constant([second]), budget)
    assert (int(a[0]), int(b[0])) == expected


def test_a_text_pair_is_packed_with_segment_ids_and_each_text_truncated(tiny_hub):
    tok = Tokenizer(str(tiny_hub / "preprocess"), seq_length=16, truncation="head+tail")
    good, bad, film = (tok.tokens(tf.constant([w]))[0].to_list()[0][0] for w in ("good", "bad", "film"))
    cls, sep = _unpadded(tok(tf.constant([""])))[0]
    long_first = " ".join(["good"] * 10 + ["film"] * 10)
    inputs = tok(tf.constant([long_first, "good"]), tf.constant(["bad film", "bad " * 20]))
    ids, types = _unpadded(inputs), inputs["input_type_ids"].numpy()
    # 13 word pieces for the two texts: 11 for the long first (head+tail: 2 from its start, 9
    # from its end), 2 for the second.
    assert ids[0] == [cls, good, good, *[film] * 9, sep, bad, film, sep]
    assert types[0].tolist() == [0] * 13 + [1] * 3
    assert ids[1] == [cls, good, sep, *[bad] * 12, sep]
    assert types[1].tolist() == [0] * 3 + [1] * 13
    # The pipeline packs pairs as the tokenizer does, with and without length buckets.
    texts, pairs = ["good film", long_first, "bad"], ["bad", "film film", "good " * 30]
    direct = _unpadded(tok(tf.constant(texts), tf.constant(pairs)))
    for buckets in (False, True):
        ds = make_tf_dataset(texts, np.arange(3), tok, batch_size=2, length_buckets=buckets, pairs=pairs)
        got = {int(i): row for x, y in ds for i, row in zip(y.numpy(), _unpadded(x), strict=True)}
        assert [got[i] for i in range(3)] == direct
    lengths = tok.token_lengths(texts, pairs)
    assert lengths.tolist() == [2 + 1 + 1, 20 + 1 + 2, 1 + 1 + 30]


@pytest.mark.parametrize("buckets", [False, True])
def test_an_epochs_order_is_fixed_by_the_seed_and_the_epoch(tiny_hub, monkeypatch, buckets):
    """What mid-epoch resume rests on: rebuilt in another process, epoch e's batches are the
    same, so skipping the ones trained leaves exactly the rest."""
    monkeypatch.setattr(preprocessing, "BUCKET_WINDOW", 2)
    tok = Tokenizer(str(tiny_hub / "preprocess"), seq_length=80, truncation="head")
    texts, ids = _bucket_texts(40)

    def epoch(e, skip=0):
        ds = make_tf_dataset(texts, ids, tok, batch_size=4, shuffle=True, seed=9, length_buckets=buckets,
                             epoch=e)
        return [y.numpy().tolist() for _, y in ds.skip(skip)]

    first = epoch(1)
    assert sorted(i for batch in first for i in batch) == list(range(40))  # every example once
    assert epoch(1) == first and epoch(1, skip=4) == first[4:]
    assert epoch(2) != first and epoch(0) != first
