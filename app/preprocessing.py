"""Text to encoder inputs, the same in training and inside the exported model.

`Tokenizer` is the one place text is changed: `normalize_text` (HTML line breaks, as IMDb reviews
have them), the encoder's own WordPiece preprocessor, truncation and packing, all TensorFlow ops.
The training `tf.data` pipeline (`make_tf_dataset`) and the exported SavedModel
(`app.export.ServingModel`) call the same object, so a served text is tokenized exactly as it
was in training; the data readers (`app.data`) return text as it is in the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from app.config import TRUNCATIONS

# Length buckets: a batch is padded to the next multiple of the bucket width above its longest
# text (at most the sequence length). The width is BUCKET_MULTIPLE, or a multiple of it that
# keeps to MAX_BUCKETS shapes: XLA's CPU fusion compiles each shape, and marks a cluster
# compiled more than ten times (with fewer than 50 runs per compile) "megamorphic", never to be
# compiled again. Texts are sorted by length inside windows of BUCKET_WINDOW batches of the
# shuffled stream.
BUCKET_MULTIPLE = 32
MAX_BUCKETS = 8
BUCKET_WINDOW = 32
# <br>, <br/>, <br /> in any case: the line breaks of IMDb reviews and of much scraped text.
HTML_BREAK = r"(?i)<br\s*/?>"


def normalize_text(texts: tf.Tensor) -> tf.Tensor:
    """What bertclf changes in raw text before the encoder's tokenizer: HTML line breaks become
    spaces (the tokenizer would otherwise see the word pieces `<`, `br`, `/`, `>`)."""
    return tf.strings.regex_replace(texts, HTML_BREAK, " ")


def bucket_width(seq_length: int) -> int:
    """`BUCKET_MULTIPLE`, or the smallest multiple of it giving at most `MAX_BUCKETS` lengths."""
    per_bucket = -(-seq_length // MAX_BUCKETS)
    return -(-per_bucket // BUCKET_MULTIPLE) * BUCKET_MULTIPLE


def truncate_tokens(tokens: tf.RaggedTensor, budget: int, truncation: str) -> tf.RaggedTensor:
    """Keep at most `budget` tokens per row of a ragged `[batch, tokens]` tensor.

    `head` keeps the start, `tail` the end, `head+tail` the first quarter and the last three
    quarters of the budget (the best-known recipe for long IMDb reviews, Sun et al. 2019).
    """
    if truncation not in TRUNCATIONS:
        raise ValueError(f"--truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    head = {"head": budget, "tail": 0, "head+tail": budget // 4}[truncation]
    lengths = tokens.row_lengths()
    keep = tf.minimum(lengths, budget)
    excess = tf.maximum(lengths - budget, 0)
    positions = tf.ragged.range(keep)
    shift = tf.cast(positions >= head, tf.int64) * tf.expand_dims(excess, 1)
    flat = positions + shift + tf.expand_dims(tokens.row_starts(), 1)
    return tf.RaggedTensor.from_row_lengths(tf.gather(tokens.values, flat.values), keep)


class Tokenizer(tf.Module):
    """Normalization, a TF-Hub BERT preprocessor and truncation: strings to packed encoder inputs."""

    def __init__(self, preprocess_handle: str, seq_length: int, truncation: str = "head+tail"):
        super().__init__(name="tokenizer")
        import tensorflow_hub as hub
        import tensorflow_text  # noqa: F401  (the preprocessor's ops)

        if truncation not in TRUNCATIONS:
            raise ValueError(f"--truncation must be one of {TRUNCATIONS}, got {truncation!r}")
        self.handle = preprocess_handle
        self.seq_length = seq_length
        self.truncation = truncation
        self.preprocessor = hub.load(preprocess_handle)

    def _word_pieces(self, texts) -> tf.RaggedTensor:
        tokens = self.preprocessor.tokenize(normalize_text(texts))
        return tokens.merge_dims(1, 2) if tokens.shape.rank == 3 else tokens

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Word pieces per text, before truncation (without [CLS]/[SEP])."""
        return self._word_pieces(tf.constant(list(texts), tf.string)).row_lengths().numpy()

    def tokens(self, texts) -> tf.RaggedTensor:
        """`[batch]` strings to truncated word pieces, `[batch, (tokens)]` int32, no [CLS]/[SEP]."""
        tokens = truncate_tokens(tf.cast(self._word_pieces(texts), tf.int64), self.seq_length - 2,
                                 self.truncation)
        return tf.cast(tokens, tf.int32)

    def pack(self, tokens: tf.RaggedTensor, bucket: bool = False) -> dict[str, tf.Tensor]:
        """Add [CLS]/[SEP] and pad to `seq_length`, or with `bucket` to the batch's length bucket."""
        length = self.bucket_length(tokens) if bucket else self.seq_length
        packed = self.preprocessor.bert_pack_inputs(
            [tokens], seq_length=tf.convert_to_tensor(length, tf.int32))
        static = None if bucket else self.seq_length
        return {k: tf.ensure_shape(v, [None, static]) for k, v in packed.items()}

    @property
    def bucket_width(self) -> int:
        return bucket_width(self.seq_length)

    def bucket_length(self, tokens: tf.RaggedTensor) -> tf.Tensor:
        """The padded length for a batch: its longest row plus [CLS]/[SEP], rounded up to
        `bucket_width`, never above `seq_length`."""
        width = self.bucket_width
        # (A padded zero keeps an empty batch at one bucket, not at reduce_max's lowest int.)
        longest = tf.cast(tf.reduce_max(tf.pad(tokens.row_lengths(), [[0, 1]])), tf.int32) + 2
        return tf.minimum((longest + width - 1) // width * width, self.seq_length)

    def __call__(self, texts, bucket: bool = False) -> dict[str, tf.Tensor]:
        """`[batch]` strings to the encoder's three int32 inputs, `[batch, seq_length]`, or with
        `bucket` `[batch, length bucket of the longest text]`."""
        return self.pack(self.tokens(texts), bucket)


def make_tf_dataset(
    texts: Sequence[str],
    labels: np.ndarray | None,
    tokenizer: Tokenizer,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 42,
    drop_remainder: bool = False,
    cache: bool = False,
    length_buckets: bool = False,
) -> tf.data.Dataset:
    """A batched `tf.data` pipeline of `(inputs, label)`; tokenization runs in parallel maps.

    Batching before tokenizing lets the preprocessor work on whole batches; the model itself
    only ever sees integer tensors, which is what TPUs need.

    With `length_buckets`, texts are sorted by length inside windows of `BUCKET_WINDOW`
    batches and each batch is padded only to its bucket (see `Tokenizer.bucket_length`), so
    short texts don't pay for padding; the order of the batches is then shuffled (with
    `shuffle`). Every example is still used once per pass and the number of batches is
    unchanged; only the sequence dimension varies. It needs labels: predictions must keep the
    order of their texts.
    """
    if length_buckets and labels is None:
        raise ValueError("length_buckets=True reorders examples and needs labels; got labels=None")
    if labels is None:
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))
    else:
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(list(texts), tf.string),
                                                 tf.constant(labels, tf.int32)))
    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    if length_buckets:
        ds = _length_bucketed(ds, tokenizer, batch_size, len(texts), shuffle, seed, drop_remainder)
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)

        def tokenize_with_label(text, label):
            return tokenizer(text), label

        ds = ds.map(tokenizer if labels is None else tokenize_with_label,
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)


def _length_bucketed(ds, tokenizer: Tokenizer, batch_size: int, n: int, shuffle: bool, seed: int,
                     drop_remainder: bool):
    def sorted_tokens(text, label):
        tokens = tokenizer.tokens(text)
        order = tf.argsort(tokens.row_lengths(), stable=True)
        return tf.gather(tokens, order), tf.gather(label, order)

    def pack(tokens, label):
        return tokenizer.pack(tokens, bucket=True), label

    # Windows are whole numbers of batches, so no batch straddles two windows.
    ds = ds.batch(batch_size * BUCKET_WINDOW)
    ds = ds.map(sorted_tokens, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.unbatch().ragged_batch(batch_size, drop_remainder=drop_remainder)
    if shuffle:
        ds = ds.shuffle(BUCKET_WINDOW, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(pack, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = n // batch_size if drop_remainder else -(-n // batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(batches))
