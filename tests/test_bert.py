"""app.model.bert: the preprocessor, the plain reference encoder, and the fast encoder's agreement
with it. Encoder behaviour that both SavedModels must have is checked on both."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the ops the preprocessor uses)

from app.model.bert import INPUT_NAMES, BertEncoder
from app.model.bert_fast import FastBertEncoder

IMPLEMENTATIONS = ["fast", "plain"]


@pytest.fixture
def hub_dir(request, tiny_hub, tiny_hub_plain):
    return {"fast": tiny_hub, "plain": tiny_hub_plain}[request.param]


# ----------------------------------------------------------------------------- preprocessor


def test_preprocess_outputs_fixed_length_int32(tiny_hub):
    pre = tf.saved_model.load(str(tiny_hub / "preprocess"))
    out = pre(tf.constant(["The film was GOOD.", ""]))
    assert sorted(out) == ["input_mask", "input_type_ids", "input_word_ids"]
    for v in out.values():
        assert v.dtype == tf.int32 and v.shape == (2, 32)
    ids, mask = out["input_word_ids"].numpy(), out["input_mask"].numpy()
    vocab = (tiny_hub / "preprocess" / "assets" / "vocab.txt").read_text().splitlines()
    # Lower-cased, punctuation split off: [CLS] the film was good . [SEP]
    assert [vocab[i] for i in ids[0, :7]] == ["[CLS]", "the", "film", "was", "good", ".", "[SEP]"]
    assert mask[0].sum() == 7 and ids[0, 7:].sum() == 0
    # An empty string is still a valid input: [CLS] [SEP].
    assert [vocab[i] for i in ids[1, :2]] == ["[CLS]", "[SEP]"] and mask[1].sum() == 2


def test_tokenize_and_pack_pairs_with_chosen_length(tiny_hub):
    pre = tf.saved_model.load(str(tiny_hub / "preprocess"))
    tokens = pre.tokenize(tf.constant(["good film", "xyz"]))
    assert isinstance(tokens, tf.RaggedTensor) and tokens.shape.rank == 3
    assert tokens.dtype == tf.int32
    # "xyz" is not a word of the vocabulary: word pieces x ##y ##z.
    assert len(tokens[1][0]) == 3
    a, b = pre.tokenize(tf.constant(["good film"])), pre.tokenize(tf.constant(["bad"]))
    packed = pre.bert_pack_inputs([a, b], seq_length=tf.constant(8))
    assert packed["input_word_ids"].shape == (1, 8)
    assert packed["input_type_ids"].numpy()[0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert packed["input_mask"].numpy()[0].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    # Too long for the budget: trimmed round-robin, [SEP] kept at the end.
    long = pre.tokenize(tf.constant([" ".join(["good"] * 50)]))
    packed = pre.bert_pack_inputs([long], seq_length=tf.constant(10))
    vocab = (tiny_hub / "preprocess" / "assets" / "vocab.txt").read_text().splitlines()
    assert vocab[int(packed["input_word_ids"][0, -1])] == "[SEP]"


# ----------------------------------------------------------------------------- both encoders


@pytest.mark.parametrize("hub_dir", IMPLEMENTATIONS, indirect=True)
def test_encoder_outputs_and_dropout_only_in_training(hub_dir):
    enc = tf.saved_model.load(str(hub_dir / "encoder"))
    pre = tf.saved_model.load(str(hub_dir / "preprocess"))
    inputs = pre(tf.constant(["good film", "bad film, very bad"]))
    out = enc(inputs, training=False)
    assert out["pooled_output"].shape == (2, 32) and out["pooled_output"].dtype == tf.float32
    assert out["sequence_output"].shape == (2, 32, 32)
    assert len(out["encoder_outputs"]) == 2
    np.testing.assert_array_equal(out["default"], out["pooled_output"])
    np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])
    again = enc(inputs, training=False)
    np.testing.assert_array_equal(out["pooled_output"], again["pooled_output"])
    trained = enc(inputs, training=True)
    assert not np.allclose(out["sequence_output"], trained["sequence_output"])


@pytest.mark.parametrize("hub_dir", IMPLEMENTATIONS, indirect=True)
def test_padding_does_not_change_unpadded_outputs(hub_dir):
    pre = tf.saved_model.load(str(hub_dir / "preprocess"))
    enc = tf.saved_model.load(str(hub_dir / "encoder"))
    tokens = pre.tokenize(tf.constant(["the story was great"]))
    short = enc(pre.bert_pack_inputs([tokens], seq_length=tf.constant(8)))
    long = enc(pre.bert_pack_inputs([tokens], seq_length=tf.constant(32)))
    np.testing.assert_allclose(short["pooled_output"], long["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(short["sequence_output"][:, :6], long["sequence_output"][:, :6], atol=1e-5)


@pytest.mark.parametrize("hub_dir, pooled_only", [("fast", True), ("plain", False)], indirect=["hub_dir"])
def test_hub_keras_layer_trains_every_encoder_weight(hub_dir, pooled_only):
    import tf_keras

    layer = hub.KerasLayer(str(hub_dir / "encoder"), trainable=True, name="encoder",
                           arguments={"pooled_only": True} if pooled_only else None)
    inputs = {n: tf_keras.Input([None], dtype=tf.int32, name=n) for n in INPUT_NAMES}
    probs = tf_keras.layers.Dense(2, activation="softmax", name="head")(layer(inputs)["pooled_output"])
    model = tf_keras.Model(inputs, probs)
    enc = tf.saved_model.load(str(hub_dir / "encoder"))
    assert len(layer.trainable_weights) == len(enc.variables) > 0
    assert layer.non_trainable_weights == []
    pre = tf.saved_model.load(str(hub_dir / "preprocess"))
    x = {k: v.numpy() for k, v in pre(tf.constant(["good", "bad", "great", "awful"])).items()}
    before = [w.numpy().copy() for w in layer.trainable_weights]
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([1, 0, 1, 0]), epochs=1, batch_size=4, verbose=0)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, layer.trainable_weights, strict=True)]
    assert all(changed), f"{changed.count(False)} encoder weights did not change"


@pytest.mark.parametrize("hub_dir", IMPLEMENTATIONS, indirect=True)
def test_encoder_compiles_under_xla(hub_dir):
    enc = tf.saved_model.load(str(hub_dir / "encoder"))
    pre = tf.saved_model.load(str(hub_dir / "preprocess"))
    inputs = pre(tf.constant(["good film"]))

    @tf.function(jit_compile=True)
    def run(x, training, pooled_only):
        extra = {"pooled_only": True} if pooled_only else {}
        return enc(x, training=training, **extra)["pooled_output"]

    for training in (False, True):
        for pooled_only in (False, True) if _takes_pooled_only(hub_dir) else (False,):
            assert run(inputs, training, pooled_only).shape == (1, 32)
            assert "HloModule" in run.experimental_get_compiler_ir(inputs, training, pooled_only)(stage="hlo")


def _takes_pooled_only(hub_dir) -> bool:
    return json.loads((hub_dir / "bertclf_convert.json").read_text())["pooled_only"]


# ----------------------------------------------------------------------------- plain vs fast


def _inputs(vocab_size: int, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Three texts of 12, 7 and 3 tokens, padded to 12."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(3, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 7:] = mask[2, 3:] = 0
    ids = ids * mask
    return {"input_word_ids": tf.constant(ids), "input_mask": tf.constant(mask),
            "input_type_ids": tf.constant((np.arange(12) >= 6).astype(np.int32) * mask)}, mask


def _outputs_and_gradients(encoder, inputs, mask, pooled_only=False):
    """Outputs, and the gradients of a loss over the pooled output and (unless `pooled_only`,
    a classifier's loss) the unpadded sequence output."""
    rng = np.random.default_rng(1)
    u_pool = tf.constant(rng.normal(size=(3, encoder.config.hidden_size)), tf.float32)
    u_seq = tf.constant(rng.normal(size=(3, 12, encoder.config.hidden_size)) * mask[..., None], tf.float32)
    kwargs = {"pooled_only": True} if pooled_only and encoder.supports_pooled_only else {}
    with tf.GradientTape() as tape:
        out = encoder.call(inputs, training=False, **kwargs)
        loss = tf.reduce_sum(out["pooled_output"] * u_pool)
        if not pooled_only:
            loss += tf.reduce_sum(out["sequence_output"] * u_seq)
    grads = tape.gradient(loss, [encoder.weights[k] for k in sorted(encoder.weights)])
    return out, [tf.convert_to_tensor(g).numpy() for g in grads]


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("bfloat16", 5e-2)])
def test_plain_and_fast_encoders_agree_in_outputs_and_gradients(tiny_weights, dtype, tol):
    """The same function of the same weights: outputs to within rounding, and every weight's
    gradient (relative to its size; a key bias's true gradient is zero, softmax ignores a
    constant added to every score, so each is also held to a floor set by the largest)."""
    config, weights = tiny_weights
    inputs, mask = _inputs(config.vocab_size)
    plain, plain_grads = _outputs_and_gradients(BertEncoder(config, weights, dtype), inputs, mask)
    fast_encoder = FastBertEncoder(config, weights, dtype)
    fast, fast_grads = _outputs_and_gradients(fast_encoder, inputs, mask)
    real = mask.astype(bool)
    scale = np.abs(plain["sequence_output"].numpy()[real]).max()
    np.testing.assert_allclose(fast["pooled_output"], plain["pooled_output"], rtol=0, atol=tol * 0.3)
    for a, b in zip(fast["encoder_outputs"], plain["encoder_outputs"], strict=True):
        np.testing.assert_allclose(a.numpy()[real], b.numpy()[real], rtol=0, atol=tol * scale)
    floor = tol * max(np.linalg.norm(g) for g in plain_grads)
    for name, a, b in zip(sorted(weights), fast_grads, plain_grads, strict=True):
        assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b) + floor, name
    # The classifier's call: the pooled output alone, its gradients the same.
    short, short_grads = _outputs_and_gradients(fast_encoder, inputs, mask, pooled_only=True)
    pooled_only_plain, pooled_plain_grads = _outputs_and_gradients(BertEncoder(config, weights, dtype),
                                                                   inputs, mask, pooled_only=True)
    np.testing.assert_allclose(short["pooled_output"], pooled_only_plain["pooled_output"], rtol=0,
                               atol=tol * 0.3)
    floor = tol * max(np.linalg.norm(g) for g in pooled_plain_grads)
    for name, a, b in zip(sorted(weights), short_grads, pooled_plain_grads, strict=True):
        assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b) + floor, name


def test_the_plain_encoder_is_written_with_standard_ops(tiny_weights):
    """The reference uses TensorFlow's own GELU, dropout, gather and moments: no custom
    gradients, no hashed masks, no whole-table reads."""
    config, weights = tiny_weights
    enc = BertEncoder(config, weights)
    inputs, _ = _inputs(config.vocab_size)
    graph = tf.function(lambda x: enc.call(x, training=True)).get_concrete_function(inputs).graph
    ops = {op.type for op in graph.get_operations()}
    assert {"ResourceGather", "RandomUniform", "Erfc", "Einsum"} <= ops  # tf.nn.gelu: erfc
    assert not ops & {"IdentityN", "BitwiseXor", "RightShift"}  # custom gradients, hashed masks
    assert not BertEncoder.supports_pooled_only and FastBertEncoder.supports_pooled_only


@pytest.mark.parametrize("encoder_class", [BertEncoder, FastBertEncoder])
def test_no_tensor_of_a_training_step_is_larger_than_the_largest_activation_or_weight(tiny_weights,
                                                                                     encoder_class):
    """TensorFlow's einsum gradient with "...i,io->...o" built a [B, S, I, O] tensor per dense
    layer (gigabytes for MiniLM at batch 32); this would catch that and its kind."""
    config, weights = tiny_weights
    enc = encoder_class(config, weights)
    inputs, _ = _inputs(config.vocab_size)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(enc.call(x, training=True)["pooled_output"])
        return tape.gradient(loss, list(enc.weights.values()))

    b, s = inputs["input_word_ids"].shape
    largest = max(b * config.num_attention_heads * s * s, b * s * config.intermediate_size,
                  config.vocab_size * config.hidden_size, config.hidden_size * config.intermediate_size)
    graph = step.get_concrete_function(inputs).graph
    for op in graph.get_operations():
        for out in op.outputs:
            if out.shape.is_fully_defined():
                assert out.shape.num_elements() <= largest, (op.type, op.name, out.shape)
