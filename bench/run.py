"""Training and serving speed of bertclf against the recipes users would pick instead.

    make bench                 # or: python bench/run.py [--quick]

One run, one machine, the same data (the IMDb train split from ../shared/data when present, else
the bundled sample), the same MiniLM weights, the same sequence lengths and batch size. Each
contender runs in its own process (Keras 2 and Keras 3 cannot share one; PyTorch lives in its own
virtualenv). Writes bench/results/<date>-<host>.json and the table in bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import operator
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED_IMDB = ROOT.parent / "shared" / "data" / "aclImdb_train.tar.gz"
PY = sys.executable
# The contenders run as their users would run them: without bertclf's CPU fusion flags (which
# this process sets up as bertclf's CLIs do; see app/runtime.py).
PLAIN_TF = {"TF_XLA_FLAGS": "", "BERTCLF_CPU_FUSION": "0"}
# The training rows the headline ratios divide; they are measured in more than one pass.
RATIO_ROWS = ("bertclf", "bertclf_plain", "tutorial", "transformers_fp32", "transformers_bf16")


def worker(cmd: list[str], env: dict | None = None, timeout: int = 1800) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-1500:]
        print(f"  failed: {' '.join(cmd[:3])}…\n{tail}", file=sys.stderr)
        return {"error": tail.strip().splitlines()[-1] if tail.strip() else f"exit {proc.returncode}"}
    result = json.loads(lines[-1][len("RESULT "):])
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


def _pooled(passes: list[dict]) -> dict:
    """One row from its passes: the median of all their timed windows, and each pass's figure."""
    ok = [r for r in passes if "windows" in r]
    if len(passes) == 1 or not ok:
        return passes[0]
    windows = [w for r in ok for w in r["windows"]]
    return {**ok[0], "examples_per_second": statistics.median(windows), "windows": windows,
            "passes": [r["examples_per_second"] for r in ok],
            "wall_seconds": sum(r["wall_seconds"] for r in ok)}


def bench_data(scratch: Path) -> tuple[str, str]:
    """(folder in aclImdb layout, description): the real IMDb train split when it is beside us."""
    if SHARED_IMDB.exists():
        target = scratch / "imdb"
        if not (target / "aclImdb" / "train").is_dir():
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(SHARED_IMDB) as tar:
                tar.extractall(target, filter="data")
        return str(target / "aclImdb"), "IMDb train split (../shared/data)"
    return str(ROOT / "data" / "sample"), "bundled sample (data/sample)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer windows, 128 tokens only (a smoke run)")
    p.add_argument("--seq-lengths", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--passes", type=int, default=2,
                   help="at 128 tokens, measure the rows of the ratios this many times, order reversed "
                        "each pass (default 2; --quick: 1)")
    p.add_argument("--variants", action="store_true",
                   help="also train bertclf without one technique each (fp32 encoder and no CPU fusion "
                        "at 128 tokens, no length buckets at 256): 4-5 minutes more")
    p.add_argument("--torch-python", default=str(ROOT / ".venv-torch" / "bin" / "python"))
    p.add_argument("--scratch", default="/tmp/bertclf-bench")
    p.add_argument("--only", nargs="+", choices=["train", "accuracy", "serve"],
                   help="rerun these stages only, updating --results (default: everything)")
    p.add_argument("--results", help="an earlier results JSON to update with --only")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="print how much every figure of two results files differs, then exit")
    args = p.parse_args()
    if args.compare:
        print(compare(*(json.loads(Path(f).read_text()) for f in args.compare)))
        return 0
    started = time.perf_counter()
    stages = set(args.only or ["train", "accuracy", "serve"])
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from app import runtime
    from app.model.encoders import ensure_offline_encoder, minilm_checkpoint

    # As a CLI of bertclf's: the CPU fusion flags, which the workers inherit (bertclf's serving
    # and accuracy workers run as app.predict and app.train would); the contenders' workers
    # clear them (PLAIN_TF).
    runtime.setup()
    checkpoint = str(minilm_checkpoint())
    # What app.train's --mixed-precision auto picks for the offline encoder on this machine.
    dtype = "bfloat16" if runtime.cpu_has_native_bfloat16() else "float32"
    for implementation in ("fast", "plain"):
        ensure_offline_encoder(compute_dtype=dtype, implementation=implementation)
    # PyTorch's bf16 autocast emulates bfloat16 on CPUs without it: hours, for a figure no user
    # would pick on such a machine.
    torch_dtypes = ("fp32", "bf16") if dtype == "bfloat16" else ("fp32",)
    data, data_desc = bench_data(scratch)
    hub_style = worker([PY, str(HERE / "tf_worker.py"), "hub_style_encoder", "--output",
                        str(scratch / "hub-style-minilm")])
    if "error" in hub_style:
        raise SystemExit(f"could not build the tutorial recipe's encoder: {hub_style['error']}")
    tutorial_encoder = ["--tutorial-encoder", hub_style["encoder"]]
    seqs = [128] if args.quick else args.seq_lengths
    quick_timing = ["--warmup", "2", "--windows", "3", "--window", "2"]
    n_passes = 1 if args.quick else args.passes
    common = ["--data", data, "--batch-size", str(args.batch_size)]
    tf_worker = [PY, str(HERE / "tf_worker.py")]
    results: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
                     "cpu": _cpu_name(), "cores": os.cpu_count(), "data": data_desc,
                     "batch_size": args.batch_size, "compute_dtype": dtype, "train": {}, "notes": []}
    if args.results:
        results = json.loads(Path(args.results).read_text())
    if "bf16" not in torch_dtypes:
        results["notes"].append("no Transformers bf16 row: this CPU has no native bfloat16 "
                                "(AVX512-BF16 or AMX)")

    # bertclf's workers: app's CPU fusion flags plus a shared XLA compilation cache, so that its rows
    # measured twice compile each shape once per run (about 25 s at 128 tokens); emptied here, so
    # each run's first worker compiles.
    cache = f"--tf_xla_persistent_cache_directory={scratch / 'xla_cache'}"
    bertclf_env = {"TF_XLA_FLAGS": f"{runtime.CPU_FUSION_FLAGS} {cache}"}
    if "train" in stages:
        shutil.rmtree(scratch / "xla_cache", ignore_errors=True)
    for seq in seqs if "train" in stages else []:
        s = ["--seq-length", str(seq)]
        # 4 windows per worker at 128 tokens, where the rows of the ratios pool their passes; 3 at
        # other lengths (single workers), which keeps a run under 30 minutes on 2 cores (run -12
        # took 29 m 11 s with 4 windows everywhere).
        timing = quick_timing if args.quick else ["--windows", "4" if seq == 128 else "3"]
        bert = [*tf_worker, "bertclf", *common, *s, *timing]
        default = [*bert, "--compute-dtype", dtype]
        jobs = {  # name: (description, command, environment), in the order of the first pass
            "bertclf": (f"bertclf ({dtype} fast encoder, the default here)", default, bertclf_env),
            "bertclf_plain": (f"bertclf with the plain encoder ({dtype})",
                              [*default, "--implementation", "plain"], bertclf_env)}
        # What bf16, CPU fusion and buckets buy, single workers within the machine's swing, so
        # opt-in (4-5 minutes more).
        if args.variants and seq == 128:
            if dtype == "bfloat16":
                jobs["bertclf_fp32"] = ("bertclf fp32 encoder", [*bert, "--compute-dtype", "float32"],
                                        bertclf_env)
            jobs["bertclf_no_fusion"] = ("bertclf trained without CPU fusion",
                                         [*default, "--no-train-fusion"], bertclf_env)
        elif args.variants:  # IMDb reviews fill 128 tokens: buckets matter at 256
            jobs["bertclf_no_buckets"] = ("bertclf without length buckets",
                                          [*default, "--no-length-buckets"], bertclf_env)
        jobs["tutorial"] = ("TF tutorial recipe", [*tf_worker, "tutorial", *common, *s, *timing,
                                                   *tutorial_encoder], PLAIN_TF)
        if Path(args.torch_python).exists():
            for dt in torch_dtypes:
                jobs[f"transformers_{dt}"] = (f"Transformers + PyTorch {dt}", [
                    args.torch_python, str(HERE / "torch_worker.py"), "--checkpoint", checkpoint, *common,
                    *s, *timing, "--dtype", dt], None)
        else:
            results["notes"].append(f"{args.torch_python} missing: run `make bench` to create it")
        jobs["keras_hub"] = ("keras-hub BertTextClassifier", [
            PY, str(HERE / "kerashub_worker.py"), "--checkpoint", checkpoint, *common, *s, *timing],
            {**PLAIN_TF, "TF_USE_LEGACY_KERAS": ""})
        # The rows the ratios divide run again at 128 tokens, in reverse order, so that no contender
        # has only the first place (slower) or only the last; each row is the median of both passes.
        passes = [list(jobs)]
        again = [n for n in jobs if n in RATIO_ROWS] if seq == 128 else []
        passes += [again[::-1] if k % 2 == 0 else again for k in range(2, n_passes + 1) if again]
        runs: dict[str, list[dict]] = {}
        for i, names in enumerate(passes, 1):
            for name in names:
                desc, cmd, env = jobs[name]
                print(f"[{seq} tokens{f', pass {i}' if len(passes) > 1 else ''}] {desc} …", flush=True)
                runs.setdefault(name, []).append(worker(cmd, env=env))
        results["train"][str(seq)] = {name: _pooled(r) for name, r in runs.items()}

    if "accuracy" in stages:
        _accuracy(results, tf_worker, tutorial_encoder, data, args.quick, dtype)
    if "serve" in stages:
        print("serving …", flush=True)
        export = _export_for_serving(scratch, data)
        results["serve"] = {"error": "no export"}
        if export:
            serve = ["serve", "--data", data, "--model", export, "--scratch", str(scratch), *tutorial_encoder]
            ours = worker([*tf_worker, *serve, "--recipe", "bertclf"])
            # As TF Serving runs the export: without the CPU fusion flags.
            plain = worker([*tf_worker, *serve, "--recipe", "bertclf"], env=PLAIN_TF)
            tut = worker([*tf_worker, *serve, "--recipe", "tutorial"], env=PLAIN_TF)
            results["serve"] = {"bertclf": ours.get("bertclf", ours),
                                "bertclf_no_fusion": plain.get("bertclf", plain),
                                "tutorial": tut.get("tutorial", tut)}

    if "train" in stages:  # last: right after its AMX-heavy matmuls the next worker trained 7-11 % slower
        print("peak matmul rates …", flush=True)
        results.update(worker([*tf_worker, "peak", "--probe-seconds", "4" if args.quick else "20"]))
    results.update(_ratios(results))
    if not args.only:  # what `make bench` took, setup included (a rerun of some stages keeps the run's)
        results["run_seconds"] = round(time.perf_counter() - started)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    name = Path(args.results).name if args.results else _new_name(out_dir)
    (out_dir / name).write_text(json.dumps(results, indent=2))
    table = _table(results)
    _update_readme(table)
    print(table)
    print(f"wrote bench/results/{name} and bench/README.md")
    return 0


def _accuracy(results: dict, tf_worker: list[str], tutorial_encoder: list[str], data: str,
              quick: bool, dtype: str) -> None:
    print("accuracy after a fixed budget …", flush=True)
    budget = ["--train-examples", "256" if quick else "1024", "--eval-examples",
              "256" if quick else "1000", "--epochs", "1", "--seq-length", "128"]
    results["accuracy"] = {
        "bertclf": worker([*tf_worker, "accuracy", "--recipe", "bertclf", "--data", data, *budget,
                           "--compute-dtype", dtype]),
        "tutorial": worker([*tf_worker, "accuracy", "--recipe", "tutorial", "--data", data, *budget,
                            *tutorial_encoder], env=PLAIN_TF),
    }


def _export_for_serving(scratch: Path, data: str) -> str | None:
    """A quick bertclf export (one short epoch) to time the serving signature."""
    out = scratch / "serve_models"
    cmd = [PY, "-m", "app.train", "--data", data, "--max-train-examples", "64", "--max-eval-examples", "16",
           "--epochs", "1", "--batch-size", "16", "--run-dir", str(scratch / "serve_run"),
           "--output-dir", str(out), "--model-name", "bench"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    versions = sorted((out / "bench").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1)
    return str(versions[-1])


def _new_name(out_dir: Path) -> str:
    """<date>-<host>.json, or -2, -3 … when this machine already ran today (reruns are kept)."""
    base = f"{datetime.date.today().isoformat()}-{platform.node() or 'host'}"
    names = (base + ("" if n == 1 else f"-{n}") + ".json" for n in itertools.count(1))
    return next(name for name in names if not (out_dir / name).exists())


def _figures(r: dict) -> dict[str, float]:
    """Every throughput of a results file, by name."""
    out = {f"train {seq} {name}": _rate(v)
           for seq, row in r.get("train", {}).items() for name, v in row.items()}
    for name, v in r.get("serve", {}).items():
        if isinstance(v, dict):
            out.update({f"serve {name} {b}": _rate(v.get(b)) for b in ("batch1", "batch64", "batch1_short")})
    out.update({f"ratio {k}": v for k, v in r.get("ratios", {}).items() if isinstance(v, float)})
    return {k: v for k, v in out.items() if v}


def compare(a: dict, b: dict) -> str:
    """A table of each figure in two runs and their difference relative to the first run."""
    fa, fb = _figures(a), _figures(b)
    lines = [f"| figure | {a['date']} | {b['date']} | difference |", "| --- | --- | --- | --- |"]
    diffs = []
    for key in [k for k in fa if k in fb]:
        d = fb[key] / fa[key] - 1
        diffs.append(abs(d))
        lines.append(f"| {key} | {fa[key]:.2f} | {fb[key]:.2f} | {d * 100:+.1f} % |")
    if diffs:
        median = sorted(diffs)[len(diffs) // 2]
        lines.append(f"\n{len(diffs)} figures; median |difference| {median * 100:.1f} %, "
                     f"largest {max(diffs) * 100:.1f} %, {sum(d > 0.10 for d in diffs)} over 10 %")
    peaks = [k for k in a.get("peak_gflops", {}) if k in b.get("peak_gflops", {})]
    if peaks:  # not a figure of ours, but the machine's own speed in each run
        lines.append("machine's peak matmul GFLOP/s: " + ", ".join(
            f"{k} {a['peak_gflops'][k]:.0f} → {b['peak_gflops'][k]:.0f}" for k in peaks))
    return "\n".join(lines)


def _rate(entry: dict | None) -> float | None:
    return entry.get("examples_per_second") if isinstance(entry, dict) else None


def _ratios(r: dict) -> dict:
    row = r["train"].get("128", {})
    ours, tut = _rate(row.get("bertclf")), _rate(row.get("tutorial"))
    plain = _rate(row.get("bertclf_plain"))
    hf = [x for x in (_rate(row.get("transformers_fp32")), _rate(row.get("transformers_bf16"))) if x]
    dtype = {"bfloat16": "bf16", "float32": "fp32"}[r.get("compute_dtype", "bfloat16")]
    peak = r.get("peak_gflops", {}).get(dtype)  # of the dtype bertclf's matmuls ran in
    # Training FLOPs per example ≈ seq × (6 × non-embedding params + 12 × layers × width × seq),
    # at the mean padded length bertclf's batches had (length buckets pad less than 128).
    layers, width = 6, 384
    seq = (row.get("bertclf") or {}).get("mean_padded_length") or 128
    non_embedding = layers * 12 * width * width
    flops = seq * (6 * non_embedding + 12 * layers * width * seq)
    serve = r.get("serve", {})
    s_ours = _rate(serve.get("bertclf", {}).get("batch64"))
    s_tut = _rate(serve.get("tutorial", {}).get("batch64"))
    s_plain = _rate(serve.get("bertclf_no_fusion", {}).get("batch64"))
    by_pass = {k: (row.get(k) or {}).get("passes") or [] for k in RATIO_ROWS}
    hf_passes = [p for p in (by_pass["transformers_fp32"], by_pass["transformers_bf16"]) if p]
    hf_by_pass = [max(v) for v in zip(*hf_passes, strict=True)]
    return {
        "ratios": {
            "train_vs_tutorial": ours / tut if ours and tut else None,
            "train_vs_transformers": ours / max(hf) if ours and hf else None,
            # the same ratios within each pass (run.py --passes): how far one pass moves them
            "train_vs_tutorial_by_pass": list(map(operator.truediv, by_pass["bertclf"], by_pass["tutorial"])),
            "train_vs_transformers_by_pass": list(map(operator.truediv, by_pass["bertclf"], hf_by_pass)),
            "fast_vs_plain": ours / plain if ours and plain else None,
            "fast_vs_plain_by_pass": list(map(operator.truediv, by_pass["bertclf"],
                                              by_pass["bertclf_plain"])),
            "serve_vs_tutorial": s_ours / s_tut if s_ours and s_tut else None,
            "serve_no_fusion_vs_tutorial": s_plain / s_tut if s_plain and s_tut else None,
        },
        "train_flops_per_example_128": flops,
        "mean_padded_length_128": seq,
        "mfu": ours * flops / (peak * 1e9) if ours and peak else None,
    }


def _table(r: dict) -> str:
    def f(x, d=1):
        return "—" if x is None else f"{x:.{d}f}"

    peak, spread = r["peak_gflops"], r.get("peak_gflops_p10_p90", {})

    def peak_cell(k):  # the median, and the 10th-90th percentile of the windows where recorded
        lo_hi = spread.get(k)
        return f(peak[k], 0) + (f" ({f(lo_hi[0], 0)}–{f(lo_hi[1], 0)})" if lo_hi else "")

    lines = [f"Measured {r['date']} on {r['cpu']} ({r['cores']} cores), {r['data']}, "
             f"batch {r['batch_size']}. Peak matmul: fp32 {peak_cell('fp32')} GFLOP/s, "
             f"bf16 {peak_cell('bf16')} GFLOP/s"
             + (f" (median of short windows over {f(r['peak_probe_seconds'], 0)} s; in brackets the "
                "10th–90th percentile: how far the machine's own speed moved)." if spread else ".")
             + (f" The run took {r['run_seconds'] // 60} m {r['run_seconds'] % 60:02d} s."
                if "run_seconds" in r else ""), "",
             "| training, examples/s | " + " | ".join(f"{s} tokens" for s in r["train"]) + " |",
             "| --- |" + " --- |" * len(r["train"])]
    dtype = {"bfloat16": "bf16", "float32": "fp32"}[r.get("compute_dtype", "bfloat16")]
    names = {"bertclf": f"**bertclf** (default: fast {dtype} encoder, length buckets, CPU fusion)",
             "bertclf_plain": f"bertclf with the plain encoder ({dtype}, app/model/bert.py)",
             "bertclf_no_buckets": "bertclf, without length buckets",
             "bertclf_no_fusion": "bertclf, trained without CPU fusion",
             "bertclf_fp32": "bertclf, fp32 encoder",
             "tutorial": "TF tutorial recipe (fp32)", "transformers_fp32": "Transformers + PyTorch fp32",
             "transformers_bf16": "Transformers + PyTorch bf16 autocast",
             "keras_hub": "keras-hub BertTextClassifier"}
    def passes(values, d=1):  # each pass's figure, where a row was measured more than once
        return f" ({', '.join(f(v, d) for v in values)})" if len(values or []) > 1 else ""

    for key, label in names.items():
        if not any(key in row for row in r["train"].values()):
            continue
        cells = [f(_rate(row.get(key))) + passes((row.get(key) or {}).get("passes"))
                 for row in r["train"].values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    repeated = [v["passes"] for row in r["train"].values() for v in row.values()
                if len(v.get("passes") or []) > 1]
    if repeated:
        moved = [max(p) / min(p) - 1 for p in repeated]
        lines += ["", f"Figures with brackets: the median of all timed windows of {max(map(len, repeated))} "
                      f"passes (each pass's figure in brackets; order reversed every other pass). "
                      f"The passes differ by {min(moved) * 100:.0f}–{max(moved) * 100:.0f} %."]
    ratios = r["ratios"]
    lines += ["", "| ratio (128 tokens; each pass's in brackets) | value |", "| --- | --- |",
              f"| bertclf / tutorial (training) | {f(ratios['train_vs_tutorial'], 2)}"
              f"{passes(ratios.get('train_vs_tutorial_by_pass'), 2)} |",
              f"| bertclf / best Transformers (training) | {f(ratios['train_vs_transformers'], 2)}"
              f"{passes(ratios.get('train_vs_transformers_by_pass'), 2)} |",
              f"| fast / plain encoder (training) | {f(ratios.get('fast_vs_plain'), 2)}"
              f"{passes(ratios.get('fast_vs_plain_by_pass'), 2)} |",
              f"| bertclf / tutorial (serving, batch 64) | {f(ratios['serve_vs_tutorial'], 2)} |",
              f"| the same, CPU fusion off (as TF Serving runs it) | "
              f"{f(ratios.get('serve_no_fusion_vs_tutorial'), 2)} |",
              f"| model FLOPs utilisation vs {dtype} peak (mean padded length "
              f"{f(r.get('mean_padded_length_128'))}) | {f((r['mfu'] or 0) * 100, 1)} % |"]
    serve = r.get("serve", {})
    if all("batch1" in serve.get(k, {}) for k in ("bertclf", "tutorial")):
        lines += ["", "| serving | batch 1 ex/s | p50 ms | p99 ms | batch 64 ex/s | "
                      "12-word texts, batch 1: p50 ms | p99 ms |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for key in ("bertclf", "bertclf_no_fusion", "tutorial"):
            if "batch1" not in serve.get(key, {}):
                continue
            b1, b64 = serve[key]["batch1"], serve[key]["batch64"]
            short = serve[key].get("batch1_short", {})
            lines.append(f"| {key} | {f(b1['examples_per_second'])} | {f(b1['p50_ms'])} | "
                         f"{f(b1['p99_ms'])} | {f(b64['examples_per_second'])} | "
                         f"{f(short.get('p50_ms'))} | {f(short.get('p99_ms'))} |")
    acc = r.get("accuracy", {})
    if acc:
        lines += ["", "| same budget | accuracy | train seconds |", "| --- | --- | --- |"]
        for key in ("bertclf", "tutorial"):
            a = acc.get(key, {})
            lines.append(f"| {key} | {f(a.get('accuracy'), 4)} | {f(a.get('train_seconds'), 0)} |")
    lines += [f"\nNote: {note}." for note in r.get("notes", [])]
    return "\n".join(lines)


def _update_readme(table: str) -> None:
    readme = HERE / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n\n<!-- results -->\n<!-- /results -->\n"
    new = re.sub(r"<!-- results -->.*<!-- /results -->", f"<!-- results -->\n{table}\n<!-- /results -->",
                 text, flags=re.S)
    readme.write_text(new)


def _cpu_name() -> str:
    from app.runtime import cpu_name

    return cpu_name()


def code_commit() -> str | None:
    """The commit the benchmark's code is at (with "+changes" when the tree differs from it), so
    that a result names the code it measured; None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+changes" if dirty else head


if __name__ == "__main__":
    raise SystemExit(main())
