"""Text to encoder inputs, the same in training and inside the exported model.

`Tokenizer` is the one place text is changed: `normalize_text` (HTML line breaks, as IMDb reviews
have them), the encoder's own WordPiece preprocessor, truncation and packing, all TensorFlow ops.
The training `tf.data` pipeline (`make_tf_dataset`) and the exported SavedModel
(`app.serving.export.ServingModel`) call the same object, so a served text is tokenized exactly as it
was in training; the data readers (`app.data`) return text as it is in the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from app.options import TRUNCATIONS

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


def pair_budgets(first: tf.Tensor, second: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """How a text pair shares `budget` word pieces (per row, from the two segments' lengths):
    each keeps up to half, and one that is shorter leaves the rest to the other (the round robin
    of BERT's pre-training and of TF Text's `RoundRobinTrimmer`)."""
    first, second = tf.cast(first, tf.int64), tf.cast(second, tf.int64)
    keep_first = tf.minimum(first, tf.maximum(budget - second, (budget + 1) // 2))
    return keep_first, tf.minimum(second, budget - keep_first)


def truncate_tokens(tokens: tf.RaggedTensor, budget, truncation: str) -> tf.RaggedTensor:
    """Keep at most `budget` tokens (a number, or one per row) per row of a ragged
    `[batch, tokens]` tensor.

    `head` keeps the start, `tail` the end, `head+tail` the first quarter and the last three
    quarters of the budget (the best-known recipe for long IMDb reviews, Sun et al. 2019).
    """
    if truncation not in TRUNCATIONS:
        raise ValueError(f"--truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    lengths = tokens.row_lengths()
    budget = tf.broadcast_to(tf.cast(budget, tf.int64), tf.shape(lengths))
    head = {"head": budget, "tail": tf.zeros_like(budget), "head+tail": budget // 4}[truncation]
    keep = tf.minimum(lengths, budget)
    excess = tf.maximum(lengths - budget, 0)
    positions = tf.ragged.range(keep)
    shift = tf.cast(positions >= tf.expand_dims(head, 1), tf.int64) * tf.expand_dims(excess, 1)
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

    def token_lengths(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Word pieces per text (or text pair), before truncation, without [CLS] and [SEP]."""
        def count(strings):
            return self._word_pieces(tf.constant(list(strings), tf.string)).row_lengths().numpy()

        # A pair has one more [SEP], between its two texts.
        return count(texts) if pairs is None else count(texts) + count(pairs) + 1

    def tokens(self, texts, pairs=None) -> list[tf.RaggedTensor]:
        """`[batch]` strings (and their pairs) to truncated word pieces: one `[batch, (tokens)]`
        int32 segment a text column, without [CLS]/[SEP]. A pair shares the length as
        `pair_budgets` says, each text truncated by `truncation`."""
        first = tf.cast(self._word_pieces(texts), tf.int64)
        if pairs is None:
            return [tf.cast(truncate_tokens(first, self.seq_length - 2, self.truncation), tf.int32)]
        second = tf.cast(self._word_pieces(pairs), tf.int64)
        budgets = pair_budgets(first.row_lengths(), second.row_lengths(), self.seq_length - 3)
        return [tf.cast(truncate_tokens(segment, b, self.truncation), tf.int32)
                for segment, b in zip((first, second), budgets, strict=True)]

    def pack(self, segments: list[tf.RaggedTensor], bucket: bool = False) -> dict[str, tf.Tensor]:
        """Add [CLS]/[SEP] (type ids 0, then 1 for a pair's second text) and pad to `seq_length`,
        or with `bucket` to the batch's length bucket."""
        length = self.bucket_length(segments) if bucket else self.seq_length
        packed = self.preprocessor.bert_pack_inputs(
            list(segments), seq_length=tf.convert_to_tensor(length, tf.int32))
        static = None if bucket else self.seq_length
        return {k: tf.ensure_shape(v, [None, static]) for k, v in packed.items()}

    @property
    def bucket_width(self) -> int:
        return bucket_width(self.seq_length)

    def bucket_length(self, segments: list[tf.RaggedTensor]) -> tf.Tensor:
        """The padded length for a batch: its longest row plus [CLS] and the [SEP]s, rounded up
        to `bucket_width`, never above `seq_length`."""
        width = self.bucket_width
        lengths = tf.add_n([s.row_lengths() for s in segments])
        # (A padded zero keeps an empty batch at one bucket, not at reduce_max's lowest int.)
        longest = tf.cast(tf.reduce_max(tf.pad(lengths, [[0, 1]])), tf.int32) + 1 + len(segments)
        return tf.minimum((longest + width - 1) // width * width, self.seq_length)

    def __call__(self, texts, pairs=None, bucket: bool = False) -> dict[str, tf.Tensor]:
        """`[batch]` strings (and, for text pairs, their second texts) to the encoder's three
        int32 inputs, `[batch, seq_length]`, or with `bucket` `[batch, length bucket]`."""
        return self.pack(self.tokens(texts, pairs), bucket)


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
    pairs: Sequence[str] | None = None,
    epoch: int | None = None,
) -> tf.data.Dataset:
    """A batched `tf.data` pipeline of `(inputs, label)`; tokenization runs in parallel maps.
    `pairs` are the second texts of text pairs.

    With `epoch`, the shuffled order is that epoch's, a function of `seed` and `epoch` alone
    (what lets a run resumed inside an epoch skip exactly the batches it had trained); without,
    each pass over the pipeline draws a new order.

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
    strings = tf.constant(list(texts), tf.string)
    features = strings if pairs is None else (strings, tf.constant(list(pairs), tf.string))
    if labels is None:
        ds = tf.data.Dataset.from_tensor_slices(features)
    else:
        # Class ids, or a multi-label 0/1 matrix.
        labels = tf.constant(labels, tf.float32 if np.ndim(labels) == 2 else tf.int32)
        ds = tf.data.Dataset.from_tensor_slices((features, labels))
    if epoch is not None:
        seed = epoch_seed(seed, epoch)
    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=epoch is None)
    if length_buckets:
        ds = _length_bucketed(ds, tokenizer, batch_size, len(texts), shuffle, seed, drop_remainder,
                              reshuffle=epoch is None)
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)

        def tokenize(*columns):  # tf.data passes a pair's two texts as two arguments
            return tokenizer(*columns)

        def tokenize_with_label(features, label):
            return tokenizer(*_columns(features)), label

        ds = ds.map(tokenize if labels is None else tokenize_with_label,
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)


def _columns(features) -> tuple:
    """(texts,) or (texts, pairs) from a pipeline's features."""
    return tuple(features) if isinstance(features, tuple | list) else (features,)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of one epoch of a run seeded `seed`."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] >> 1)


def _length_bucketed(ds, tokenizer: Tokenizer, batch_size: int, n: int, shuffle: bool, seed: int,
                     drop_remainder: bool, reshuffle: bool = True):
    def sorted_tokens(features, label):
        segments = tokenizer.tokens(*_columns(features))
        order = tf.argsort(tf.add_n([s.row_lengths() for s in segments]), stable=True)
        return tuple(tf.gather(s, order) for s in segments), tf.gather(label, order)

    def pack(segments, label):
        return tokenizer.pack(list(segments), bucket=True), label

    # Windows are whole numbers of batches, so no batch straddles two windows.
    ds = ds.batch(batch_size * BUCKET_WINDOW)
    ds = ds.map(sorted_tokens, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.unbatch().ragged_batch(batch_size, drop_remainder=drop_remainder)
    if shuffle:
        ds = ds.shuffle(BUCKET_WINDOW, seed=seed, reshuffle_each_iteration=reshuffle)
    ds = ds.map(pack, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = n // batch_size if drop_remainder else -(-n // batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(batches))
