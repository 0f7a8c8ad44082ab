"""app.model.bert_fast: each CPU speed technique does what it claims and keeps the encoder's function
(its agreement with the plain encoder is in test_bert.py)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the preprocessor uses)

from app.model.bert_fast import FastBertEncoder


def test_pooled_only_call_gives_the_same_pooled_output(tiny_hub):
    enc = tf.saved_model.load(str(tiny_hub / "encoder"))
    pre = tf.saved_model.load(str(tiny_hub / "preprocess"))
    tokens = pre.tokenize(tf.constant(["good film", "bad film, very bad", "the story was great"]))
    inputs = pre.bert_pack_inputs([tokens], seq_length=tf.constant(12))  # padded rows too
    full = enc(inputs, training=False)
    short = enc(inputs, training=False, pooled_only=True)
    assert sorted(short) == ["default", "pooled_output"]
    assert short["pooled_output"].shape == (3, 32)
    np.testing.assert_allclose(short["pooled_output"], full["pooled_output"], atol=1e-6, rtol=0)
    trained = enc(inputs, training=True, pooled_only=True)["pooled_output"]
    assert trained.shape == (3, 32) and not np.allclose(trained, full["pooled_output"])


def test_dropout_drops_at_the_rate_and_rescales_the_rest():
    from app.model.bert_fast import dropout

    tf.random.set_seed(0)
    for dtype, rate in ((tf.float32, 0.1), (tf.bfloat16, 0.1), (tf.float32, 0.5)):
        x = tf.ones([64, 12, 129], dtype)
        y = dropout(x, rate).numpy().astype(np.float32)
        assert y.dtype == np.float32 and y.shape == (64, 12, 129)
        dropped = np.mean(y == 0)
        assert abs(dropped - rate) < 0.005, (dtype, rate, dropped)
        np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-2)


def test_dropout_masks_are_independent_fresh_and_seeded():
    """The mask is a hash of the element index: neighbours, calls and rows must not be related."""
    from app.model.bert_fast import dropout

    def masks(calls):
        tf.random.set_seed(7)
        return [dropout(tf.ones([256, 512]), 0.5).numpy() == 0 for _ in range(calls)]

    first, second, third = masks(3)
    for a, b in ((first, second), (second, third), (first, third)):
        assert abs(np.mean(a == b) - 0.5) < 0.01  # a fresh mask on every call
    flat = first.ravel()
    for lag in (1, 2, 512):  # the next element, the one after, the same column in the next row
        assert abs(np.mean(flat[:-lag] & flat[lag:]) - 0.25) < 0.01, lag
    # Every row drops about half, and no row repeats another.
    assert np.all(np.abs(first.mean(axis=1) - 0.5) < 0.1)
    assert len({row.tobytes() for row in first}) == 256
    again = masks(3)  # tf.random.set_seed makes the masks repeatable
    assert all(np.array_equal(a, b) for a, b in zip(again, (first, second, third), strict=True))


def _layer_norm_reference(x, gamma, beta):
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
    return tf.cast((x32 - mean) * tf.math.rsqrt(variance + 1e-12) * gamma + beta, x.dtype)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_gelu_and_layer_norm_equal_autodiff_in_values_and_gradients(dtype):
    from app.model.bert_fast import gelu, layer_norm

    rng = np.random.default_rng(0)
    x = tf.cast(rng.normal(size=(64, 48)) * 3 + 1, dtype)
    gamma, beta = (tf.Variable(rng.normal(size=48).astype(np.float32)) for _ in range(2))
    upstream = tf.constant(rng.normal(size=(64, 48)), tf.float32)
    ours = (gelu, lambda x: layer_norm(x, gamma, beta, 1e-12))
    references = (lambda x: tf.cast(tf.nn.gelu(tf.cast(x, tf.float32), approximate=False), dtype),
                  lambda x: _layer_norm_reference(x, gamma, beta))
    for fn, reference in zip(ours, references, strict=True):
        results = []
        for f in (fn, reference):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = f(x)
                loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
            results.append([y, *tape.gradient(loss, [x, gamma, beta])])
        assert results[0][0].dtype == results[0][1].dtype == dtype
        for a, b in zip(*results, strict=True):
            if b is None:  # GELU has no weights
                assert a is None
                continue
            # float32: the same to rounding; bfloat16: at most one unit in the last place apart
            np.testing.assert_allclose(tf.cast(a, tf.float32), tf.cast(b, tf.float32),
                                       rtol=1e-5 if dtype == tf.float32 else 1e-2, atol=1e-5)


def test_gelu_and_layer_norm_gradients_recompute_after_the_incoming_gradient():
    """Their speed rests on this: the backward pass recomputes from the input once the incoming
    gradient exists, so graph optimisation cannot fold it into the forward pass."""
    from app.model.bert_fast import gelu, layer_norm

    def gradient_graph(fn):
        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
            return tape.gradient(y, x, output_gradients=tf.ones_like(y) * 2.0)

        return step.get_concrete_function(tf.TensorSpec([8, 16], tf.bfloat16)).graph

    gamma, beta = tf.Variable(tf.ones([16])), tf.Variable(tf.zeros([16]))
    for fn, recomputed in ((gelu, "Erf"), (lambda x: layer_norm(x, gamma, beta, 1e-12), "Rsqrt")):
        graph = gradient_graph(fn)
        after, frontier = set(), [op for op in graph.get_operations() if op.control_inputs]
        while frontier:  # everything downstream of an op that waits on a control input
            op = frontier.pop()
            if op.name not in after:
                after.add(op.name)
                frontier += [c for out in op.outputs for c in out.consumers()]
        downstream = {graph.get_operation_by_name(n).type for n in after}
        assert recomputed in downstream, (recomputed, sorted(downstream))


def test_word_table_is_only_read_whole(tiny_weights):
    # A sparse read of a variable (ResourceGather) switches TensorFlow to copying it at every
    # later dense read, and AdamW reads the table several times a step.
    config, weights = tiny_weights
    enc = FastBertEncoder(config, weights)
    spec = {n: tf.TensorSpec([None, None], tf.int32)
            for n in ("input_word_ids", "input_mask", "input_type_ids")}
    for training in (False, True):
        graph = tf.function(lambda x, t=training: enc.call(x, training=t)).get_concrete_function(spec).graph
        handles = {id(outer): inner.name for outer, inner in graph.captures}
        uses = {name: {op.type for op in graph.get_operations()
                       if handles[id(var.handle)] in {t.name for t in op.inputs}}
                for name, var in enc.weights.items() if name.startswith("embeddings.")}
        assert uses["embeddings.word"] == {"ReadVariableOp"}, (training, uses)
        assert "ResourceGather" in uses["embeddings.type"]  # the check sees sparse reads


def test_bfloat16_compute_is_close_to_float32(tiny_weights):
    config, weights = tiny_weights
    fp32, bf16 = FastBertEncoder(config, weights), FastBertEncoder(config, weights, "bfloat16")
    rng = np.random.default_rng(0)
    ids = tf.constant(rng.integers(5, config.vocab_size, size=(2, 10)), tf.int32)
    x = {"input_word_ids": ids, "input_mask": tf.ones_like(ids), "input_type_ids": tf.zeros_like(ids)}
    expected, got = fp32.call(x)["pooled_output"].numpy(), bf16.call(x)["pooled_output"].numpy()
    assert got.dtype == np.float32 and all(v.dtype == tf.float32 for v in bf16.variables)
    np.testing.assert_allclose(got, expected, atol=3e-2)
    assert not np.array_equal(got, expected)
    # Matmuls in bfloat16; softmax and GELU in float32 (XLA's CPU fusion computes them faster so).
    for training in (False, True):
        dtypes = _op_dtypes(lambda inputs, t=training: bf16.call(inputs, training=t), x)
        assert "bfloat16" in dtypes["MatMul"] and "bfloat16" in dtypes["BatchMatMulV2"], training
        assert dtypes["Softmax"] == {"float32"}, training
        assert dtypes["Erf"] == {"float32"}, training  # exact GELU: x (1 + erf(x / sqrt(2))) / 2


def _op_dtypes(fn, *args) -> dict[str, set[str]]:
    """{op type: the dtypes (attr T) it runs in} over a traced function and the functions it calls."""
    graph_def = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    found: dict[str, set[str]] = {}
    for node in nodes:
        if "T" in node.attr:  # a type, or a list of types (IdentityN, as custom gradients use)
            types = node.attr["T"].list.type or [node.attr["T"].type]
            found.setdefault(node.op, set()).update(tf.dtypes.as_dtype(t).name for t in types)
    return found



