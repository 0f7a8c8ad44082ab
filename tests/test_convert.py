"""app.convert: Hugging Face BERT checkpoint -> TF-Hub preprocess + encoder SavedModels, and the
fingerprint that says whether a cached conversion is current."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the preprocessor uses)

from app.convert import main
from app.model import conversion as convert_mod
from app.model.conversion import CheckpointError, convert, fingerprint
from tests.conftest import assert_clear_failure, run_in_process, run_module, write_tiny_checkpoint

GOLDEN = Path(__file__).parent / "golden"


def test_converted_folders_and_metadata(tiny_hub, tiny_hub_plain, tiny_checkpoint):
    for folder, implementation in ((tiny_hub, "fast"), (tiny_hub_plain, "plain")):
        for sub in ("preprocess", "encoder"):
            assert (folder / sub / "saved_model.pb").is_file()
        assert (folder / "preprocess" / "assets" / "vocab.txt").is_file()
        meta = json.loads((folder / "bertclf_convert.json").read_text())
        assert meta["seq_length"] == 32 and meta["lower_case"] is True
        assert meta["config"]["num_hidden_layers"] == 2
        assert (meta["implementation"], meta["compute_dtype"]) == (implementation, "float32")
        assert meta["pooled_only"] is (implementation == "fast")
        assert meta["fingerprint"] == fingerprint(tiny_checkpoint, 32, "float32", implementation)


def test_fingerprint_follows_the_converters_code_and_options(tiny_checkpoint, tmp_path, monkeypatch):
    base = fingerprint(tiny_checkpoint, 128, "float32", "fast")
    assert base == fingerprint(tiny_checkpoint, 128, "float32", "fast")
    others = {fingerprint(tiny_checkpoint, 64, "float32", "fast"),
              fingerprint(tiny_checkpoint, 128, "bfloat16", "fast"),
              fingerprint(tiny_checkpoint, 128, "float32", "plain")}
    assert base not in others and len(others) == 3
    # A change to the encoder's code (not to a comment) makes every cached conversion stale.
    code = tmp_path / "code"
    shutil.copytree(Path(convert_mod.__file__).parent, code)
    monkeypatch.setattr(convert_mod, "_CODE", code)
    assert fingerprint(tiny_checkpoint, 128, "float32", "fast") == base
    fast = code / "bert_fast.py"
    fast.write_text(fast.read_text() + "\n# a comment changes nothing\n")
    assert fingerprint(tiny_checkpoint, 128, "float32", "fast") == base
    fast.write_text(fast.read_text().replace("_SQRT_HALF = 1.0 / math.sqrt(2.0)", "_SQRT_HALF = 0.7071"))
    assert fingerprint(tiny_checkpoint, 128, "float32", "fast") != base
    assert fingerprint(tiny_checkpoint, 128, "float32", "plain") == fingerprint(
        tiny_checkpoint, 128, "float32", "plain")  # the plain encoder does not use bert_fast.py


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


def test_cli_refuses_bad_checkpoints_in_one_line(tmp_path):
    missing = run_in_process("convert", "--checkpoint", tmp_path / "nope", "--output", tmp_path / "out")
    assert_clear_failure(missing, "no such directory")
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 64)
    proc = run_module("convert", "--checkpoint", ckpt, "--output", tmp_path / "out")
    assert_clear_failure(proc, "cannot read safetensors")
    assert len(proc.stderr.splitlines()) == 1  # the error alone: nothing from TensorFlow's start-up
    assert not (tmp_path / "out").exists()


def test_cli_passes_its_options_on(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(convert_mod, "convert", lambda *args: calls.append(args) or Path(args[1]))
    assert main(["--checkpoint", str(tiny_checkpoint), "--output", str(tmp_path / "o"),
                 "--seq-length", "16", "--implementation", "plain", "--compute-dtype", "bfloat16"]) == 0
    assert calls == [(str(tiny_checkpoint), str(tmp_path / "o"), 16, "bfloat16", "plain")]
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--implementation must be one of"):
        convert(tiny_checkpoint, tmp_path / "x", implementation="turbo")


# --- The real MiniLM weights against the Hugging Face reference (tests/golden, tools/) ---


@pytest.fixture(scope="module")
def minilm_hub(minilm_hub_cache):
    from app.model.encoders import DEFAULT_ENCODER

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
