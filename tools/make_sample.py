"""Write the bundled sample dataset, data/sample/, in the aclImdb layout.

Every review is composed from the word and phrase banks below, which were written for this project;
nothing is taken from IMDb or anywhere else. The output is deterministic (fixed seed):

    python tools/make_sample.py            # rewrites data/sample/{train,test}/{neg,pos}/*.txt

The sample is meant to teach sentiment, not its own phrasing, and to leave the demo's report
something to report:
- remarks are built from templates over general sentiment words (many adjectives, adverbs, verdicts
  short and long), so that the model meets the vocabulary of plain sentences it never saw;
- both sides have words that share word pieces ("unforgettable" and "unmissable" beside
  "uninspired" and "unwatchable"; "forgettable" against "unforgettable"), so that a piece such as
  "un" decides nothing and the model has to read the whole word;
- most reviews are mixed: a remark disagrees with the review's verdict a quarter of the time, some
  are negated ("never dull"), some concede a point before the verdict;
- every word of a bank is dealt as evenly in the positive reviews as in the negative ones (`Decks`),
  so each one leans its side by the design's odds; drawn independently, a word met some forty
  times can land nearly even by chance ("unforgettable" did: 21 positive reviews, 18 negative)
  and teach nothing;
- some reviews give no verdict at all, and a few are lukewarm, rated either side of the middle by
  a reviewer's whim, as real reviews are: no model gets those all right, so the test split has
  mistakes and the probabilities something to be calibrated on.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

TITLES_A = ["The Silent", "Midnight", "Paper", "The Last", "Crimson", "Hollow", "Northern", "Glass",
            "The Forgotten", "Electric", "Quiet", "Burning", "Distant", "The Iron", "Golden", "Broken"]
TITLES_B = ["Harbor", "Garden", "Orchard", "Signal", "Letters", "Kingdom", "River", "Frontier",
            "Lighthouse", "Carnival", "Summer", "Engine", "Archive", "Canyon", "Parade", "Winter"]
GENRES = ["thriller", "comedy", "drama", "science fiction film", "romance", "western", "war film",
          "mystery", "animated feature", "horror film", "musical", "courtroom drama", "heist movie"]
OPENERS = [
    "I watched {title} last night.",
    "{title} is {a} {genre} that I had heard a lot about.",
    "My friends talked me into seeing {title}.",
    "I finally caught {title}, {a} {genre} from a first-time director.",
    "{title} arrived with plenty of hype for a {genre}.",
    "I went into {title} knowing nothing about it.",
    "Having read the novel, I was curious about {title}.",
    "We rented {title} for a family movie night.",
    "So, {title}.",
    "",
    "",
]
ASPECTS = ["acting", "story", "script", "direction", "soundtrack", "photography", "dialogue", "ending",
           "cast", "pacing", "humour", "plot", "lead performance", "editing", "premise", "finale",
           "screenplay", "music", "romance", "villain", "first half", "effects"]
POS_ADJ = ["brilliant", "moving", "gripping", "charming", "superb", "delightful", "powerful", "beautiful",
           "clever", "touching", "hilarious", "stunning", "wonderful", "fresh", "heartfelt", "engaging",
           "masterful", "excellent", "terrific", "lovely", "inventive", "captivating", "magnificent",
           "smart", "tender", "thrilling", "remarkable", "fantastic", "great", "satisfying", "witty",
           "haunting", "gorgeous", "sincere", "funny", "compelling", "perfect", "marvellous", "unforgettable",
           "memorable", "uplifting", "unmissable", "unpretentious", "unflinching"]
NEG_ADJ = ["dull", "clumsy", "boring", "awful", "tedious", "lifeless", "terrible", "predictable", "silly",
           "bland", "painful", "weak", "lazy", "messy", "flat", "pointless", "confusing", "dreadful",
           "poor", "wooden", "tiresome", "hollow", "cheap", "ridiculous", "stale", "annoying",
           "uninspired", "mediocre", "bad", "forced", "clichéd", "sloppy", "shallow", "irritating",
           "incoherent", "embarrassing", "lame", "horrible", "forgettable", "unfunny", "unwatchable",
           "unconvincing",
           "exhausting"]
ADVERBS = ["", "", "", "really ", "truly ", "genuinely ", "quite ", "so ", "absolutely ", "simply ",
           "consistently ", "surprisingly "]
REMARKS = [
    "The {aspect} is {adv}{adj}.",
    "I found the {aspect} {adv}{adj}.",
    "The {aspect}? {Adj}.",
    "The {aspect} struck me as {adv}{adj}.",
    "Honestly, the {aspect} was {adv}{adj}.",
    "The {aspect} felt {adv}{adj} to me.",
    "{Adj} {aspect}, and {adj2} {aspect2}.",
    "What {a} {adj}, {adj2} {whole}.",
    "{An} {adv}{adj} {whole}.",
]
# How the reviewer felt, in their own verbs.
FEELINGS = ["I {verb} {what}.", "Honestly, I {verb} {what}.", "I have to say I {verb} {what}.",
            "My partner and I both {verb} {what}."]
POS_VERBS = ["loved", "adored", "enjoyed", "really liked", "was moved by", "was charmed by", "savoured",
             "was blown away by", "fell for", "admired"]
NEG_VERBS = ["hated", "disliked", "loathed", "despised", "could not stand", "was bored by", "was annoyed by",
             "regretted", "was let down by", "resented"]
WHATS = ["every minute of it", "the whole thing", "it", "this one", "the ending", "the characters",
         "the music", "its sense of humour", "the way it looks", "the last twenty minutes", "the story"]
WHOLE = ["film", "movie", "story", "picture", "experience", "watch", "ride"]
# "not" + a word of one side says the other side.
NEGATED = ["The {aspect} is never {adj}.", "The {aspect} is not {adj} at all.",
           "I would not call the {aspect} {adj}.", "There is nothing {adj} about the {aspect}."]
POS_LINES = [
    "The lead gives a warm, layered performance that stays with you.",
    "Every actor seems completely at home in their role.",
    "The story builds patiently and pays off beautifully in the final act.",
    "Each twist felt earned rather than cheap.",
    "It handles grief and hope with a light, honest touch.",
    "The score swells at exactly the right moments.",
    "I laughed out loud more than once.",
    "It had me on the edge of my seat.",
    "The whole theatre applauded at the end.",
    "I was hooked from the first scene.",
    "It is the kind of film that rewards your attention.",
    "I cared about every one of these people.",
]
NEG_LINES = [
    "The lead sleepwalks through every scene with the same blank expression.",
    "The performances are stiff, as if nobody had rehearsed.",
    "The story drags for an hour and then collapses in a rushed ending.",
    "Nothing that happens makes much sense, even by the film's own rules.",
    "It tries to be profound but ends up preachy.",
    "The effects look unfinished.",
    "I checked my watch every ten minutes.",
    "Half the audience left before the end.",
    "I could not wait for it to be over.",
    "The jokes land with a thud.",
    "I stopped caring about the characters early on.",
    "It feels twice as long as it is.",
]
POS_VERDICTS = [
    "I loved it and will happily watch it again.", "A wonderful film; highly recommended.",
    "Easily one of the best movies I have seen this year.", "Go see it, you will not regret it.",
    "A small gem that deserves a much bigger audience.", "It made me laugh and cry.", "Worth every minute.",
    "Highly recommended.", "Do not miss this one.", "I left the cinema smiling.", "A real treat.",
    "Ten out of ten.", "9/10.", "8/10, would watch again.", "A joy from start to finish.",
    "I will be thinking about it for days.", "Pure magic.", "Loved every second.", "An absolute delight.",
    "Best film I have seen in a long time.", "A triumph.", "I recommend it to everyone I know.",
]
NEG_VERDICTS = [
    "I was bored and checked my watch constantly.", "A waste of time; avoid it.",
    "One of the worst films I have sat through in years.", "Skip it.", "Save your money.",
    "A tedious mess that never finds its footing.", "I wanted to like it, but it was a real disappointment.",
    "Avoid at all costs.", "I walked out halfway through.", "I nearly fell asleep.", "A complete letdown.",
    "Do not bother.", "Never again.", "2/10.", "3/10, and that is generous.", "I regret watching it.",
    "What a waste of a good cast.", "Utterly forgettable.", "I want my money back.",
    "Painful to sit through.", "A total failure.", "Terrible from start to finish.", "Not worth your time.",
]
# A point for the other side before the verdict.
POS_CONCESSIONS = ["The middle section sags a little, but", "It is not perfect, but", "Despite a few flaws,",
                   "The ending is a bit neat, yet", "The trailer made it look silly; however,"]
NEG_CONCESSIONS = ["The poster is lovely and the opening is promising, but",
                   "There are a couple of nice shots, but", "The lead tries hard; still,",
                   "For all its ambition,", "The first scene is clever, but"]
LUKEWARM = ["It is fine, I suppose.", "Not bad, not great.", "Some of it works and some of it does not.",
            "I have mixed feelings about it.", "It is watchable, once.", "An average film, nothing more.",
            "Parts of it are good, parts of it drag.", "Hard to say whether I liked it."]
P_AGREE = 0.75  # a remark agrees with the review's verdict
P_LUKEWARM = 0.06  # reviews with nothing to decide them: their label is a coin toss
P_SHORT = 0.12  # a verdict alone
P_NO_VERDICT = 0.2


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class Decks:
    """Words dealt from shuffled decks, one per (bank, review side), each reshuffled when used up:
    every word of a bank comes up equally often in each side's reviews."""

    def __init__(self, rng: random.Random):
        self.rng, self.decks = rng, {}

    def deal(self, bank: list[str], side: bool, avoid: str | None = None) -> str:
        deck = self.decks.setdefault((tuple(bank), side), [])
        if not deck or deck == [avoid]:
            fresh = list(bank)
            self.rng.shuffle(fresh)
            deck[:0] = fresh  # dealt from the end: what is left of the old deck goes first
        i = next(i for i in range(len(deck) - 1, -1, -1) if deck[i] != avoid)
        return deck.pop(i)


def remark(rng: random.Random, decks: Decks, positive: bool, side: bool) -> str:
    """One sentence about one aspect, on the given side, in a review on `side`."""
    aspect, aspect2 = rng.sample(ASPECTS, 2)
    if rng.random() < 0.15:
        other = NEG_ADJ if positive else POS_ADJ
        return rng.choice(NEGATED).format(aspect=aspect, adj=decks.deal(other, side))
    if rng.random() < 0.25:
        return rng.choice(POS_LINES if positive else NEG_LINES)
    if rng.random() < 0.2:
        return rng.choice(FEELINGS).format(verb=rng.choice(POS_VERBS if positive else NEG_VERBS),
                                           what=rng.choice(WHATS))
    adjectives = POS_ADJ if positive else NEG_ADJ
    adj = decks.deal(adjectives, side)
    adj2 = decks.deal(adjectives, side, avoid=adj)
    adv = rng.choice(ADVERBS)
    text = rng.choice(REMARKS).format(aspect=aspect, aspect2=aspect2, adv=adv, adj=adj, Adj=adj.capitalize(),
                                      adj2=adj2, whole=rng.choice(WHOLE), a=article(adj),
                                      An=article(adv or adj).capitalize())
    return text[0].upper() + text[1:]


def review(rng: random.Random, decks: Decks, positive: bool) -> str:
    """A review on the given side, or (now and then) a lukewarm one that could have been on either."""
    verdicts = POS_VERDICTS if positive else NEG_VERDICTS
    if rng.random() < P_SHORT:
        return rng.choice(verdicts)
    title = f"{rng.choice(TITLES_A)} {rng.choice(TITLES_B)}"
    genre = rng.choice(GENRES)
    sentences = [rng.choice(OPENERS).format(title=title, genre=genre, a=article(genre))]
    if rng.random() < P_LUKEWARM:
        sentences += [remark(rng, decks, True, positive), remark(rng, decks, False, positive)]
        rng.shuffle(sentences)
        sentences.append(rng.choice(LUKEWARM))
    else:
        for _ in range(rng.randint(1, 4)):
            agrees = rng.random() < P_AGREE
            sentences.append(remark(rng, decks, positive if agrees else not positive, positive))
        if rng.random() >= P_NO_VERDICT:
            verdict = rng.choice(verdicts)
            if rng.random() < 0.25:
                concession = rng.choice(POS_CONCESSIONS if positive else NEG_CONCESSIONS)
                lowered = verdict if verdict.startswith("I ") else verdict[0].lower() + verdict[1:]
                verdict = f"{concession} {lowered}"
            sentences.append(verdict)
        else:  # no verdict: the remarks decide, so make sure they lean the review's way
            sentences.append(remark(rng, decks, positive, positive))
    text = " ".join(s for s in sentences if s)
    if rng.random() < 0.15:  # some reviews carry the HTML line breaks real reviews have
        text = text.replace(". ", ".<br /><br />", 1)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent.parent / "data" / "sample"))
    parser.add_argument("--train-per-class", type=int, default=800)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    decks = Decks(rng)
    out = Path(args.output)
    shutil.rmtree(out, ignore_errors=True)
    seen: set[str] = set()  # no review twice, across the splits too
    for split, n in (("train", args.train_per_class), ("test", args.test_per_class)):
        for label, positive in (("neg", False), ("pos", True)):
            folder = out / split / label
            folder.mkdir(parents=True)
            i = 0
            while i < n:
                text = review(rng, decks, positive)
                if text in seen:
                    continue
                seen.add(text)
                # aclImdb names files <id>_<rating>.txt
                rating = rng.randint(7, 10) if positive else rng.randint(1, 4)
                (folder / f"{i}_{rating}.txt").write_text(text + "\n", encoding="utf-8")
                i += 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
