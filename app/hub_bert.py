"""TF-Hub-format BERT: the preprocessing and encoder objects that `app.convert` saves.

The two SavedModels follow the interface of the published TF-Hub BERT models
(`bert_en_uncased_preprocess` and `bert_en_uncased_L-12_H-768_A-12`), so `hub.KerasLayer`
loads ours and theirs the same way:

* preprocess: `__call__(strings) -> {input_word_ids, input_mask, input_type_ids}`,
  `tokenize(strings) -> RaggedTensor [batch, (words), (wordpieces)]` and
  `bert_pack_inputs(segments, seq_length) -> dict`.
* encoder: `__call__(inputs, training=False) -> {pooled_output, sequence_output,
  encoder_outputs, default}` and the reusable-SavedModel attributes `variables`,
  `trainable_variables` and `regularization_losses` as plain lists. Ours also takes
  `pooled_only=True`, for classifiers (`BertEncoder.call`).

The encoder is written with plain TensorFlow ops rather than Keras layers so that the saved
graph is small, compiles under XLA and can bake a compute dtype (bfloat16) into the graph:
Keras mixed-precision policies do not reach inside a `hub.KerasLayer`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

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

# Exact GELU, x * Phi(x): Phi(x) = (1 + erf(x / sqrt 2)) / 2 and Phi'(x) = exp(-x^2 / 2) / sqrt(2 pi).
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# The two functions below compute in float32 on bfloat16 (or float32) tensors and recompute in
# their gradient what autodiff would keep: left to it, each wrote float32 copies of its input
# for the backward pass (GELU three of its [tokens, 4 x width] input, 75 MB a layer for MiniLM
# at batch 32 and 128 tokens, where the bfloat16 input is 12.6 MB), and under CPU fusion the
# memory traffic cost more than the arithmetic saved (GELU 1.03x a step, the layer norm another
# 1.02x, bench/README.md).
# The recomputation waits on the incoming gradient (`_after`): otherwise graph optimisation
# merges it with the forward pass's identical ops, and XLA's clustering puts it in the forward
# loop, which then writes the float32 copies all the same.


def _after(dy: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """t, as an op that runs only once dy exists."""
    with tf.control_dependencies([dy]):
        return tf.identity(t)


@tf.custom_gradient
def gelu(h: tf.Tensor):
    """Exact GELU in float32, returned in h's dtype. Phi is computed with erf, as BERT's and
    PyTorch's exact GELU do (`tf.nn.gelu` uses erfc, whose XLA expansion evaluates two branches)."""

    def grad(dy):
        x = tf.cast(_after(dy, h), tf.float32)
        cdf = 0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF))
        pdf = tf.exp(-0.5 * tf.square(x)) * _INV_SQRT_2PI
        return tf.cast(tf.cast(dy, tf.float32) * (cdf + x * pdf), h.dtype)

    x = tf.cast(h, tf.float32)
    return tf.cast(0.5 * x * (1.0 + tf.math.erf(x * _SQRT_HALF)), h.dtype), grad


def layer_norm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float) -> tf.Tensor:
    """Layer norm of a [tokens, width] x over its last axis in float32, returned in x's dtype."""

    def normalize(x):
        x = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        inv = tf.math.rsqrt(variance + epsilon)
        return (x - mean) * inv, inv

    @tf.custom_gradient
    def fn(x, gamma, beta):
        def grad(dy):
            x_hat, inv = normalize(_after(dy, x))
            dy = tf.cast(dy, tf.float32)
            d_hat = dy * gamma
            dx = inv * (d_hat - tf.reduce_mean(d_hat, axis=-1, keepdims=True)
                        - x_hat * tf.reduce_mean(d_hat * x_hat, axis=-1, keepdims=True))
            return tf.cast(dx, x.dtype), tf.reduce_sum(dy * x_hat, axis=0), tf.reduce_sum(dy, axis=0)

        return tf.cast(normalize(x)[0] * gamma + beta, x.dtype), grad

    return fn(x, gamma, beta)


def _in_float32(act):
    def apply(h: tf.Tensor) -> tf.Tensor:
        return tf.cast(act(tf.cast(h, tf.float32)), h.dtype)

    return apply


# Each takes and returns the compute dtype and computes in float32 (see `BertEncoder.call`).
ACTIVATIONS = {
    "gelu": gelu,
    "gelu_new": _in_float32(lambda x: tf.nn.gelu(x, approximate=True)),
    "gelu_pytorch_tanh": _in_float32(lambda x: tf.nn.gelu(x, approximate=True)),
    "relu": _in_float32(tf.nn.relu),
}


def _mix32(x: tf.Tensor) -> tf.Tensor:
    """A bijective 32-bit integer finalizer (Wellons' "lowbias32"): every output bit depends on
    every input bit, so consecutive inputs give independent-looking outputs."""
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(shift, tf.uint32)))
        x = x * tf.constant(multiplier, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def dropout(x: tf.Tensor, rate: float) -> tf.Tensor:
    """Inverted dropout whose mask is a hash of each element's index under two random keys.

    A random-number op per element (`tf.nn.dropout`'s float32 draws, or 16-bit integer draws)
    runs outside XLA's fused loops and writes its draws to memory; on CPUs that was 7 % of a
    training step at 128 tokens (attention-probability dropout alone is batch x heads x seq^2
    values a layer). Here only the two 32-bit keys are drawn (from the seeded stateful generator,
    so `tf.random.set_seed` still makes runs repeatable); the mask is `mix32(index * key0 + key1)`
    (SplitMix's construction: an odd multiplier, an offset, a bijective finalizer), integer
    arithmetic that CPU fusion and `jit_compile` fuse into the loop that applies the mask. Each
    element is dropped with probability `rate` to within 2^-32 (bench/README.md: 1.13x a step).
    """
    keys = tf.random.uniform([2], minval=-(2**31), maxval=2**31 - 1, dtype=tf.int32)
    keys = tf.bitcast(keys, tf.uint32)
    index = tf.bitcast(tf.range(tf.size(x)), tf.uint32)
    multiplier = tf.bitwise.bitwise_or(keys[0], tf.constant(1, tf.uint32))
    bits = _mix32(index * multiplier + keys[1])
    threshold = tf.constant(min(round(rate * 2**32), 2**32 - 1), tf.uint32)
    keep = tf.reshape(bits >= threshold, tf.shape(x))
    return tf.where(keep, x * tf.cast(1.0 / (1.0 - rate), x.dtype), tf.zeros_like(x))


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


class BertEncoder(tf.Module):
    """A BERT transformer stack over `tf.Variable`s, computing in `compute_dtype`.

    Variables are always float32 (the optimizer's master copy); with bfloat16 compute they are
    cast at use, and the matmuls and the tensors between them are bfloat16, while layer norms,
    softmax, the activation and outputs compute in float32 (see `call`).
    """

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
        self._dtype = tf.as_dtype(compute_dtype)
        self._act = ACTIVATIONS[config.hidden_act]
        with self.name_scope:
            self.weights = {
                key: tf.Variable(value.astype(np.float32), name=key.replace(".", "/"))
                for key, value in sorted(weights.items())
            }

    def _dense(self, x: tf.Tensor, prefix: str, scale: float | None = None) -> tf.Tensor:
        # x is [tokens, width]: one 2-D matmul. On a [batch, seq, width] input, the kernel's
        # gradient would be a batched matmul per example followed by a sum over the batch.
        kernel, bias = self.weights[prefix + ".kernel"], self.weights[prefix + ".bias"]
        if scale is not None:  # (x W + b) * s, computed as x (W s) + b s on the small weights
            kernel, bias = kernel * scale, bias * scale
        return tf.matmul(x, tf.cast(kernel, self._dtype)) + tf.cast(bias, self._dtype)

    def _layer_norm(self, x: tf.Tensor, prefix: str) -> tf.Tensor:
        return layer_norm(x, self.weights[prefix + ".gamma"], self.weights[prefix + ".beta"],
                          self.config.layer_norm_eps)

    def _dropout(self, x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
        if training and rate > 0:
            return dropout(x, rate)
        return x

    def call(
        self, inputs: dict[str, tf.Tensor], training: bool = False, pooled_only: bool = False
    ) -> dict:
        """TF-Hub's encoder outputs; with `pooled_only`, just `pooled_output` (and `default`).

        A classifier reads only the pooled [CLS] vector, and in the last layer that depends on
        the [CLS] row alone (keys and values still span the sequence), so `pooled_only` computes
        the last layer for that row: the same pooled output for about 1/num_layers less work,
        which graph pruning does not find by itself (the gradient still runs through an unused
        `sequence_output`). `hub.KerasLayer(..., arguments={"pooled_only": True})` passes it.
        """
        cfg = self.config
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        mask = tf.cast(inputs["input_mask"], tf.int32)
        type_ids = tf.cast(inputs["input_type_ids"], tf.int32)
        batch, seq = tf.shape(word_ids)[0], tf.shape(word_ids)[1]
        heads = cfg.num_attention_heads
        head_size = cfg.hidden_size // heads

        # The word table is read whole, then gathered from: `tf.gather` on the variable itself is a
        # sparse read (ResourceGather), after which TensorFlow copies the table (47 MB for
        # MiniLM) at every dense read, and AdamW's update reads it and its slots several times a
        # step. The gradient is the same.
        x = (
            tf.gather(self.weights["embeddings.word"].read_value(), word_ids)
            + tf.gather(self.weights["embeddings.type"], type_ids)
            + self.weights["embeddings.position"][tf.newaxis, :seq]
        )
        # The hidden states flow as [batch * seq, width] so every dense layer is one 2-D matmul.
        x = tf.reshape(tf.cast(x, self._dtype), [-1, cfg.hidden_size])
        x = self._layer_norm(x, "embeddings.norm")
        x = self._dropout(x, cfg.hidden_dropout_prob, training)
        # Additive attention bias: 0 where attended, a large negative number on padding.
        bias = (1.0 - tf.cast(mask[:, tf.newaxis, tf.newaxis, :], tf.float32)) * -1e9
        scale = 1.0 / math.sqrt(head_size)

        def split_heads(t):  # [batch * length, width] -> [batch, heads, length, head_size]
            t = tf.reshape(t, [batch, -1, heads, head_size])
            return tf.transpose(t, [0, 2, 1, 3])

        def unflatten(t):
            return tf.reshape(tf.cast(t, tf.float32), [batch, seq, cfg.hidden_size])

        encoder_outputs = []
        for i in range(cfg.num_hidden_layers):
            p = f"layer_{i}."
            k = split_heads(self._dense(x, p + "key"))
            v = split_heads(self._dense(x, p + "value"))
            if pooled_only and i == cfg.num_hidden_layers - 1:
                x = tf.reshape(x, [batch, seq, cfg.hidden_size])[:, 0, :]  # queries: [CLS] only
            q = split_heads(self._dense(x, p + "query", scale=scale))
            # The scores are batch x heads x seq^2: no extra pass over them for the 1/sqrt(d)
            # scale (folded into the query weights above). Softmax and the activation compute in
            # float32: under CPU fusion XLA computed them 1.6-2.6x slower in bfloat16 than with
            # the casts around them, which it fuses into the same loop (bench/README.md).
            scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) + bias
            probs = tf.cast(tf.nn.softmax(scores, axis=-1), self._dtype)
            probs = self._dropout(probs, cfg.attention_probs_dropout_prob, training)
            context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
            context = tf.reshape(context, [-1, cfg.hidden_size])
            attn = self._dropout(self._dense(context, p + "attention_output"),
                                 cfg.hidden_dropout_prob, training)
            x = self._layer_norm(x + attn, p + "attention_norm")
            h = self._dense(x, p + "intermediate")
            h = self._act(h)
            h = self._dropout(self._dense(h, p + "output"), cfg.hidden_dropout_prob, training)
            x = self._layer_norm(x + h, p + "output_norm")
            if not pooled_only:
                encoder_outputs.append(unflatten(x))

        first = x if pooled_only else tf.reshape(x, [batch, seq, cfg.hidden_size])[:, 0, :]
        pooled_output = tf.cast(tf.tanh(self._dense(first, "pooler")), tf.float32)
        if pooled_only:
            return {"pooled_output": pooled_output, "default": pooled_output}
        return {
            "pooled_output": pooled_output,
            "sequence_output": encoder_outputs[-1],
            "encoder_outputs": encoder_outputs,
            "default": pooled_output,
        }


def encoder_input_spec() -> dict[str, tf.TensorSpec]:
    return {
        name: tf.TensorSpec([None, None], tf.int32, name=name)
        for name in ("input_word_ids", "input_mask", "input_type_ids")
    }


def encoder_savable(encoder: BertEncoder) -> tf.Module:
    """Wrap an encoder as a TF-Hub reusable SavedModel root.

    `hub.KerasLayer` reads `variables`, `trainable_variables` and `regularization_losses` as
    saved children of the root, so they are assigned as plain lists (a tf.Module's properties
    of those names are not saved). `__call__` is traced for each value of `training` (and of
    `pooled_only`) instead of branching on it: a `tf.cond` around random dropout does not
    compile under XLA.
    """
    root = tf.__internal__.tracking.AutoTrackable()
    root.encoder = encoder
    root.variables = list(encoder.variables)
    root.trainable_variables = list(encoder.trainable_variables)
    root.regularization_losses = []
    root.__call__ = tf.function(encoder.call)
    for training in (False, True):
        for pooled_only in (False, True):
            root.__call__.get_concrete_function(
                encoder_input_spec(), training=training, pooled_only=pooled_only
            )
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
