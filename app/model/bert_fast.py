"""The BERT encoder of `app.model.bert`, written for CPU training speed.

`FastBertEncoder` computes what `app.model.bert.BertEncoder` computes, on the same variables, with the
numerics described there; `app.convert --implementation fast` (the default) saves it. What it
does differently, each a function or method below, and what each bought is in `docs/speed.md`:

1. Hidden states flow as [B*S, W], so every dense layer is one 2-D matmul (`_dense`).
2. The attention's 1/sqrt(D) is folded into the query weights (`_attention`).
3. Dropout masks are a hash of each element's index under two random keys (`dropout`).
4. The word-embedding table is read whole, never gathered from as a variable (`_embed`).
5. GELU and layer norm recompute their float32 intermediates in the backward pass from their
   (bfloat16) input instead of keeping float32 copies (`gelu`, `layer_norm`).
6. `call(..., pooled_only=True)` computes the last layer for the [CLS] row alone.
"""

from __future__ import annotations

import math

import tensorflow as tf

from app.model.bert import BertEncoder

# Exact GELU, x * Phi(x): Phi(x) = (1 + erf(x / sqrt 2)) / 2 and Phi'(x) = exp(-x^2 / 2) / sqrt(2 pi).
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _after(dy: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """t, as an op that runs only once dy exists.

    The recomputing gradients below wait on their incoming gradient: otherwise graph
    optimisation merges the recomputation with the forward pass's identical ops, and XLA's
    clustering puts it in the forward loop, which then writes the float32 copies all the same.
    """
    with tf.control_dependencies([dy]):
        return tf.identity(t)


@tf.custom_gradient
def gelu(h: tf.Tensor):
    """Exact GELU in float32, returned in h's dtype; the gradient recomputes Phi from h.

    Left to autodiff, GELU kept three float32 copies of its [B*S, F] input for the backward pass
    (F = 4 W): more memory traffic than the arithmetic it saves. Phi is computed with erf, as
    BERT's and PyTorch's exact GELU do (`tf.nn.gelu` uses erfc, whose XLA expansion evaluates two
    branches)."""

    def grad(dy):
        x = tf.cast(_after(dy, h), tf.float32)
        cdf = 0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF))
        pdf = tf.exp(-0.5 * tf.square(x)) * _INV_SQRT_2PI
        return tf.cast(tf.cast(dy, tf.float32) * (cdf + x * pdf), h.dtype)

    x = tf.cast(h, tf.float32)
    return tf.cast(0.5 * x * (1.0 + tf.math.erf(x * _SQRT_HALF)), h.dtype), grad


def layer_norm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float) -> tf.Tensor:
    """Layer norm of a [tokens, width] x over its last axis in float32, returned in x's dtype;
    the gradient recomputes the normalised x and the row statistics from x (as `gelu` does)."""

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

    `tf.nn.dropout` draws a random number per element in an op that runs outside XLA's fused
    loops and writes its draws to memory (attention-probability dropout alone is B x H x S^2
    values a layer). Here only the two 32-bit keys are drawn (from the seeded stateful generator,
    so `tf.random.set_seed` still makes runs repeatable); the mask is `mix32(index * key0 + key1)`
    (SplitMix's construction: an odd multiplier, an offset, a bijective finalizer), integer
    arithmetic that CPU fusion and `jit_compile` fuse into the loop that applies the mask. Each
    element is dropped with probability `rate` to within 2^-32.
    """
    keys = tf.random.uniform([2], minval=-(2**31), maxval=2**31 - 1, dtype=tf.int32)
    keys = tf.bitcast(keys, tf.uint32)
    index = tf.bitcast(tf.range(tf.size(x)), tf.uint32)
    multiplier = tf.bitwise.bitwise_or(keys[0], tf.constant(1, tf.uint32))
    bits = _mix32(index * multiplier + keys[1])
    threshold = tf.constant(min(round(rate * 2**32), 2**32 - 1), tf.uint32)
    keep = tf.reshape(bits >= threshold, tf.shape(x))
    return tf.where(keep, x * tf.cast(1.0 / (1.0 - rate), x.dtype), tf.zeros_like(x))


class FastBertEncoder(BertEncoder):
    """`BertEncoder` for CPU training speed; the same variables, outputs and numerics."""

    supports_pooled_only = True

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False, pooled_only: bool = False
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
        batch, seq = tf.shape(word_ids)[0], tf.shape(word_ids)[1]
        x = self._embed(word_ids, tf.cast(inputs["input_type_ids"], tf.int32), training)  # [B*S, W]
        bias = (1.0 - tf.cast(mask[:, tf.newaxis, tf.newaxis, :], tf.float32)) * -1e9  # [B, 1, 1, S]
        encoder_outputs = []
        for i in range(cfg.num_hidden_layers):
            cls_only = pooled_only and i == cfg.num_hidden_layers - 1
            x = self._layer(x, bias, f"layer_{i}.", batch, training, cls_only)
            if not pooled_only:
                encoder_outputs.append(tf.reshape(tf.cast(x, tf.float32), [batch, seq, cfg.hidden_size]))
        first = x if pooled_only else tf.reshape(x, [batch, seq, cfg.hidden_size])[:, 0, :]  # [B, W]
        pooled = tf.cast(tf.tanh(self._dense(first, "pooler")), tf.float32)
        if pooled_only:
            return {"pooled_output": pooled, "default": pooled}
        return {"pooled_output": pooled, "sequence_output": encoder_outputs[-1],
                "encoder_outputs": encoder_outputs, "default": pooled}

    def _embed(self, word_ids: tf.Tensor, type_ids: tf.Tensor, training: bool) -> tf.Tensor:
        """[B, S] ids to [B*S, W] embeddings. The word table is read whole and then gathered from:
        `tf.gather` on the variable is a sparse read (ResourceGather), after which TensorFlow
        copies the table at every dense read, and AdamW reads it and its slots several times a
        step. The gradient is the same."""
        seq = tf.shape(word_ids)[1]
        x = (tf.gather(self.weights["embeddings.word"].read_value(), word_ids)
             + tf.gather(self.weights["embeddings.type"], type_ids)
             + self.weights["embeddings.position"][tf.newaxis, :seq])
        x = tf.reshape(tf.cast(x, self.compute_dtype), [-1, self.config.hidden_size])
        x = self._layer_norm(x, "embeddings.norm")
        return self._dropout(x, self.config.hidden_dropout_prob, training)

    def _layer(self, x: tf.Tensor, bias: tf.Tensor, p: str, batch: tf.Tensor, training: bool,
               cls_only: bool) -> tf.Tensor:
        """One transformer layer on [B*S, W]; with `cls_only`, its output is the [CLS] rows [B, W]."""
        rate = self.config.hidden_dropout_prob
        k, v = self._dense(x, p + "key"), self._dense(x, p + "value")
        if cls_only:
            x = tf.reshape(x, [batch, -1, self.config.hidden_size])[:, 0, :]  # queries: [CLS] only
        context = self._attention(x, k, v, bias, p, batch, training)
        x = self._layer_norm(x + self._dropout(self._dense(context, p + "attention_output"), rate, training),
                             p + "attention_norm")
        h = ACTIVATIONS[self.config.hidden_act](self._dense(x, p + "intermediate"))
        h = self._dropout(self._dense(h, p + "output"), rate, training)
        return self._layer_norm(x + h, p + "output_norm")

    def _attention(self, x, k, v, bias, p: str, batch, training: bool) -> tf.Tensor:
        """Queries from x ([B*Q, W], Q = S or 1), keys and values [B*S, W]; context [B*Q, W]."""
        heads = self.config.num_attention_heads
        head_size = self.config.hidden_size // heads

        def split_heads(t):  # [B*L, W] -> [B, H, L, D]
            return tf.transpose(tf.reshape(t, [batch, -1, heads, head_size]), [0, 2, 1, 3])

        # The scores are B x H x S^2: no extra pass over them for the 1/sqrt(D) scale.
        q = split_heads(self._dense(x, p + "query", scale=1.0 / math.sqrt(head_size)))
        scores = tf.cast(tf.matmul(q, split_heads(k), transpose_b=True), tf.float32) + bias
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), self.compute_dtype)
        probs = self._dropout(probs, self.config.attention_probs_dropout_prob, training)
        context = tf.transpose(tf.matmul(probs, split_heads(v)), [0, 2, 1, 3])
        return tf.reshape(context, [-1, self.config.hidden_size])

    def _dense(self, x: tf.Tensor, prefix: str, scale: float | None = None) -> tf.Tensor:
        # x is [tokens, width]: one 2-D matmul. On a [B, S, W] input, the kernel's gradient
        # would be a batched matmul per example followed by a sum over the batch.
        kernel, bias = self.weights[prefix + ".kernel"], self.weights[prefix + ".bias"]
        if scale is not None:  # (x W + b) * s, computed as x (W s) + b s on the small weights
            kernel, bias = kernel * scale, bias * scale
        return tf.matmul(x, tf.cast(kernel, self.compute_dtype)) + tf.cast(bias, self.compute_dtype)

    def _layer_norm(self, x: tf.Tensor, prefix: str) -> tf.Tensor:
        return layer_norm(x, self.weights[prefix + ".gamma"], self.weights[prefix + ".beta"],
                          self.config.layer_norm_eps)

    def _dropout(self, x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
        return dropout(x, rate) if training and rate > 0 else x
