"""Write the bundled sample dataset, data/sample/, in the aclImdb layout.

Every review is composed from the phrase banks below, which were written for this project;
nothing is taken from IMDb or anywhere else. The output is deterministic (fixed seed):

    python tools/make_sample.py            # rewrites data/sample/{train,test}/{neg,pos}/*.txt
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
    "{title} is a {genre} that I had heard a lot about.",
    "My friends talked me into seeing {title}.",
    "I finally caught {title}, a {genre} from a first-time director.",
    "{title} arrived with plenty of hype for a {genre}.",
    "I went into {title} knowing nothing about it.",
    "Having read the novel, I was curious about {title}.",
    "We rented {title} for a family movie night.",
    "",
]
POS = {
    "acting": [
        "The lead gives a warm, layered performance that stays with you.",
        "Every actor seems completely at home in their role.",
        "The cast has real chemistry, and the banter feels natural.",
        "The young star is a revelation, funny one minute and heartbreaking the next.",
        "Even the small supporting parts are played with care.",
    ],
    "story": [
        "The story builds patiently and pays off beautifully in the final act.",
        "The script is sharp, witty and surprisingly moving.",
        "Each twist felt earned rather than cheap.",
        "It handles grief and hope with a light, honest touch.",
        "The plot kept me guessing until the very end.",
    ],
    "craft": [
        "The photography is gorgeous, all soft light and long quiet shots.",
        "The score swells at exactly the right moments.",
        "The editing keeps the pace brisk without ever feeling rushed.",
        "The production design makes the town feel lived in.",
        "The action scenes are clear, inventive and thrilling.",
    ],
    "verdict": [
        "I loved it and will happily watch it again.",
        "A wonderful film; highly recommended.",
        "Easily one of the best movies I have seen this year.",
        "Go see it, you will not regret it.",
        "A small gem that deserves a much bigger audience. 9/10.",
        "It made me laugh and cry, which is all I ask of a movie.",
    ],
}
NEG = {
    "acting": [
        "The lead sleepwalks through every scene with the same blank expression.",
        "The performances are stiff, as if nobody had rehearsed.",
        "The cast has no chemistry at all, and the romance falls flat.",
        "The villain is so over the top that it becomes unintentionally funny.",
        "Talented actors are wasted on paper-thin characters.",
    ],
    "story": [
        "The story drags for an hour and then collapses in a rushed ending.",
        "The script is full of clumsy dialogue and obvious twists.",
        "Nothing that happens makes much sense, even by the film's own rules.",
        "It tries to be profound but ends up dull and preachy.",
        "I guessed the plot within the first ten minutes.",
    ],
    "craft": [
        "The photography is murky and it is often hard to tell what is going on.",
        "The music is loud and repetitive, drowning out half the lines.",
        "The editing is choppy, jumping between scenes without purpose.",
        "The effects look cheap and unfinished.",
        "The action scenes are shaky, confusing and far too long.",
    ],
    "verdict": [
        "I was bored and checked my watch constantly.",
        "A waste of time; avoid it.",
        "One of the worst films I have sat through in years.",
        "Skip it, there are far better ways to spend two hours.",
        "A tedious mess that never finds its footing. 2/10.",
        "I wanted to like it, but it was a real disappointment.",
    ],
}
# A concession to the other side, so that a single sentiment word does not decide the label.
POS_BUT = ["The middle section sags a little, but", "It is not perfect, and the ending is a bit neat, yet",
           "The trailer made it look silly; however,"]
NEG_BUT = ["The poster is lovely and the opening is promising, but", "There are a couple of nice shots,",
           "The lead tries hard; still,"]


def review(rng: random.Random, positive: bool) -> str:
    bank, concessions = (POS, POS_BUT) if positive else (NEG, NEG_BUT)
    title = f"{rng.choice(TITLES_A)} {rng.choice(TITLES_B)}"
    sentences = [rng.choice(OPENERS).format(title=title, genre=rng.choice(GENRES))]
    parts = rng.sample(["acting", "story", "craft"], k=rng.randint(1, 3))
    for part in parts:
        sentences.append(rng.choice(bank[part]))
    if rng.random() < 0.3:
        first = rng.choice(concessions)
        nxt = rng.choice(bank["verdict"])
        if not nxt.startswith("I "):
            nxt = nxt[0].lower() + nxt[1:]
        sentences.append(f"{first} {nxt}")
    else:
        sentences.append(rng.choice(bank["verdict"]))
    text = " ".join(s for s in sentences if s)
    if rng.random() < 0.15:  # some reviews carry the HTML line breaks real reviews have
        text = text.replace(". ", ".<br /><br />", 1)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent.parent / "data" / "sample"))
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.output)
    shutil.rmtree(out, ignore_errors=True)
    for split, n in (("train", args.train_per_class), ("test", args.test_per_class)):
        for label, positive in (("neg", False), ("pos", True)):
            folder = out / split / label
            folder.mkdir(parents=True)
            seen = set()
            i = 0
            while i < n:
                text = review(rng, positive)
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
