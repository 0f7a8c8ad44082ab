"""app.convert: Hugging Face BERT checkpoint -> TF-Hub preprocess + encoder SavedModels."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the ops the preprocessor uses)

from app.convert import CheckpointError, convert, main
from tests.conftest import write_tiny_checkpoint

GOLDEN = Path(__file__).parent / "golden"


def test_converted_folders_and_metadata(tiny_hub):
    for sub in ("preprocess", "encoder"):
        assert (tiny_hub / sub / "saved_model.pb").is_file()
    assert (tiny_hub / "preprocess" / "assets" / "vocab.txt").is_file()
    meta = json.loads((tiny_hub / "bertclf_convert.json").read_text())
    assert meta["seq_length"] == 32 and meta["lower_case"] is True
    assert meta["config"]["num_hidden_layers"] == 2


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
    assert tokens[1].to_list() == [[tokens[1][0][0].numpy(), *tokens[1][0][1:].numpy()]]
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


def test_encoder_outputs_and_dropout_only_in_training(tiny_hub):
    enc = tf.saved_model.load(str(tiny_hub / "encoder"))
    pre = tf.saved_model.load(str(tiny_hub / "preprocess"))
    inputs = pre(tf.constant(["good film", "bad film, very bad"]))
    out = enc(inputs, training=False)
    assert out["pooled_output"].shape == (2, 32)
    assert out["sequence_output"].shape == (2, 32, 32)
    assert len(out["encoder_outputs"]) == 2
    np.testing.assert_array_equal(out["default"], out["pooled_output"])
    np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])
    again = enc(inputs, training=False)
    np.testing.assert_array_equal(out["pooled_output"], again["pooled_output"])
    trained = enc(inputs, training=True)
    assert not np.allclose(out["sequence_output"], trained["sequence_output"])


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
    from app.hub_bert import dropout

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
    from app.hub_bert import dropout

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
    from app.hub_bert import gelu, layer_norm

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
    from app.hub_bert import gelu, layer_norm

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


def test_padding_does_not_change_unpadded_outputs(tiny_hub):
    pre = tf.saved_model.load(str(tiny_hub / "preprocess"))
    enc = tf.saved_model.load(str(tiny_hub / "encoder"))
    tokens = pre.tokenize(tf.constant(["the story was great"]))
    short = enc(pre.bert_pack_inputs([tokens], seq_length=tf.constant(8)))
    long = enc(pre.bert_pack_inputs([tokens], seq_length=tf.constant(32)))
    np.testing.assert_allclose(short["pooled_output"], long["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(short["sequence_output"][:, :6], long["sequence_output"][:, :6], atol=1e-5)


@pytest.mark.parametrize("pooled_only", [False, True])
def test_hub_keras_layer_trains_every_encoder_weight(tiny_hub, pooled_only):
    import tf_keras

    layer = hub.KerasLayer(str(tiny_hub / "encoder"), trainable=True, name="encoder",
                           arguments={"pooled_only": True} if pooled_only else None)
    names = ("input_word_ids", "input_mask", "input_type_ids")
    inputs = {n: tf_keras.Input([None], dtype=tf.int32, name=n) for n in names}
    probs = tf_keras.layers.Dense(2, activation="softmax", name="head")(layer(inputs)["pooled_output"])
    model = tf_keras.Model(inputs, probs)
    enc = tf.saved_model.load(str(tiny_hub / "encoder"))
    assert len(layer.trainable_weights) == len(enc.variables) > 0
    assert layer.non_trainable_weights == []
    pre = tf.saved_model.load(str(tiny_hub / "preprocess"))
    x = {k: v.numpy() for k, v in pre(tf.constant(["good", "bad", "great", "awful"])).items()}
    before = [w.numpy().copy() for w in layer.trainable_weights]
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([1, 0, 1, 0]), epochs=1, batch_size=4, verbose=0)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, layer.trainable_weights, strict=True)]
    assert all(changed), f"{changed.count(False)} encoder weights did not change"


def test_word_table_is_only_read_whole(tiny_checkpoint):
    # A sparse read of a variable (ResourceGather) switches TensorFlow to copying it at every
    # later dense read, and AdamW reads the table several times a step.
    from app.convert import _expected_shapes, read_bert_config
    from app.hub_bert import BertEncoder

    config = read_bert_config(tiny_checkpoint / "config.json")
    rng = np.random.default_rng(0)
    enc = BertEncoder(config, {k: rng.normal(size=s).astype(np.float32)
                               for k, s in _expected_shapes(config).items()})
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


def test_encoder_compiles_under_xla(tiny_hub):
    enc = tf.saved_model.load(str(tiny_hub / "encoder"))
    pre = tf.saved_model.load(str(tiny_hub / "preprocess"))
    inputs = pre(tf.constant(["good film"]))

    @tf.function(jit_compile=True)
    def run(x, training, pooled_only):
        return enc(x, training=training, pooled_only=pooled_only)["pooled_output"]

    for training in (False, True):
        for pooled_only in (False, True):
            assert run(inputs, training, pooled_only).shape == (1, 32)
            graph = run.experimental_get_compiler_ir(inputs, training, pooled_only)(stage="hlo")
            assert "HloModule" in graph


def test_bfloat16_compute_is_close_to_float32(tiny_checkpoint, tiny_hub, tmp_path):
    out = convert(tiny_checkpoint, tmp_path / "bf16", seq_length=32, compute_dtype="bfloat16")
    pre = tf.saved_model.load(str(tiny_hub / "preprocess"))
    x = pre(tf.constant(["good film", "bad plot"]))
    fp32 = tf.saved_model.load(str(tiny_hub / "encoder"))(x)["pooled_output"].numpy()
    bf16_enc = tf.saved_model.load(str(out / "encoder"))
    bf16 = bf16_enc(x)["pooled_output"].numpy()
    assert bf16.dtype == np.float32
    assert all(v.dtype == tf.float32 for v in bf16_enc.variables)
    np.testing.assert_allclose(bf16, fp32, atol=3e-2)
    assert not np.array_equal(bf16, fp32)
    # Matmuls in bfloat16; softmax and GELU in float32 (XLA's CPU fusion computes them faster so).
    for training in (False, True):
        dtypes = _op_dtypes(lambda inputs, t=training: bf16_enc(inputs, training=t), x)
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


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_dir", "no such directory"),
        ("no_vocab", "missing vocab.txt"),
        ("not_bert", "is not BERT-like"),
        ("vocab_mismatch", "vocab_size="),
        ("bad_json", "cannot read JSON config"),
        ("bad_weights", "cannot read safetensors"),
        ("shape_mismatch", "config.json implies"),
        ("duplicate_token", "repeats line"),
    ],
)
def test_bad_checkpoints_get_clear_errors(tmp_path, breakage, message):
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    if breakage == "no_dir":
        shutil.rmtree(ckpt)
    elif breakage == "no_vocab":
        (ckpt / "vocab.txt").unlink()
    elif breakage == "not_bert":
        (ckpt / "config.json").write_text(json.dumps(dict(cfg, model_type="gpt2")))
    elif breakage == "vocab_mismatch":
        with open(ckpt / "vocab.txt", "a") as f:
            f.write("extra\n")
    elif breakage == "bad_json":
        (ckpt / "config.json").write_text("{not json")
    elif breakage == "bad_weights":
        (ckpt / "model.safetensors").write_bytes(b"\x00" * 20)
    elif breakage == "duplicate_token":
        lines = (ckpt / "vocab.txt").read_text().splitlines()
        (ckpt / "vocab.txt").write_text("\n".join(lines[:-1] + ["the"]) + "\n")
    elif breakage == "shape_mismatch":
        (ckpt / "config.json").write_text(json.dumps(dict(cfg, intermediate_size=48)))
    with pytest.raises(CheckpointError, match=message):
        convert(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_seq_length_above_position_embeddings_is_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="max_position_embeddings"):
        convert(tiny_checkpoint, tmp_path / "out", seq_length=512)


def test_cli_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "app.convert", "--checkpoint", str(tmp_path / "nope"),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 2
    assert "no such directory" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_converts(tiny_checkpoint, tmp_path, capsys):
    assert main(["--checkpoint", str(tiny_checkpoint), "--output", str(tmp_path / "o"),
                 "--seq-length", "16"]) == 0
    assert "wrote" in capsys.readouterr().out
    pre = tf.saved_model.load(str(tmp_path / "o" / "preprocess"))
    assert pre(tf.constant(["a"]))["input_word_ids"].shape == (1, 16)


# --- The real MiniLM weights against the Hugging Face reference (tests/golden, tools/) ---


@pytest.fixture(scope="module")
def minilm_hub(minilm_hub_cache):
    from app.encoders import DEFAULT_ENCODER

    return minilm_hub_cache / DEFAULT_ENCODER


@pytest.mark.minilm
def test_minilm_token_ids_match_reference(minilm_hub):
    golden = np.load(GOLDEN / "minilm_reference.npz")
    texts = json.loads((GOLDEN / "minilm_reference.json").read_text())["tokenizer_texts"]
    pre = tf.saved_model.load(str(minilm_hub / "preprocess"))
    ours = pre.tokenize(tf.constant(texts)).merge_dims(-2, -1)
    offsets = np.concatenate([[0], np.cumsum(golden["token_lengths"])])
    for i, text in enumerate(texts):
        expected = golden["token_ids"][offsets[i]:offsets[i + 1]]
        np.testing.assert_array_equal(ours[i].numpy(), expected, err_msg=repr(text[:60]))
    assert golden["token_lengths"][-1] > 5000  # the 5,000-word text was compared in full


@pytest.mark.minilm
def test_minilm_outputs_match_reference(minilm_hub):
    golden = np.load(GOLDEN / "minilm_reference.npz")
    meta = json.loads((GOLDEN / "minilm_reference.json").read_text())
    pre = tf.saved_model.load(str(minilm_hub / "preprocess"))
    enc = tf.saved_model.load(str(minilm_hub / "encoder"))
    inputs = pre.bert_pack_inputs([pre.tokenize(tf.constant(meta["model_texts"]))],
                                  seq_length=tf.constant(meta["model_seq_length"]))
    np.testing.assert_array_equal(inputs["input_word_ids"].numpy(), golden["input_word_ids"])
    out = enc(inputs, training=False)
    np.testing.assert_allclose(out["pooled_output"].numpy(), golden["pooled_output"], atol=1e-5, rtol=0)
    short = enc(inputs, training=False, pooled_only=True)["pooled_output"].numpy()
    np.testing.assert_allclose(short, golden["pooled_output"], atol=1e-5, rtol=0)
    seq = out["sequence_output"].numpy()
    ours = np.concatenate([seq[i, :n] for i, n in enumerate(golden["sequence_lengths"])])
    np.testing.assert_allclose(ours, golden["sequence_output"], atol=1e-4, rtol=0)
