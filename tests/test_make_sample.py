"""tools/make_sample.py: the bundled sample is what the script writes, and each word leans its side."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tools import make_sample

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


def test_decks_deal_every_word_of_a_bank_once_a_pass_for_each_side():
    decks = make_sample.Decks(random.Random(0))
    bank = ["a", "b", "c", "d"]
    positive = [decks.deal(bank, True) for _ in range(8)]
    negative = [decks.deal(bank, False) for _ in range(4)]
    assert sorted(positive[:4]) == sorted(positive[4:]) == sorted(negative) == bank
    first = decks.deal(bank, True)
    assert decks.deal(bank, True, avoid=first) != first


def test_the_bundled_sample_is_what_the_script_writes(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_sample.py"), "--output", str(tmp_path)],
                   check=True, capture_output=True)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.txt"))
    assert written == sorted(p.relative_to(SAMPLE) for p in SAMPLE.rglob("*.txt"))
    assert all((tmp_path / p).read_text() == (SAMPLE / p).read_text() for p in written)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-zé]+", text.lower()))


def test_every_sentiment_word_is_in_more_reviews_of_its_own_side():
    def reviews_with(side: str) -> Counter:
        counts = Counter()
        for path in (SAMPLE / "train" / side).glob("*.txt"):
            counts.update(_words(path.read_text()))
        return counts

    # Words the fixed lines also use ("The trailer made it look silly; however,") lean as those do.
    fixed = set().union(*(_words(line) for lines in (
        make_sample.POS_LINES, make_sample.NEG_LINES, make_sample.POS_VERDICTS, make_sample.NEG_VERDICTS,
        make_sample.POS_CONCESSIONS, make_sample.NEG_CONCESSIONS, make_sample.LUKEWARM) for line in lines))
    pos, neg = reviews_with("pos"), reviews_with("neg")
    wrong = [(w, pos[w], neg[w]) for w in make_sample.POS_ADJ if pos[w] <= neg[w] and w not in fixed]
    wrong += [(w, pos[w], neg[w]) for w in make_sample.NEG_ADJ if neg[w] <= pos[w] and w not in fixed]
    assert wrong == []
    assert pos["unforgettable"] >= 2 * neg["unforgettable"]  # (drawn independently: 21 and 18)
