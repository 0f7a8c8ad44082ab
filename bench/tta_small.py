"""Small data: how good a classifier each recipe trains from 64, 200 and 1,000 labelled reviews.

    make bench-tta-small                                       # everything (several hours on 2 cores)
    .venv/bin/python bench/tta_small.py --sizes 200 --seeds 0 --only tfidf bertclf   # a part

The same seeded 5,000 held-out IMDb reviews as bench/tta.py; each training set is a stratified,
seeded sample of bench-tta's 20,000 training reviews (3 seeds a size), and the training reviews
left over, labels removed, are written beside it (`unlabeled.csv`) for a contender that reads
unlabelled texts. Contenders, each given `MINUTES`:

* `tfidf`: scikit-learn's TF-IDF (word 1- and 2-grams, sublinear tf) + logistic regression.
* `tutorial`, `transformers`: the TensorFlow tutorial recipe (up to its 5 epochs) and Hugging
  Face Transformers (up to the Trainer's 3), by bench/common.py's rule.
* `bertclf`: `python -m app.train --time-budget 10`, as a user runs it (its regime is its own
  choice), with `--unlabeled-data unlabeled.csv --max-unlabeled-examples 5000` (self-training: the
  budget may take fewer); `bertclf-labels-only`: the same without the unlabelled reviews.

Writes bench/results/<date>-tta-small-<host>.json, a PNG of accuracy against labels beside it,
and the table in bench/README.md (a full run only).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import PLAIN_TF, _cpu_name, bench_data, code_commit, worker  # noqa: E402
from tta import HELD_OUT, bertclf, free_stem, save_plot, split_imdb, tfidf, update_readme  # noqa: E402

SIZES = (64, 200, 1000)
SEEDS = (0, 1, 2)
CONTENDERS = ("tfidf", "tutorial", "transformers", "bertclf", "bertclf-labels-only")
UNLABELED = 5000  # the unlabelled reviews bertclf is given (the 200 labels + 5,000)
MINUTES = 10
RECIPE_EPOCHS = {"tutorial": 5, "transformers": 3}


def sample(train_csv: Path, size: int, seed: int, out: Path) -> tuple[Path, Path]:
    """(labelled.csv, unlabeled.csv): `size` reviews stratified by label, and the rest, text only."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    folder = out / f"n{size}-s{seed}"
    labelled, unlabeled = folder / "train.csv", folder / "unlabeled.csv"
    if labelled.exists() and unlabeled.exists():
        return labelled, unlabeled
    frame = pd.read_csv(train_csv)
    chosen, rest = train_test_split(frame, train_size=size, stratify=frame["label"], random_state=seed)
    folder.mkdir(parents=True, exist_ok=True)
    chosen.to_csv(labelled, index=False)
    rest[["text"]].to_csv(unlabeled, index=False)
    return labelled, unlabeled


def summary(results: dict) -> dict:
    """Each contender's mean accuracy (and the seeds') at each size."""
    out: dict = {}
    for run in results["runs"]:
        if "accuracy" in run:
            out.setdefault(run["contender"], {}).setdefault(str(run["size"]), []).append(run["accuracy"])
    return {name: {size: {"mean": sum(v) / len(v), "seeds": v} for size, v in sizes.items()}
            for name, sizes in out.items()}


def merge(paths: list[Path]) -> dict:
    """One result of several partial runs (`--only`, `--sizes`, `--seeds` each measure a part):
    their runs, each with the file it came from (`source`); a contender's run at a size and seed
    measured twice is taken from the later file, and bertclf runs told more than a user's
    (`--bertclf-flags`, `--probe-error`) are a contender of their own, named with what they were
    told. The files must share the held-out set and the contenders' minutes; each file's date,
    machine and commit are kept under `merged_from`."""
    if not paths:
        raise ValueError("--merge needs at least one result file")
    parts = [(Path(p), json.loads(Path(p).read_text())) for p in paths]
    for path, part in parts:
        for key, expected in (("held_out", parts[0][1].get("held_out")), ("minutes", MINUTES)):
            if part.get(key) != expected:
                raise ValueError(f"{path}: {key} is {part.get(key)!r}, not {expected!r} like the others: "
                                 "its runs are not comparable")
    runs: dict = {}
    for path, part in parts:
        told = [part.get("bertclf_flags") or ""]
        if part.get("probe_error", 1.0) != 1.0:
            told.append(f"probe x{part['probe_error']:g}")
        told = ", ".join(t for t in told if t)
        for run in part["runs"]:
            name = run["contender"]
            if told and name.startswith("bertclf"):  # told more than a user's run: a row of its own
                name = f"{name} ({told})"
            runs[(name, run["size"], run["seed"])] = {**run, "contender": name, "source": path.name}
    first = parts[0][1]
    results = {"date": max(part["date"] for _, part in parts), "host": first.get("host"), "cpu": first["cpu"],
               "cores": first["cores"], "held_out": first["held_out"], "minutes": MINUTES,
               "sizes": sorted({size for _, size, _ in runs}), "seeds": sorted({seed for _, _, seed in runs}),
               "merged_from": [{"file": path.name, "date": part["date"], "cpu": part["cpu"],
                                "cores": part["cores"], "commit": part.get("commit")}
                               for path, part in parts],
               "runs": [runs[k] for k in sorted(runs)]}
    results["summary"] = summary(results)
    return results


def write_merged(results: dict, no_readme: bool = False, out_dir: Path = HERE / "results") -> int:
    """Write `merge`'s result as `<date>-tta-small-merged[-N].json` with its plot; the README's
    table too when the merge holds every size and seed of tfidf, tutorial, transformers and bertclf."""
    stem = free_stem(out_dir, "tta-small-merged")
    results["plot"] = f"bench/results/{stem}.png"
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2))
    plot(results, out_dir / f"{stem}.png")
    text = table(results)
    print(text)
    complete = all(len(results["summary"].get(name, {}).get(str(size), {}).get("seeds", [])) == len(SEEDS)
                   for name in ("tfidf", "tutorial", "transformers", "bertclf") for size in SIZES)
    if complete and not no_readme:
        update_readme(text, "tta-small", "Small data")
    return 0


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, sizes in results["summary"].items():
        xs = sorted(int(s) for s in sizes)
        ax.plot(xs, [100 * sizes[str(x)]["mean"] for x in xs], "o-", label=name)
        for x in xs:
            ax.plot([x] * len(sizes[str(x)]["seeds"]), [100 * a for a in sizes[str(x)]["seeds"]], ".",
                    color="grey", alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training reviews")
    ax.set_ylabel(f"held-out accuracy, % ({results['held_out']:,} IMDb reviews)")
    ax.set_title(f"Small data on {results['cpu']} ({results['cores']} cores), {MINUTES} minutes each")
    save_plot(fig, ax, path)


def table(results: dict) -> str:
    sizes = sorted({int(s) for v in results["summary"].values() for s in v})
    merged = results.get("merged_from")
    files = ", ".join(f"`{m['file']}`" for m in merged or [])
    source = f" Merged from {files}." if merged else ""
    lines = [f"Measured {results['date']} on {results['cpu']} ({results['cores']} cores): mean held-out "
             f"accuracy over seeds {results['seeds']} ({results['held_out']:,} IMDb reviews), each recipe "
             f"given {MINUTES} minutes. Plot: `{results['plot']}`.{source}", "",
             "| contender | " + " | ".join(f"{s} labels" for s in sizes) + " |",
             "| --- |" + " --- |" * len(sizes)]
    for name, by_size in results["summary"].items():
        cells = [f"{100 * by_size[str(s)]['mean']:.2f} %" if str(s) in by_size else "" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=CONTENDERS, help="run these contenders only")
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--held-out", type=int, default=HELD_OUT,
                   help="test on this many of the held-out reviews (a stratified, seeded part: quicker)")
    p.add_argument("--torch-python", default=str(ROOT / ".venv-torch" / "bin" / "python"))
    p.add_argument("--scratch", default="/tmp/bertclf-bench")
    p.add_argument("--no-readme", action="store_true", help="leave bench/README.md as it is")
    p.add_argument("--probe-error", type=float, default=1.0,
                   help="bertclf's probe this many times too slow (above 1: pessimistic) or too fast")
    p.add_argument("--bertclf-flags", default="",
                   help='more app.train flags for the bertclf contenders, e.g. "--regime contrastive"')
    p.add_argument("--merge", nargs="+", type=Path, metavar="RESULT",
                   help="run nothing: merge these result files (partial runs) into one, with its plot and "
                        "table (the README's too when every contender, size and seed is there)")
    args = p.parse_args()
    if args.merge:
        return write_merged(merge(args.merge), no_readme=args.no_readme)
    scratch = Path(args.scratch)
    folder, description = bench_data(scratch)
    if "IMDb" not in description:
        raise SystemExit(f"bench-tta-small needs the IMDb train split in {ROOT.parent / 'shared' / 'data'}")
    train_csv, heldout_csv = split_imdb(Path(folder), scratch / "tta")
    if args.held_out < HELD_OUT:
        import pandas as pd
        from sklearn.model_selection import train_test_split

        part = scratch / "tta-small" / f"heldout-{args.held_out}.csv"
        if not part.exists():
            part.parent.mkdir(parents=True, exist_ok=True)
            held = pd.read_csv(heldout_csv)
            train_test_split(held, train_size=args.held_out, stratify=held["label"],
                             random_state=0)[0].to_csv(part, index=False)
        heldout_csv = part
    sys.path.insert(0, str(ROOT))
    from app.model.encoders import ensure_offline_encoder, minilm_checkpoint

    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
               "cpu": _cpu_name(), "commit": code_commit(), "cores": os.cpu_count(),
               "held_out": args.held_out, "sizes": args.sizes,
               "seeds": args.seeds, "minutes": MINUTES, "probe_error": args.probe_error,
               "bertclf_flags": args.bertclf_flags, "runs": []}
    out_dir = HERE / "results"
    stem = free_stem(out_dir, f"tta-small-{platform.node()}")
    results["plot"] = f"bench/results/{stem}.png"
    started = time.perf_counter()
    hub_style = None
    for size in args.sizes:
        for seed in args.seeds:
            labelled, unlabeled = sample(train_csv, size, seed, scratch / "tta-small")
            csvs = ["--train-csv", str(labelled), "--test-csv", str(heldout_csv), "--minutes", str(MINUTES)]
            for name in args.only or CONTENDERS:
                print(f"[tta-small] {name}, {size} labels, seed {seed} ...", flush=True)
                if name == "tfidf":
                    r = tfidf(labelled, heldout_csv)
                elif name == "tutorial":
                    tf_worker = [sys.executable, str(HERE / "tf_worker.py")]
                    hub_style = hub_style or worker([*tf_worker, "hub_style_encoder", "--output",
                                                     str(scratch / "hub-style-minilm")])
                    r = worker([*tf_worker, "tta", "--tutorial-encoder", hub_style["encoder"], *csvs,
                                "--epochs", str(RECIPE_EPOCHS["tutorial"])], env=PLAIN_TF, timeout=3600)
                elif name == "transformers":
                    r = worker([args.torch_python, str(HERE / "torch_worker.py"), "--tta", "--checkpoint",
                                str(minilm_checkpoint()), "--data", str(labelled.parent), *csvs,
                                "--epochs", str(RECIPE_EPOCHS["transformers"])], timeout=3600)
                else:
                    ensure_offline_encoder()
                    flags = (["--unlabeled-data", str(unlabeled), "--max-unlabeled-examples", str(UNLABELED)]
                             if name == "bertclf" else []) + shlex.split(args.bertclf_flags)
                    r = bertclf(labelled, heldout_csv, MINUTES, scratch, flags=flags,
                                probe_error=args.probe_error,
                                name=f"tta-small-{size}-s{seed}-{name.removeprefix('bertclf')}{os.getpid()}")
                results["runs"].append({"contender": name, "size": size, "seed": seed, **r})
                print(f"[tta-small] {name}, {size}, {seed}: {json.dumps(r)[:200]}", flush=True)
                results["summary"] = summary(results)
                results["seconds"] = time.perf_counter() - started
                (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2))
    plot(results, out_dir / f"{stem}.png")
    text = table(results)
    print(text)
    full = (not args.only and sorted(args.sizes) == sorted(SIZES) and sorted(args.seeds) == sorted(SEEDS)
            and args.held_out == HELD_OUT and args.probe_error == 1.0 and not args.bertclf_flags)
    if full and not args.no_readme:
        update_readme(text, "tta-small", "Small data")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
