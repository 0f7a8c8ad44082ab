"""app.model.encoders: the registry, handles, and the offline encoder cache."""

from __future__ import annotations

import json

import pytest

from app.model import encoders


def test_registry_has_the_tutorial_family_with_real_handles():
    names = set(encoders.REGISTRY)
    for name in ("bert_en_uncased_L-12_H-768_A-12", "bert_en_cased_L-12_H-768_A-12",
                 "bert_en_uncased_L-24_H-1024_A-16", "small_bert/bert_en_uncased_L-4_H-512_A-8",
                 "albert_en_base", "electra_small", "electra_base", "talking-heads_base",
                 "experts_pubmed", "minilm-l6-h384-uncased"):
        assert name in names
    spec = encoders.resolve("small_bert/bert_en_uncased_L-4_H-512_A-8")
    assert spec.encoder == "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-4_H-512_A-8/1"
    assert spec.preprocess == "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"
    assert (spec.num_layers, spec.hidden_size) == (4, 512)
    assert encoders.resolve("bert_en_cased_L-12_H-768_A-12").preprocess.endswith("bert_en_cased_preprocess/3")
    assert len([n for n in names if n.startswith("small_bert/")]) == 24


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        encoders.resolve("bert_huge")
    message = str(info.value)
    assert "bert_huge" in message and "electra_small" in message and "minilm-l6-h384-uncased" in message


def test_converted_folder_path_and_file_url(tiny_hub, tiny_hub_plain):
    for handle in (str(tiny_hub), tiny_hub.as_uri()):
        spec = encoders.resolve(handle)
        assert spec.encoder == str(tiny_hub / "encoder")
        assert spec.preprocess == str(tiny_hub / "preprocess")
        assert (spec.num_layers, spec.hidden_size, spec.max_seq_length) == (2, 32, 128)
        assert (spec.implementation, spec.compute_dtype, spec.pooled_only) == ("fast", "float32", True)
    plain = encoders.resolve(str(tiny_hub_plain))
    assert (plain.implementation, plain.pooled_only) == ("plain", False)  # its __call__ has no pooled_only
    assert not encoders.resolve("bert_en_uncased_L-12_H-768_A-12").pooled_only  # TF Hub's


def test_bare_encoder_handle_needs_a_preprocessor(tiny_hub):
    with pytest.raises(ValueError, match="--preprocess"):
        encoders.resolve(str(tiny_hub / "encoder"))
    spec = encoders.resolve("https://example.invalid/encoder/1", preprocess=str(tiny_hub / "preprocess"))
    assert spec.encoder == "https://example.invalid/encoder/1" and not spec.pooled_only


def test_offline_encoder_is_converted_once_and_redone_when_the_converter_changes(
        tiny_checkpoint, tmp_path, monkeypatch):
    import app.model.conversion

    calls = []

    def convert(checkpoint, out, compute_dtype, implementation):  # what matters here: the record
        calls.append(out)
        for sub in ("encoder", "preprocess"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        fingerprint = app.model.conversion.fingerprint(checkpoint, 128, compute_dtype, implementation)
        record = {"fingerprint": fingerprint,
                  "config": {"num_hidden_layers": 2, "hidden_size": 32}, "pooled_only": True}
        (out / "bertclf_convert.json").write_text(json.dumps(record))

    monkeypatch.setattr(app.model.conversion, "convert", convert)
    monkeypatch.setattr(encoders, "minilm_checkpoint", lambda: tiny_checkpoint)
    spec = encoders.resolve("minilm-l6-h384-uncased", hub_cache=tmp_path)
    again = encoders.resolve("minilm-l6-h384-uncased", hub_cache=tmp_path)
    assert spec.encoder == again.encoder == str(tmp_path / "minilm-l6-h384-uncased" / "encoder")
    assert len(calls) == 1
    assert spec.name == "minilm-l6-h384-uncased" and spec.offline and spec.pooled_only
    # A conversion that another version of the converter wrote is redone, not reused.
    record = tmp_path / "minilm-l6-h384-uncased" / "bertclf_convert.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "fingerprint": "older"}))
    encoders.resolve("minilm-l6-h384-uncased", hub_cache=tmp_path)
    assert len(calls) == 2
