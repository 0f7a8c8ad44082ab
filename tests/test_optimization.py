"""app.training.optimization: the warm-up schedule, no decay on norms and biases, the fused AdamW step."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf


def test_warmup_then_linear_decay():
    from app.training.optimization import WarmupLinearDecay

    s = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    values = [float(s(i)) for i in (0, 4, 9, 10, 55, 100)]
    assert values == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3, 5e-4, 0.0], rel=1e-5)


def test_no_weight_decay_on_layer_norm_and_bias():
    from app.training.optimization import create_optimizer

    kernel = tf.Variable([1.0, 1.0], name="layer_0/query/kernel")
    bias = tf.Variable([1.0, 1.0], name="layer_0/query/bias")
    gamma = tf.Variable([1.0, 1.0], name="layer_0/attention_norm/gamma")
    opt = create_optimizer(0.1, total_steps=10, warmup_fraction=0.0, weight_decay=0.5)
    opt.apply_gradients([(tf.zeros(2), v) for v in (kernel, bias, gamma)])
    assert kernel.numpy()[0] < 1.0  # decayed
    assert bias.numpy()[0] == 1.0 and gamma.numpy()[0] == 1.0


@pytest.mark.parametrize("sparse", [False, True])
def test_adamw_updates_as_tf_keras_adamw_does_in_one_kernel(sparse):
    from app.training.optimization import WarmupLinearDecay, create_optimizer

    rng = np.random.default_rng(0)
    initial = rng.normal(size=(10, 4)).astype(np.float32)
    ours_table, stock_table = tf.Variable(initial, name="word"), tf.Variable(initial, name="word")
    ours = create_optimizer(0.1, total_steps=10, warmup_fraction=0.0, weight_decay=0.5)
    stock = tf.keras.optimizers.AdamW(WarmupLinearDecay(0.1, 10, 0), weight_decay=0.5,
                                      epsilon=1e-6, global_clipnorm=1.0)
    if sparse:  # an embedding lookup's gradient, with a repeated row
        values = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))
        grad = tf.IndexedSlices(values, tf.constant([1, 3, 1]), tf.constant([10, 4]))
    else:
        grad = tf.constant(rng.normal(size=(10, 4)).astype(np.float32))

    def op_types(optimizer, table):
        step = tf.function(lambda: optimizer.apply_gradients([(grad, table)]))
        return {op.type for op in step.get_concrete_function().graph.get_operations()}

    # Ours: one fused Adam kernel and no scatter into the slots (which would put them in
    # copy-on-read mode); the stock optimizer has no fused kernel and scatters sparse gradients.
    ours_ops, stock_ops = op_types(ours, ours_table), op_types(stock, stock_table)
    assert "ResourceApplyAdam" in ours_ops and "ResourceApplyAdam" not in stock_ops
    assert not any("Scatter" in t for t in ours_ops)
    assert ("ResourceScatterAdd" in stock_ops) == sparse
    for _ in range(3):
        ours.apply_gradients([(grad, ours_table)])
        stock.apply_gradients([(grad, stock_table)])
    np.testing.assert_allclose(ours_table.numpy(), stock_table.numpy(), rtol=0, atol=1e-5)
    assert not np.allclose(ours_table.numpy()[0], initial[0])  # not lazy: every row moves


def test_learning_rate_factors_scale_the_step_of_the_named_variables_only():
    from app.training.optimization import create_optimizer

    # Adam's first step moves each weight by about the learning rate, whatever the gradient's size.
    head = tf.Variable([1.0, 1.0], name="classifier/kernel")
    encoder = tf.Variable([1.0, 1.0], name="layer_0/query/kernel")
    opt = create_optimizer(0.01, total_steps=10, warmup_fraction=0.0, weight_decay=0.0,
                           learning_rate_factors={"classifier/": 5.0})
    opt.apply_gradients([(tf.ones(2), v) for v in (head, encoder)])
    np.testing.assert_allclose(1.0 - head.numpy(), 0.05, rtol=1e-3)
    np.testing.assert_allclose(1.0 - encoder.numpy(), 0.01, rtol=1e-3)
    assert opt.get_config()["learning_rate_factors"] == {"classifier/": 5.0}


def test_layer_decay_slows_the_lower_layers_and_the_embeddings_only():
    from app.training.optimization import create_optimizer, layer_factor

    names = ["bert_encoder/embeddings/word", "bert_encoder/layer_0/query/kernel",
             "bert_encoder/layer_1/query/kernel", "bert_encoder/pooler/kernel", "classifier/kernel"]
    variables = [tf.Variable([1.0, 1.0], name=n) for n in names]
    opt = create_optimizer(0.01, total_steps=10, warmup_fraction=0.0, weight_decay=0.0, layer_decay=0.5)
    opt.apply_gradients([(tf.ones(2), v) for v in variables])
    # Two layers: the top one at the full rate, the one under it at half, the embeddings at a quarter.
    np.testing.assert_allclose([1.0 - v.numpy()[0] for v in variables],
                               [0.0025, 0.005, 0.01, 0.01, 0.01], rtol=1e-3)
    assert opt.get_config()["layer_decay"] == 0.5
    # TF-Hub's BERT encoders name their layers transformer/layer_N and their tables *_embeddings.
    assert layer_factor("transformer/layer_10/intermediate/kernel:0", 12, 0.9) == pytest.approx(0.9)
    assert layer_factor("word_embeddings/embeddings:0", 12, 0.9) == pytest.approx(0.9 ** 12)
    assert layer_factor("transformer/layer_0/intermediate/kernel:0", 12, 1.0) == 1.0


def test_layer_decay_finds_the_layers_of_the_hub_encoder_inside_the_classifier(tiny_hub):
    from app.training.optimization import create_optimizer, layer_factor
    from tests.conftest import tiny_classifier

    model, _ = tiny_classifier(tiny_hub)
    opt = create_optimizer(0.01, total_steps=10, layer_decay=0.8)
    opt.build(model.trainable_variables)
    assert opt.encoder_layers == 2  # the tiny encoder's
    factors = {v.name: layer_factor(v.name, opt.encoder_layers, 0.8) for v in model.trainable_variables}
    assert sorted(set(factors.values())) == pytest.approx([0.64, 0.8, 1.0])
    assert all(f == pytest.approx(0.64) for n, f in factors.items() if "embedding" in n)
