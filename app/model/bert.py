"""TF-Hub-format BERT: the preprocessor and the reference encoder that `app.convert` saves.

The two SavedModels follow the interface of the published TF-Hub BERT models
(`bert_en_uncased_preprocess` and `bert_en_uncased_L-12_H-768_A-12`), so `hub.KerasLayer`
loads ours and theirs the same way:

* preprocess: `__call__(strings) -> {input_word_ids, input_mask, input_type_ids}`,
  `tokenize(strings) -> RaggedTensor [batch, (words), (wordpieces)]` and
  `bert_pack_inputs(segments, seq_length) -> dict`.
* encoder: `__call__(inputs, training=False) -> {pooled_output, sequence_output,
  encoder_outputs, default}` and the reusable-SavedModel attributes `variables`,
  `trainable_variables` and `regularization_losses` as plain lists.

`BertEncoder` here is the plain implementation, written to be read and ported: standard ops,
one method per part of the transformer, shapes in the comments. `app.model.bert_fast.FastBertEncoder`
computes the same function with the CPU speed techniques (`docs/speed.md`); the tests check
that the two agree. Both are plain TensorFlow rather than Keras layers, so that a compute dtype
(bfloat16) can be baked into the saved graph: Keras mixed-precision policies do not reach inside
a `hub.KerasLayer`.

Numerics, the same in both: variables are float32 (the optimizer's master copy) and cast to the
compute dtype at use; matmuls and the tensors between them are in the compute dtype; layer norms,
softmax and the activation compute in float32; the outputs are float32.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")

# Characters the original BERT tokenizer treats as CJK ideographs (split into single tokens).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
_CJK_CLASS = "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in _CJK_RANGES)

# BERT's BasicTokenizer splits on whitespace (dropped) and on punctuation and CJK ideographs
# (each kept as a token of its own).
_KEEP_DELIM_PATTERN = r"[!-/]|[:-@]|[\[-`]|[{-~]|\p{P}|[" + _CJK_CLASS + "]"
_DELIM_PATTERN = r"\s+|" + _KEEP_DELIM_PATTERN
MAX_CHARS_PER_WORD = 100


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The architecture fields of a Hugging Face `config.json` that a BERT encoder needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12


# Hugging Face's names for the activations; each computes on float32.
ACTIVATIONS = {
    "gelu": lambda x: tf.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: tf.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: tf.nn.gelu(x, approximate=True),
    "relu": tf.nn.relu,
}


# ----------------------------------------------------------------------------- preprocessor


def clean_and_normalize(text: tf.Tensor, lower_case: bool, strip_accents: bool) -> tf.Tensor:
    """Normalize a string tensor the way BERT's reference tokenizer does before splitting.

    Control and format characters (zero-width joiners, NUL, U+FFFD) are removed, any Unicode
    space becomes " ", and for uncased models the text is decomposed (NFD), stripped of
    combining marks (`strip_accents`, on by default for uncased models) and lower-cased. This
    follows Hugging Face's `BertNormalizer` rather than `tf_text`'s NFKC case folding, which
    would also rewrite ligatures, full-width forms and "ß".
    """
    text = tf.strings.regex_replace(text, r"[\t\n\r\x{2028}\x{2029}]", " ")
    text = tf.strings.regex_replace(text, r"[\p{Cc}\p{Cf}\x{FFFD}]", "")
    text = tf.strings.regex_replace(text, r"\p{Zs}", " ")
    if strip_accents:
        text = tf_text.normalize_utf8(text, "NFD")
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
    if lower_case:
        # ICU lower-cases a word-final capital sigma to "ς" (a context-sensitive rule); the
        # reference maps characters one by one, always to "σ".
        text = tf.strings.regex_replace(text, "Σ", "σ")
        text = tf.strings.lower(text, encoding="utf-8")
    return text


class BertPreprocessor(tf.Module):
    """Strings to BERT inputs with a WordPiece vocabulary, using only TF and TF Text ops."""

    def __init__(
        self,
        vocab: list[str],
        lower_case: bool,
        strip_accents: bool,
        vocab_path: str,
        default_seq_length: int = 128,
        name: str = "bert_preprocessor",
    ):
        super().__init__(name=name)
        for token in ("[CLS]", "[SEP]", "[PAD]", "[UNK]"):
            if token not in vocab:
                raise ValueError(f"vocabulary has no {token} token")
        self._lower_case = lower_case
        self._strip_accents = strip_accents
        self._default_seq_length = default_seq_length
        self.cls_id = vocab.index("[CLS]")
        self.sep_id = vocab.index("[SEP]")
        self.pad_id = vocab.index("[PAD]")
        if self.pad_id != 0:
            raise ValueError(f"[PAD] must have id 0 (TF Text pads with zeros), got {self.pad_id}")
        self.vocab_file = tf.saved_model.Asset(vocab_path)
        self.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
        # The table reads the vocabulary asset, so the SavedModel carries vocab.txt as a file.
        initializer = tf.lookup.TextFileInitializer(
            vocab_path,
            key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        self._table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=1)
        # Casing is done by clean_and_normalize, to match the reference tokenizer.
        self._wordpiece = tf_text.WordpieceTokenizer(
            self._table,
            token_out_type=tf.int64,
            unknown_token="[UNK]",
            # Longer words were replaced in tokenize(); this byte limit only has to admit the
            # longest allowed word in any script.
            max_bytes_per_word=4 * MAX_CHARS_PER_WORD,
        )

    def tokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """Strings `[batch]` to word-piece ids, ragged `[batch, (words), (pieces)]`, int32."""
        text = clean_and_normalize(strings, self._lower_case, self._strip_accents)
        words = tf_text.regex_split(text, _DELIM_PATTERN, _KEEP_DELIM_PATTERN)
        # The reference tokenizer makes a word of over MAX_CHARS_PER_WORD characters one [UNK];
        # TF Text's limit counts bytes, so such words become a private-use character, which is
        # in no vocabulary and so maps to [UNK] as a whole.
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        words = words.with_flat_values(tf.where(too_long, "\uE000", words.flat_values))
        return tf.cast(self._wordpiece.tokenize(words), tf.int32)

    def bert_pack_inputs(self, segments, seq_length) -> dict[str, tf.Tensor]:
        """Trim (round robin), add [CLS]/[SEP], pad to `seq_length`: the encoder's inputs."""
        segments = [s.merge_dims(-2, -1) if s.shape.rank == 3 else s for s in segments]
        segments = [tf.cast(s, tf.int64) for s in segments]
        budget = tf.cast(seq_length, tf.int32) - (len(segments) + 1)
        trimmed = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
        ids, type_ids = tf_text.combine_segments(
            trimmed, start_of_sequence_id=self.cls_id, end_of_segment_id=self.sep_id
        )
        word_ids, mask = tf_text.pad_model_inputs(ids, max_seq_length=seq_length)
        type_ids, _ = tf_text.pad_model_inputs(type_ids, max_seq_length=seq_length)
        return {
            "input_word_ids": tf.cast(word_ids, tf.int32),
            "input_mask": tf.cast(mask, tf.int32),
            "input_type_ids": tf.cast(type_ids, tf.int32),
        }

    def __call__(self, strings: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.bert_pack_inputs([self.tokenize(strings)], self._default_seq_length)


# ----------------------------------------------------------------------------- encoder


class BertEncoder(tf.Module):
    """The BERT transformer stack over `tf.Variable`s, in plain TensorFlow.

    Shapes: B batch, S sequence, W width (hidden size), H heads, D = W / H per head, F the
    feed-forward width. Variables are named as `app.model.conversion.map_weights` names the checkpoint's
    tensors, so `FastBertEncoder` takes the same weights.
    """

    #: whether `call` takes `pooled_only` (see `app.model.bert_fast`)
    supports_pooled_only = False

    def __init__(
        self,
        config: BertConfig,
        weights: dict[str, np.ndarray],
        compute_dtype: str = "float32",
        name: str = "bert_encoder",
    ):
        super().__init__(name=name)
        if config.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_act {config.hidden_act!r} is not supported; use one of {sorted(ACTIVATIONS)}"
            )
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(
                f"hidden_size {config.hidden_size} is not a multiple of "
                f"num_attention_heads {config.num_attention_heads}"
            )
        self.config = config
        self.compute_dtype = tf.as_dtype(compute_dtype)
        with self.name_scope:
            self.weights = {
                key: tf.Variable(value.astype(np.float32), name=key.replace(".", "/"))
                for key, value in sorted(weights.items())
            }

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict:
        """TF-Hub's encoder outputs for `{input_word_ids, input_mask, input_type_ids}` [B, S]."""
        mask = tf.cast(inputs["input_mask"], tf.int32)
        x = self.embed(inputs["input_word_ids"], inputs["input_type_ids"], training)  # [B, S, W]
        # Added to the attention scores: 0 where a position is attended, -1e9 on padding.
        bias = (1.0 - tf.cast(mask[:, tf.newaxis, tf.newaxis, :], tf.float32)) * -1e9  # [B, 1, 1, S]
        encoder_outputs = []
        for i in range(self.config.num_hidden_layers):
            x = self.transformer_layer(x, bias, f"layer_{i}.", training)
            encoder_outputs.append(tf.cast(x, tf.float32))
        pooled = tf.tanh(self.dense(x[:, 0, :], "pooler"))  # the [CLS] position: [B, W]
        pooled = tf.cast(pooled, tf.float32)
        return {"pooled_output": pooled, "sequence_output": encoder_outputs[-1],
                "encoder_outputs": encoder_outputs, "default": pooled}

    def embed(self, word_ids: tf.Tensor, type_ids: tf.Tensor, training: bool) -> tf.Tensor:
        """Word + segment + position embeddings, layer norm, dropout: [B, S] ids to [B, S, W]."""
        seq = tf.shape(word_ids)[1]
        x = (tf.gather(self.weights["embeddings.word"], word_ids)
             + tf.gather(self.weights["embeddings.type"], type_ids)
             + self.weights["embeddings.position"][tf.newaxis, :seq])
        x = self.layer_norm(tf.cast(x, self.compute_dtype), "embeddings.norm")
        return self.dropout(x, self.config.hidden_dropout_prob, training)

    def transformer_layer(self, x: tf.Tensor, bias: tf.Tensor, p: str, training: bool) -> tf.Tensor:
        """Self-attention, then the feed-forward block, each with a residual and a layer norm."""
        cfg = self.config
        attention = self.dropout(self.dense(self.attention(x, bias, p, training), p + "attention_output"),
                                 cfg.hidden_dropout_prob, training)
        x = self.layer_norm(x + attention, p + "attention_norm")
        h = self.activation(self.dense(x, p + "intermediate"))  # [B, S, F]
        h = self.dropout(self.dense(h, p + "output"), cfg.hidden_dropout_prob, training)  # [B, S, W]
        return self.layer_norm(x + h, p + "output_norm")

    def attention(self, x: tf.Tensor, bias: tf.Tensor, p: str, training: bool) -> tf.Tensor:
        """Multi-head scaled dot-product self-attention: [B, S, W] to the heads' context [B, S, W]."""
        heads = self.config.num_attention_heads
        head_size = self.config.hidden_size // heads

        def split_heads(t):  # [B, S, W] -> [B, H, S, D]
            t = tf.reshape(t, [tf.shape(t)[0], -1, heads, head_size])
            return tf.transpose(t, [0, 2, 1, 3])

        q, k, v = (split_heads(self.dense(x, p + name)) for name in ("query", "key", "value"))
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(head_size)  # [B, H, S, S]
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + bias, axis=-1)
        probs = self.dropout(tf.cast(probs, self.compute_dtype), self.config.attention_probs_dropout_prob,
                             training)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])  # [B, S, H, D]
        return tf.reshape(context, [tf.shape(x)[0], -1, self.config.hidden_size])

    def dense(self, x: tf.Tensor, prefix: str) -> tf.Tensor:
        """x W + b over the last axis, [B, S, I] or [B, I] by [I, O], in the compute dtype.

        (Explicit subscripts: with "...i,io->...o" TensorFlow's einsum gradient builds the
        kernel's gradient as a [B, S, I, O] tensor before summing it, gigabytes at BERT's sizes.)"""
        kernel = tf.cast(self.weights[prefix + ".kernel"], self.compute_dtype)
        bias = tf.cast(self.weights[prefix + ".bias"], self.compute_dtype)
        return tf.einsum("bsi,io->bso" if x.shape.rank == 3 else "bi,io->bo", x, kernel) + bias

    def layer_norm(self, x: tf.Tensor, prefix: str) -> tf.Tensor:
        """Normalise the last axis to zero mean and unit variance, scale and shift (in float32)."""
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
        normed = (x32 - mean) * tf.math.rsqrt(variance + self.config.layer_norm_eps)
        return tf.cast(normed * self.weights[prefix + ".gamma"] + self.weights[prefix + ".beta"], x.dtype)

    def activation(self, h: tf.Tensor) -> tf.Tensor:
        """The feed-forward activation (exact GELU for BERT), in float32."""
        return tf.cast(ACTIVATIONS[self.config.hidden_act](tf.cast(h, tf.float32)), h.dtype)

    def dropout(self, x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
        if training and rate > 0:
            return tf.nn.dropout(x, rate=rate)
        return x


# ----------------------------------------------------------------------------- SavedModels


def encoder_input_spec() -> dict[str, tf.TensorSpec]:
    return {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES}


def encoder_savable(encoder: BertEncoder) -> tf.Module:
    """Wrap an encoder as a TF-Hub reusable SavedModel root.

    `hub.KerasLayer` reads `variables`, `trainable_variables` and `regularization_losses` as
    saved children of the root, so they are assigned as plain lists (a tf.Module's properties
    of those names are not saved). `__call__` is traced for each value of `training` (and of
    `pooled_only`, where the encoder takes it) instead of branching on it: a `tf.cond` around
    random dropout does not compile under XLA.
    """
    root = tf.__internal__.tracking.AutoTrackable()
    root.encoder = encoder
    root.variables = list(encoder.variables)
    root.trainable_variables = list(encoder.trainable_variables)
    root.regularization_losses = []
    root.__call__ = tf.function(encoder.call)
    for training in (False, True):
        for pooled_only in (False, True) if encoder.supports_pooled_only else (None,):
            extra = {} if pooled_only is None else {"pooled_only": pooled_only}
            root.__call__.get_concrete_function(encoder_input_spec(), training=training, **extra)
    return root


def preprocessor_savable(pre: BertPreprocessor, max_segments: int = 3) -> tf.Module:
    """Wrap a preprocessor with traced `__call__`, `tokenize` and `bert_pack_inputs`."""
    root = tf.__internal__.tracking.AutoTrackable()
    root.preprocessor = pre
    root.vocab_file = pre.vocab_file
    root.do_lower_case = pre.do_lower_case
    strings = tf.TensorSpec([None], tf.string)
    root.__call__ = tf.function(pre.__call__, input_signature=[strings])
    root.tokenize = tf.function(pre.tokenize, input_signature=[strings])
    root.bert_pack_inputs = tf.function(pre.bert_pack_inputs)
    for n in range(1, max_segments + 1):
        for rank in (2, 3):
            spec = tf.RaggedTensorSpec([None] * rank, tf.int32, ragged_rank=rank - 1)
            root.bert_pack_inputs.get_concrete_function(
                [spec] * n, seq_length=tf.TensorSpec([], tf.int32)
            )
    return root
