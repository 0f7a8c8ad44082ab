"""bench/run.py's bookkeeping: rows measured in several passes, their ratios, the table, --compare.

The measurements themselves need the real weights and minutes per worker (`make bench`); what is
checked here is what the harness makes of their results, on made-up figures.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(rate: float, windows: list[float], **extra) -> dict:
    return {"examples_per_second": rate, "windows": windows, "wall_seconds": 10.0, **extra}


def results(run, bertclf: list[dict], tutorial: list[dict]) -> dict:
    hf = [row(10.0, [10.0]), row(11.0, [11.0])]
    train = {"128": {"bertclf": run._pooled(bertclf), "tutorial": run._pooled(tutorial),
                     "transformers_fp32": run._pooled([row(8.0, [8.0]), row(9.0, [9.0])]),
                     "transformers_bf16": run._pooled(hf)}}
    r = {"date": "2026-11-26T00:00:00", "cpu": "test CPU", "cores": 2, "data": "sample", "batch_size": 32,
         "train": train, "peak_gflops": {"fp32": 100.0, "bf16": 200.0}}
    r.update(run._ratios(r))
    return r


def test_a_row_of_several_passes_is_the_median_of_all_their_windows(run):
    pooled = run._pooled([row(2.0, [1.0, 2.0, 3.0], cpu_fusion=True), row(5.0, [4.0, 5.0, 6.0, 7.0])])
    assert pooled["examples_per_second"] == 4.0
    assert pooled["windows"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert pooled["passes"] == [2.0, 5.0]
    assert pooled["wall_seconds"] == 20.0
    assert pooled["cpu_fusion"] is True  # the first pass's other fields


def test_a_failed_pass_is_left_out_and_a_single_pass_kept_as_is(run):
    failed = {"error": "killed"}
    assert run._pooled([failed, row(3.0, [3.0]), row(5.0, [5.0])])["passes"] == [3.0, 5.0]
    single = row(3.0, [2.0, 3.0, 4.0])
    assert run._pooled([single]) is single
    assert run._pooled([failed]) is failed


def test_ratios_are_taken_from_the_pooled_rows_and_within_each_pass(run):
    r = results(run, [row(20.0, [20.0]), row(30.0, [30.0])], [row(10.0, [10.0]), row(12.0, [12.0])])
    ratios = r["ratios"]
    assert ratios["train_vs_tutorial"] == pytest.approx(25.0 / 11.0)
    assert ratios["train_vs_tutorial_by_pass"] == pytest.approx([2.0, 2.5])
    # the best Transformers figure of each pass: bf16 10 then 11
    assert ratios["train_vs_transformers"] == pytest.approx(25.0 / 10.5)
    assert ratios["train_vs_transformers_by_pass"] == pytest.approx([2.0, 30.0 / 11.0])


def test_the_table_shows_each_pass_and_how_far_the_passes_moved(run):
    r = results(run, [row(20.0, [20.0]), row(30.0, [30.0])], [row(10.0, [10.0]), row(12.0, [12.0])])
    table = run._table(r)
    assert "| 25.0 (20.0, 30.0) |" in table
    assert "| 11.0 (10.0, 12.0) |" in table
    assert "| bertclf / tutorial (training) | 2.27 (2.00, 2.50) |" in table
    assert "of 2 passes" in table and "differ by 10–50 %" in table
    assert "keras-hub" not in table  # rows a run did not measure are left out


def test_compare_reads_runs_with_per_pass_ratios(run):
    a = results(run, [row(20.0, [20.0]), row(30.0, [30.0])], [row(10.0, [10.0]), row(12.0, [12.0])])
    b = results(run, [row(22.0, [22.0]), row(33.0, [33.0])], [row(10.0, [10.0]), row(12.0, [12.0])])
    out = run.compare(a, b)
    assert "| train 128 bertclf | 25.00 | 27.50 | +10.0 % |" in out
    assert "| ratio train_vs_tutorial | 2.27 | 2.50 | +10.0 % |" in out
    assert "by_pass" not in out


def test_the_table_shows_how_far_the_machines_own_matmul_rate_moved(run):
    r = results(run, [row(20.0, [20.0])], [row(10.0, [10.0])])
    assert "bf16 200 GFLOP/s." in run._table(r)  # results from before the range was recorded
    r.update(peak_gflops_p10_p90={"fp32": [90.0, 110.0], "bf16": [120.0, 260.0]}, peak_probe_seconds=20)
    table = run._table(r)
    assert "fp32 100 (90–110) GFLOP/s, bf16 200 (120–260) GFLOP/s" in table
    assert "over 20 s" in table
    assert "The run took" not in table  # results from before the run's time was recorded
    r["run_seconds"] = 1751
    assert "moved). The run took 29 m 11 s." in run._table(r)


def test_compare_shows_the_machines_peak_apart_from_the_figures(run):
    a = results(run, [row(20.0, [20.0])], [row(10.0, [10.0])])
    b = {**a, "peak_gflops": {"fp32": 100.0, "bf16": 400.0}}
    out = run.compare(a, b)
    assert "median |difference| 0.0 %" in out  # the machine's speed is not one of our figures
    assert "machine's peak matmul GFLOP/s: fp32 100 → 100, bf16 200 → 400" in out


def test_without_a_bf16_row_the_best_transformers_figure_is_fp32s_and_the_table_says_why(run):
    r = results(run, [row(20.0, [20.0]), row(30.0, [30.0])], [row(10.0, [10.0]), row(12.0, [12.0])])
    del r["train"]["128"]["transformers_bf16"]
    r["notes"] = ["no Transformers bf16 row: this CPU has no native bfloat16 (AVX512-BF16 or AMX)"]
    r.update(run._ratios(r))
    assert r["ratios"]["train_vs_transformers"] == pytest.approx(25.0 / 8.5)
    assert r["ratios"]["train_vs_transformers_by_pass"] == pytest.approx([20.0 / 8.0, 30.0 / 9.0])
    assert "Note: no Transformers bf16 row" in run._table(r)


def test_the_fast_encoders_gain_over_the_plain_one_is_a_ratio_of_its_own(run):
    r = results(run, [row(20.0, [20.0]), row(30.0, [30.0])], [row(10.0, [10.0]), row(12.0, [12.0])])
    r["train"]["128"]["bertclf_plain"] = run._pooled([row(10.0, [10.0]), row(15.0, [15.0])])
    r.update(run._ratios(r))
    assert r["ratios"]["fast_vs_plain"] == pytest.approx(25.0 / 12.5)
    assert r["ratios"]["fast_vs_plain_by_pass"] == pytest.approx([2.0, 2.0])
    assert "| fast / plain encoder (training) | 2.00 (2.00, 2.00) |" in run._table(r)


def _load(name: str):
    import sys

    bench = str(RUN.parent)
    if bench not in sys.path:
        sys.path.insert(0, bench)
    spec = importlib.util.spec_from_file_location(f"bench_{name}", RUN.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_recipes_epochs_over_small_data_are_whole_shuffled_passes():
    common = _load("common")
    order = common.training_order(10, 25, seed=0)
    assert len(order) == 25
    assert sorted(order[:10]) == list(range(10)) and sorted(order[10:20]) == list(range(10))
    assert list(order[:10]) != list(order[10:20])  # each pass shuffled anew
    assert list(common.training_order(10, 25, seed=0)) == list(order)


def test_the_small_data_bench_samples_labels_apart_from_the_texts_it_leaves_unlabelled(tmp_path):
    import pandas as pd

    small = _load("tta_small")
    frame = pd.DataFrame({"text": [f"review {i}" for i in range(100)], "label": ["neg", "pos"] * 50})
    frame.to_csv(tmp_path / "train.csv", index=False)
    labelled, unlabeled = small.sample(tmp_path / "train.csv", 20, 1, tmp_path / "out")
    chosen, rest = pd.read_csv(labelled), pd.read_csv(unlabeled)
    assert len(chosen) == 20 and chosen["label"].value_counts().tolist() == [10, 10]
    assert list(rest.columns) == ["text"] and len(rest) == 80
    assert not set(chosen["text"]) & set(rest["text"])


def test_the_small_data_summary_averages_each_recipes_seeds_and_skips_failures(tmp_path):
    small = _load("tta_small")
    runs = [{"contender": "tfidf", "size": 64, "seed": s, "accuracy": a}
            for s, a in enumerate((0.6, 0.7, 0.8))]
    runs += [{"contender": "bertclf", "size": 64, "seed": 0, "accuracy": 0.9},
             {"contender": "bertclf", "size": 64, "seed": 1, "error": "killed"}]
    results = {"runs": runs, "date": "2026-12-07", "cpu": "test CPU", "cores": 2, "held_out": 5000,
               "seeds": [0, 1, 2], "plot": "p.png"}
    results["summary"] = small.summary(results)
    assert results["summary"]["tfidf"]["64"]["mean"] == pytest.approx(0.7)
    assert results["summary"]["bertclf"]["64"]["seeds"] == [0.9]
    text = small.table(results)
    assert "| tfidf | 70.00 % |" in text and "| bertclf | 90.00 % |" in text
    small.plot(results, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_the_small_data_bench_merges_partial_runs_and_keeps_runs_told_more_apart(tmp_path):
    small = _load("tta_small")

    def part(name, runs, **extra):
        body = {"date": "2026-12-07T10:00:00", "cpu": "test CPU", "cores": 2, "held_out": 5000, "minutes": 10,
                "commit": "abc1234", "runs": runs, **extra}
        (tmp_path / name).write_text(json.dumps(body))
        return tmp_path / name

    first = part("a.json", [{"contender": "tfidf", "size": 64, "seed": 0, "accuracy": 0.6},
                            {"contender": "tutorial", "size": 64, "seed": 0, "accuracy": 0.5}])
    second = part("b.json", [{"contender": "tfidf", "size": 64, "seed": 0, "accuracy": 0.7},
                             {"contender": "bertclf", "size": 64, "seed": 0, "accuracy": 0.8}])
    told = part("c.json", [{"contender": "bertclf", "size": 1000, "seed": 0, "accuracy": 0.9}],
                bertclf_flags="--regime contrastive")
    merged = small.merge([first, second, told])
    assert merged["summary"]["tfidf"]["64"]["seeds"] == [0.7]  # measured twice: the later file's
    assert merged["summary"]["tutorial"]["64"]["seeds"] == [0.5]
    assert merged["summary"]["bertclf"] == {"64": {"mean": 0.8, "seeds": [0.8]}}
    assert merged["summary"]["bertclf (--regime contrastive)"]["1000"]["seeds"] == [0.9]
    assert {r["source"] for r in merged["runs"]} == {"a.json", "b.json", "c.json"}
    assert [m["commit"] for m in merged["merged_from"]] == ["abc1234"] * 3
    small.write_merged(merged, no_readme=True, out_dir=tmp_path)
    written = json.loads(next(tmp_path.glob("*-tta-small-merged.json")).read_text())
    assert written["summary"] == merged["summary"] and next(tmp_path.glob("*-tta-small-merged.png"))
    assert "Merged from `a.json`, `b.json`, `c.json`." in small.table(merged)

    other = part("d.json", [], held_out=1000)
    with pytest.raises(ValueError, match="d.json: held_out is 1000"):
        small.merge([first, other])


def test_the_ensemble_bench_counts_sure_encoder_answers_a_rule_dilutes_and_fits_rules_apart():
    import numpy as np

    ensembles = _load("ensembles")
    y = np.array([1, 1, 0, 0])
    encoder = np.array([[0.05, 0.95], [0.05, 0.95], [0.6, 0.4], [0.95, 0.05]])
    combined = np.array([[0.3, 0.7], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1]])
    # Sure and right: texts 0, 1, 3. Only text 0 comes back below 0.75; text 2 was never sure.
    assert ensembles.diluted(encoder, combined, y) == 1
    assert ensembles.diluted(encoder, encoder, y) == 0

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    right = np.where(rng.random(200) < 0.8, labels, 1 - labels)  # each model 80 % right, apart
    sure = np.eye(2)[right] * 0.8 + 0.1
    grams = np.eye(2)[np.where(rng.random(200) < 0.8, labels, 1 - labels)] * 0.4 + 0.3
    figures = ensembles.cross_fitted({"encoder": sure, "ngram": grams, "known": np.ones(200, bool)}, labels)
    assert set(figures) == {"average", "log-linear"}
    for rule in figures.values():
        assert 0.7 <= rule["accuracy"] <= 1.0 and rule["sure_encoder_diluted"] >= 0
