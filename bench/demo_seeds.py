"""The demo at several seeds: does `make demo`'s model answer plain sentences right every time?

    .venv/bin/python bench/demo_seeds.py                 # seeds 1, 2, 3
    .venv/bin/python bench/demo_seeds.py --seeds 1 --flags --regime fine-tune

Each seed runs `python -m app.train --seed S` on the bundled sample (the demo's defaults, plus
`--flags`), then `app.predict --json` on `SENTENCES`: the README's examples and plain reviews
that were not written towards the sample. Writes bench/results/<date>-demo-seeds-<host>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from run import _cpu_name  # noqa: E402

SENTENCES = {
    "An unforgettable film.": "pos",
    "Loved it.": "pos",
    "Dull.": "neg",
    "Two hours I will never get back.": "neg",
    "A wonderful story with great acting.": "pos",
    "I would happily watch it again.": "pos",
    "The best movie I have seen this year.": "pos",
    "Beautifully shot and very moving.": "pos",
    "A delight from start to finish.": "pos",
    "The plot made no sense and the acting was wooden.": "neg",
    "I walked out halfway through.": "neg",
    "A boring, predictable mess.": "neg",
    "Do not waste your money on this.": "neg",
    "The worst film of the year.": "neg",
}


def run_seed(seed: int, flags: list[str], scratch: Path) -> dict:
    run_dir, out = scratch / f"demo-s{seed}", scratch / f"models-s{seed}"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "app.train", "--seed", str(seed), "--run-dir", str(run_dir),
                           "--output-dir", str(out), *flags], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        return {"seed": seed, "error": proc.stderr[-3000:]}
    report = json.loads((run_dir / "report" / "report.json").read_text())
    answers = subprocess.run([sys.executable, "-m", "app.predict", "--model", str(out / "bertclf"), "--json",
                              *SENTENCES], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    wrong = []
    for line, (text, expected) in zip(answers.splitlines(), SENTENCES.items(), strict=True):
        answer = json.loads(line)
        if answer["label"] != expected:
            wrong.append({"text": text, "answer": answer["label"],
                          "probabilities": answer.get("probabilities")})
    return {"seed": seed, "seconds": round(seconds, 1), "test_accuracy": report["accuracy"],
            "baseline": (report.get("baseline") or {}).get("accuracy"),
            "regime": report["config"]["settings"].get("regime"),
            "contrastive": report["record"].get("contrastive", {}),
            "sentences_right": len(SENTENCES) - len(wrong), "wrong": wrong}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--flags", nargs=argparse.REMAINDER, default=[], help="more app.train flags (last)")
    p.add_argument("--scratch", default="/tmp/bertclf-bench/demo")
    args = p.parse_args()
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": _cpu_name(),
               "flags": args.flags, "sentences": SENTENCES, "runs": []}
    out = HERE / "results" / f"{datetime.date.today().isoformat()}-demo-seeds-{platform.node()}.json"
    n = 1
    while out.exists():
        n += 1
        out = out.with_name(f"{datetime.date.today().isoformat()}-demo-seeds-{platform.node()}-{n}.json")
    for seed in args.seeds:
        r = run_seed(seed, args.flags, Path(args.scratch))
        results["runs"].append(r)
        print(json.dumps(r)[:400], flush=True)
        out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
