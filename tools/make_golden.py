"""Write tests/golden/minilm_reference.npz from the checkpoint's own implementation.

The converter is checked against Hugging Face `tokenizers` (with the checkpoint's
`tokenizer.json`) and `transformers`' BertModel in PyTorch. Those libraries are not project
dependencies, so this script runs in its own virtualenv (.venv-torch, requirements-torch.txt)
and writes small golden files that the tests compare against:

    make golden        # or: python tools/make_golden.py --checkpoint DIR --output tests/golden

Nothing here is imported by app/ or tests/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# Strings chosen to exercise every step of BERT's tokenizer; written for this project.
TRICKY_TEXTS = [
    "Naïve café owners déjà vu: Ångström, façade, São Paulo, Zürich.",
    "Wow!!!... Really?!?! (not) [sure] {at} <all> -- 'quoted' \"double\" ~tilde~ `tick`",
    "東京で映画を見ました。とても良かった！ 电影很好看。한국 영화도 좋아요.",
    "Loved it 😀😀 👍🏽 — 10/10 would watch again 🎬🍿",
    "",
    "   \t\n  ",
    "A scene<br /><br />Another scene<br />and <i>italic</i> &amp; more.",
    "MiXeD CaSe ALL CAPS lower İstanbul ΣΊΣΥΦΟΣ straße ﬁne ｆｕｌｌｗｉｄｔｈ",
    "zero\u200bwidth\u200djoiner soft\u00adhyphen nbsp\u00a0space ideographic\u3000space",
    "control\x00chars\x07and\x1b[0m escape \ufffd replacement",
    "supercalifragilisticexpialidocious" * 4 + " pneumonoultramicroscopicsilicovolcanoconiosis",
    "Numbers 3.14159, 1,000,000 and dates 2026-11-23 or e-mail someone@example.com #hashtag @user",
    "Mixed scripts: Привет мир, مرحبا بالعالم, שלום עולם, नमस्ते दुनिया, สวัสดีชาวโลก",
]


def long_text(words: int = 5000) -> str:
    """A deterministic 5,000-word text with varied words and punctuation."""
    vocab = ("the film was surprisingly good, although the ending felt rushed; actors "
             "delivered (mostly) believable performances! would I recommend it? yes.").split()
    rng = np.random.default_rng(0)
    return " ".join(vocab[i] for i in rng.integers(0, len(vocab), size=words))


# Texts run through the encoder: short, mixed, and one that fills 64 tokens.
MODEL_TEXTS = [
    "An unforgettable film.",
    "The plot was thin and the acting wooden; I left halfway through.",
    "Naïve café scenes, 東京 and emoji 😀 together.",
    "",
    long_text(80),
]
MODEL_SEQ_LENGTH = 64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--output", default="tests/golden")
    args = parser.parse_args()

    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    ckpt = Path(args.checkpoint)
    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    texts = TRICKY_TEXTS + [long_text()]
    token_ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]

    model = BertModel.from_pretrained(str(ckpt), attn_implementation="eager").eval()
    tok.enable_truncation(MODEL_SEQ_LENGTH)
    tok.enable_padding(length=MODEL_SEQ_LENGTH)
    encs = [tok.encode(t) for t in MODEL_TEXTS]
    ids = torch.tensor([e.ids for e in encs])
    mask = torch.tensor([e.attention_mask for e in encs])
    types = torch.tensor([e.type_ids for e in encs])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)

    lengths = mask.sum(1).numpy()
    seq = out.last_hidden_state.numpy()
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out_dir / "minilm_reference.npz",
        token_ids=np.concatenate([np.asarray(t, np.int32) for t in token_ids]),
        token_lengths=np.asarray([len(t) for t in token_ids], np.int32),
        input_word_ids=ids.numpy().astype(np.int32),
        input_mask=mask.numpy().astype(np.int32),
        pooled_output=out.pooler_output.numpy().astype(np.float32),
        sequence_output=np.concatenate([seq[i, :n] for i, n in enumerate(lengths)]).astype(np.float32),
        sequence_lengths=lengths.astype(np.int32),
    )
    (out_dir / "minilm_reference.json").write_text(json.dumps({
        "tokenizer_texts": texts,
        "model_texts": MODEL_TEXTS,
        "model_seq_length": MODEL_SEQ_LENGTH,
        "made_with": {"torch": torch.__version__,
                      "transformers": __import__("transformers").__version__,
                      "tokenizers": __import__("tokenizers").__version__},
    }, ensure_ascii=False, indent=1))
    print(f"wrote {out_dir}/minilm_reference.npz and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
