"""app.training.budget: the sequence length from the data, the plan for a time budget, the throughput
probe and its cache; then `app.train --time-budget` end to end on the tiny encoder, with
`app.training.fit.Deadline` keeping a run that is slower than its probe within the budget (slow tier)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from app import config, train
from app.training import budget, contrastive, optimization
from tests.conftest import tiny_train_args

# 1 ms per example per word piece plus a quadratic term: 128 tokens cost 0.128 + 0.016 s.
THROUGHPUT = budget.Throughput(train=(1e-3, 1e-6), predict=(3e-4, 3e-7), startup=10.0)


def _fits(plan: budget.Plan) -> float:
    """The examples the plan's estimate trains on in the time (it plans more: the deadline ends it)."""
    return plan.train_examples * plan.expected_epochs


def test_auto_seq_length_holds_three_quarters_of_the_texts():
    tweets = np.full(100, 20)
    assert budget.auto_seq_length(tweets, 512)[0] == 64
    news = np.concatenate([np.full(80, 100), np.full(20, 400)])  # 75th percentile 102
    length, why = budget.auto_seq_length(news, 512)
    assert length == 128 and "102 word pieces" in why
    reviews = np.full(100, 700)
    length, why = budget.auto_seq_length(reviews, 512)
    assert length == budget.AUTO_MAX_LENGTH and "capped" in why
    assert budget.auto_seq_length(reviews, 100)[0] == 64  # the largest candidate under the limit


def test_padded_lengths_follow_the_buckets():
    lengths = np.array([5, 30, 31, 200])
    assert budget.padded_lengths(lengths, 128, 32).tolist() == [32, 32, 64, 128]
    assert budget.padded_lengths(lengths, 128, None).tolist() == [128] * 4


def test_fit_cost_recovers_a_linear_plus_quadratic_cost():
    a, b = 2e-3, 5e-6
    measured = {length: a * length + b * length ** 2 for length in (128, 256)}
    fitted = budget.fit_cost(measured)
    assert fitted == pytest.approx((a, b), rel=1e-6)
    assert budget.fit_cost({128: 0.256}) == pytest.approx((2e-3, 0.0))
    # Noise that makes long sequences cheaper per token falls back to a linear cost.
    linear, quadratic = budget.fit_cost({128: 0.3, 256: 0.5})
    assert quadratic == 0.0 and linear > 0
    with pytest.raises(ValueError, match="no throughput"):
        budget.fit_cost({})


def test_a_long_budget_takes_the_long_sequences_and_every_example():
    lengths = np.full(1000, 600)  # long texts: 512 is what they need
    plan = budget.make_plan(10_000, lengths, 1000, 200, THROUGHPUT, 512, 32, None)
    assert plan.seq_length == 512
    per_example = 1e-3 * 512 + 1e-6 * 512 ** 2
    assert plan.train_examples == 1000
    # The estimate fits more than MAX_EPOCHS: it counts that many, the plan allows twice as many
    # (a run faster than its probe trains on), and a run that finishes them ends early.
    assert (10_000 - 10) * 0.9 / per_example / 1000 > budget.MAX_EPOCHS * budget.HEADROOM
    assert plan.expected_epochs == budget.MAX_EPOCHS and plan.epochs == budget.MAX_EPOCHS * budget.HEADROOM
    assert plan.train_seconds <= (10_000 - 10) * (1 - budget.VALIDATION_SHARE) + 1
    assert plan.train_seconds + plan.validation_seconds + plan.startup_seconds <= 10_000


def test_a_short_budget_takes_the_length_the_accuracy_model_rates_best():
    lengths = np.full(20_000, 600)
    plan = budget.make_plan(15 * 60, lengths, 20_000, 5000, THROUGHPUT, 512, 32, None)
    options = {o["seq_length"]: o for o in plan.options}
    assert set(options) == {64, 128, 256, 384, 512}
    assert options[plan.seq_length]["estimate"] == max(o["estimate"] for o in plan.options)
    # With the n-gram model beside it, more examples beat more of each text: the shortest wins here.
    assert plan.seq_length == 64 and options[512]["train_examples"] < options[64]["train_examples"]
    # Every example is planned over twice the epochs the estimate fits: the deadline ends it.
    fits = options[64]["train_examples"] * options[64]["epochs"]
    assert plan.expected_epochs == pytest.approx(fits / 20_000, rel=1e-3) and plan.expected_epochs < 1
    assert plan.train_examples == 20_000 and plan.epochs == math.ceil(budget.HEADROOM * plan.expected_epochs)
    assert plan.validation_examples < 5000  # validation kept to its share of the budget
    assert plan.validation_seconds <= (15 * 60 - 10) * budget.VALIDATION_SHARE + 1
    assert f"{plan.seq_length} word pieces" in plan.why and "accuracy model rates" in plan.why
    # With two hours, the encoder alone (text pairs: no n-gram model) needs the words it would cut.
    hours = [budget.make_plan(2 * 3600, lengths, 20_000, 5000, THROUGHPUT, 512, 32, None, ngram=ngram)
             for ngram in (True, False)]
    assert hours[0].seq_length == 64 and hours[1].seq_length == 512


def test_the_plan_moves_smoothly_with_the_probe():
    """A probe off by a few per cent changes the plan's estimate by little, wherever the choice
    between lengths flips: no cliff turns a probe error into a much worse plan."""
    lengths = np.random.default_rng(0).lognormal(np.log(230), 0.6, 5000).astype(int)
    estimates = []
    for scale in np.geomspace(0.25, 4, 200):
        slower = dataclasses.replace(THROUGHPUT, correction=float(scale))
        plan = budget.make_plan(30 * 60, lengths, 20_000, 2000, slower, 512, 32, None)
        estimates.append(max(o["estimate"] for o in plan.options))
    steps = np.abs(np.diff(estimates))
    assert np.all(np.diff(estimates) <= 1e-9)  # a slower machine never plans a better run
    assert steps.max() < 0.004  # 1.4 % slower at most costs under 0.4 points
    a, b = (budget.make_plan(30 * 60, lengths, 20_000, 2000, dataclasses.replace(THROUGHPUT, correction=c),
                             512, 32, None) for c in (1.0, 1.15))
    chosen = [max(o["estimate"] for o in p.options) for p in (a, b)]
    assert abs(chosen[0] - chosen[1]) < 0.005


def test_a_faster_run_than_the_probe_has_epochs_to_spend():
    """Planned epochs cover a run going up to HEADROOM times faster than its probe."""
    lengths = np.full(5000, 100)
    for budget_seconds in (300, 900, 1800):
        plan = budget.make_plan(budget_seconds, lengths, 5000, 500, THROUGHPUT, 512, 32, None)
        capacity = plan.expected_epochs * budget.HEADROOM  # epochs a run twice as fast would fit
        assert plan.epochs >= capacity - 1e-9
        assert plan.train_examples == 5000


def test_short_texts_are_not_padded_to_long_sequences():
    lengths = np.full(5000, 30)  # 90 % hold in 64: no longer length is considered
    plan = budget.make_plan(600, lengths, 5000, 500, THROUGHPUT, 512, 32, None)
    assert plan.seq_length == 64 and [o["seq_length"] for o in plan.options] == [64]


def test_length_buckets_make_short_texts_cheaper():
    lengths = np.concatenate([np.full(900, 40), np.full(100, 500)])
    without = budget.make_plan(300, lengths, 100_000, 500, THROUGHPUT, 512, 32, None, seq_length=512)
    with_buckets = budget.make_plan(300, lengths, 100_000, 500, THROUGHPUT, 512, 32,
                                    lambda length: 64, seq_length=512)
    assert _fits(with_buckets) > 3 * _fits(without)


def test_given_length_and_epochs_are_kept():
    lengths = np.full(1000, 600)
    plan = budget.make_plan(3600, lengths, 1000, 100, THROUGHPUT, 512, 32, None, seq_length=128, epochs=2)
    assert (plan.seq_length, plan.epochs) == (128, 2)
    assert [o["seq_length"] for o in plan.options] == [128]


def test_probe_time_comes_off_the_budget():
    lengths = np.full(100_000, 100)
    fresh = budget.make_plan(600, lengths, 100_000, 100, THROUGHPUT, 512, 32, None, seq_length=128)
    probed = budget.make_plan(600, lengths, 100_000, 100, THROUGHPUT, 512, 32, None, seq_length=128,
                              spent_seconds=300)
    assert _fits(probed) < 0.6 * _fits(fresh)
    assert probed.startup_seconds == pytest.approx(310)


def test_a_budget_too_small_for_one_batch_says_how_much_is_needed():
    too_small = r"--time-budget 0.2 minutes trains only \d+ examples .* give at least"
    with pytest.raises(ValueError, match=too_small):
        budget.make_plan(12, np.full(100, 600), 1000, 100, THROUGHPUT, 512, 32, None)
    with pytest.raises(ValueError, match="--time-budget must be positive"):
        budget.make_plan(0, np.full(100, 60), 1000, 100, THROUGHPUT, 512, 32, None)


def test_probe_times_each_length_and_counts_compiling_as_startup(monkeypatch):
    now = [0.0]
    calls = []

    def train_step(length):  # a step costs 8 examples x (1e-3 L + 1e-6 L^2); a new shape 5 s more
        calls.append(length)
        now[0] += 8 * (1e-3 * length + 1e-6 * length ** 2) + (5.0 if calls.count(length) == 1 else 0.0)

    def predict_step(length):
        now[0] += 8 * 3e-4 * length

    monkeypatch.setattr(budget.time, "perf_counter", lambda: now[0])
    result = budget.probe(train_step, predict_step, (128, 256), batch_size=8, repeats=2, warmup=3)
    assert calls == [128] * 5 + [256] * 5
    assert result.train == pytest.approx((1e-3, 1e-6))
    assert result.predict == pytest.approx((3e-4, 0.0), abs=1e-9)
    assert result.startup == pytest.approx(10.0)


def test_throughput_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTCLF_CACHE_DIR", str(tmp_path / "cache"))
    key = budget.machine_key(encoder="tiny", dtype="float32")
    assert key != budget.machine_key(encoder="tiny", dtype="bfloat16")
    assert budget.cached_throughput(key) is None
    budget.save_throughput(key, THROUGHPUT)
    assert budget.cached_throughput(key) == THROUGHPUT
    (tmp_path / "cache" / "throughput.json").write_text("{not json")
    assert budget.cached_throughput(key) is None  # a broken cache means a new probe, not an error


def test_a_slower_run_corrects_the_next_plan_halfway():
    slower = budget.corrected(THROUGHPUT, planned_seconds=100, measured_seconds=400)
    assert slower.correction == pytest.approx(2.0)
    one = np.array([128])
    assert slower.train_seconds(one) == pytest.approx(2 * THROUGHPUT.train_seconds(one))
    assert budget.corrected(THROUGHPUT, 0, 10) == THROUGHPUT


def test_a_finished_run_records_its_rate_and_corrects_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTCLF_CACHE_DIR", str(tmp_path / "cache"))
    key = budget.machine_key(encoder="tiny")
    plan = {"seconds_per_example": 0.1, "startup_seconds": 10.0, "throughput": THROUGHPUT.to_dict(),
            "throughput_key": key}
    # 100 steps of 8: planned 80 s; trained in 170 s less 10 s of start-up, twice as slow.
    rates = budget.learn_from_run(plan, steps=100, batch_size=8, training_seconds=170.0)
    assert rates == {"planned_examples_per_second": 10.0, "trained_examples_per_second": 5.0}
    assert budget.cached_throughput(key).correction == pytest.approx(2 ** 0.5)  # halfway, geometrically
    assert budget.learn_from_run(plan, steps=0, batch_size=8, training_seconds=170.0) == {}


def test_a_contrastive_run_corrects_the_cache_by_its_pairs_pace(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTCLF_CACHE_DIR", str(tmp_path / "cache"))
    key = budget.machine_key(encoder="tiny")
    plan = {"contrastive_pair_seconds": 0.1, "throughput": THROUGHPUT.to_dict(), "throughput_key": key}
    # Planned 1.6 s a step of 16 pairs; they trained at 0.4 s (a probe 4x pessimistic).
    rates = budget.learn_from_pairs(plan, step_seconds=0.4, batch_size=16)
    assert rates == {"planned_pairs_per_second": 10.0, "trained_pairs_per_second": 40.0}
    assert budget.cached_throughput(key).correction == pytest.approx(0.5)  # halfway, geometrically
    one = np.array([128])
    plan["throughput"] = budget.cached_throughput(key).to_dict()
    assert budget.learn_from_pairs(plan, step_seconds=None, batch_size=16) == {}  # no pace: unchanged
    halved = 0.5 * THROUGHPUT.train_seconds(one)
    assert budget.cached_throughput(key).train_seconds(one) == pytest.approx(halved)


# ----------------------------------------------------------------------------- end to end


def _parse(argv):
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.build_config(parser.parse_args(argv))


def _budget_args(tiny_hub, data, tmp, minutes: float, **flags) -> list[str]:
    """tiny_train_args without the epochs and length, which the budget plans, and the patience
    (a budget's deadline ends training)."""
    args = tiny_train_args(tiny_hub, data, tmp, time_budget=minutes, **flags)
    drop = {"--epochs", "--max-seq-length", "--patience"} - {f"--{k.replace('_', '-')}" for k in flags}
    pairs = list(zip(args[::2], args[1::2], strict=True))
    return [x for k, v in pairs if k not in drop for x in (k, v)]


def test_a_time_budget_plans_the_run_and_records_it(tiny_hub, tiny_reviews, tmp_path):
    # Room for the pairs and three epochs of the head even on a loaded machine (180 training
    # reviews: the contrastive regime).
    budget_seconds = 90
    result = train.run(_parse(_budget_args(tiny_hub, tiny_reviews, tmp_path, budget_seconds / 60)))
    saved = json.loads((result.export_dir / "assets" / "config.json").read_text())
    record = json.loads((result.export_dir / "assets" / "record.json").read_text())
    plan, training = saved["plan"], record["training"]
    # The tiny reviews are short and few: the shortest length, every example, the most epochs.
    assert saved["settings"]["max_seq_length"] == plan["seq_length"] == 64
    # The head trains MAX_EPOCHS on the frozen encoder; the pairs had the time before it.
    assert saved["settings"]["regime"] == "contrastive"
    assert saved["settings"]["epochs"] == plan["epochs"] == plan["expected_epochs"] == budget.MAX_EPOCHS
    assert 0 < record["contrastive"]["pairs"] <= budget.HEADROOM * contrastive.MAX_PAIRS_PER_EXAMPLE * 180
    assert plan["contrastive_seconds"] > 0
    assert plan["train_examples"] == record["data"]["examples"]["train"] == 180
    assert plan["probe_seconds"] > 0
    assert set(plan["throughput"]) == {"train", "predict", "startup", "correction", "predict_startup"}
    assert saved["settings"]["patience"] is None  # the deadline, not a patience, ends training
    assert training["budget_seconds"] == budget_seconds and 3 <= training["epochs_run"] <= plan["epochs"]
    assert 0 < training["wall_seconds"] <= budget_seconds * 1.05
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["record"]["training"] == training and report["training"] == training
    assert report["config"] == saved and json.loads((result.run_dir / "config.json").read_text()) == saved
    # The next run on this machine reads the probe from the cache, corrected halfway (geometrically)
    # toward the pace its pairs trained at.
    cached = budget.cached_throughput(plan["throughput_key"])
    assert cached is not None and cached.train == tuple(plan["throughput"]["train"])
    planned, trained = training["planned_pairs_per_second"], training["trained_pairs_per_second"]
    moved = plan["throughput"]["correction"] * (planned / trained) ** 0.5
    assert cached.correction == pytest.approx(min(max(moved, 0.25), 4.0), rel=0.02)


@pytest.mark.slow
def test_the_deadline_stops_a_run_slower_than_its_probe(tiny_hub, tiny_reviews, tmp_path):
    """The deadline wired into a real run (its logic, on a fake clock, is in test_fit.py)."""
    import time

    import tensorflow as tf

    class SlowSteps(tf.keras.callbacks.Callback):  # what the probe did not see: 1 s a step
        rates = []

        def on_train_batch_end(self, batch, logs=None):
            time.sleep(1.0)
            self.rates.append(float(self.model.optimizer.learning_rate))

    # Fine-tuning: fit alone has the budget (a contrastive run's pairs take their time by their own
    # clock first, and may leave the slow steps too little of it to leave the warm-up).
    budget_seconds = 45
    result = train.run(_parse(_budget_args(tiny_hub, tiny_reviews, tmp_path, budget_seconds / 60,
                                           regime="fine-tune")), callbacks=[SlowSteps()])
    training = result.record.training
    schedule = result.config.schedule
    assert training["stopped_by_budget"] is True
    assert training["steps"] < schedule["total_steps"]
    # Unstopped, the sleeps alone would take total_steps seconds (69); a loaded machine slows the
    # work after fit, not the deadline's decision, so the bounds leave room for that.
    assert schedule["total_steps"] > budget_seconds * 1.5
    assert training["wall_seconds"] < budget_seconds * 1.3
    history = pd.read_csv(result.run_dir / "history.csv")
    assert history["train_seconds"].is_monotonic_increasing
    assert history["train_seconds"].max() <= budget_seconds + 5
    # The schedule followed the clock, not the steps: by the last step the rate is well below what
    # the steps alone give.
    by_steps = optimization.WarmupLinearDecay(result.config.settings.learning_rate, schedule["total_steps"],
                                              schedule["warmup_steps"])
    assert SlowSteps.rates[-1] < 0.75 * float(by_steps(len(SlowSteps.rates)))
    assert (result.export_dir / "saved_model.pb").is_file()


def test_the_sequence_length_is_the_one_asked_for_else_autos():
    lengths = np.full(100, 20)
    assert budget.sequence_length(lengths, 512) == budget.auto_seq_length(lengths, 512)
    assert budget.sequence_length(lengths, 512, requested=200) == (200, "--max-seq-length 200")


def test_the_contrastive_regime_gives_its_pairs_what_the_head_and_validations_leave():
    lengths = np.full(200, 600)
    plan = budget.make_plan(10 * 60, lengths, 200, 20, THROUGHPUT, 512, 32, None, pairs_per_example=20,
                            extra_validations=1)
    available = 10 * 60 - THROUGHPUT.startup
    per_pair = budget.PAIR_COST * THROUGHPUT.train_seconds(np.array([plan.seq_length]))
    forward = THROUGHPUT.predict_seconds(np.array([plan.seq_length]))
    assert plan.contrastive_pair_seconds == pytest.approx(per_pair, rel=1e-3)
    # The head (an embedding pass and MAX_EPOCHS epochs on the frozen encoder) and the validations
    # (one an epoch and the ensemble's) are paid for; the pairs get the rest, not a fixed share.
    # So are the start-ups between the pairs and the head (which do not scale with the pairs' pace).
    passes = (1 + budget.MAX_EPOCHS) * 200 * forward + (budget.MAX_EPOCHS + 1) * 20 * forward
    rest = passes + budget.AFTER_PAIRS_STARTUPS * THROUGHPUT.startup
    assert plan.contrastive_seconds == pytest.approx(available - rest, abs=0.1)
    assert plan.contrastive_after_seconds == pytest.approx(passes, abs=0.1)
    # The pairs stop at the budget's end less those passes; StopAt keeps the start-ups it measures.
    timing = budget.pairs_timing(plan.to_dict(), 10, started=1000.0)
    assert timing == {"until": pytest.approx(1000.0 + 600 - passes, abs=0.1),
                      "after_seconds": pytest.approx(passes, abs=0.1),
                      "startups": budget.AFTER_PAIRS_STARTUPS, "pair_seconds": plan.contrastive_pair_seconds,
                      "expected_pairs": plan.contrastive_pairs}
    # Self-training's time is kept as the deadline keeps it.
    keeping = budget.pairs_timing({**plan.to_dict(), "unlabeled_seconds": 100.0}, 10, started=1000.0)
    assert keeping["until"] == pytest.approx(timing["until"] - 100.0)
    assert plan.contrastive_pairs == min(20 * 200, int(plan.contrastive_seconds / per_pair))
    assert (plan.train_examples, plan.epochs, plan.validation_examples) == (200, budget.MAX_EPOCHS, 20)
    # The longest length that fits CONTRASTIVE_MIN_PAIRS: a longer one would fit fewer.
    options = {o["seq_length"]: o for o in plan.options}
    assert plan.contrastive_pairs >= budget.CONTRASTIVE_MIN_PAIRS
    longer = [o for length, o in options.items() if length > plan.seq_length]
    assert longer and all(o["pairs"] < budget.CONTRASTIVE_MIN_PAIRS for o in longer)
    assert str(plan.contrastive_pairs) in plan.why and "frozen encoder" in plan.why
    # Fine-tuning alone plans no pairs, and more examples in the same time.
    alone = budget.make_plan(10 * 60, lengths, 200, 20, THROUGHPUT, 512, 32, None)
    assert alone.contrastive_pairs == 0 and "pairs" not in alone.options[0]


def test_the_contrastive_regime_takes_every_pair_it_asks_for_when_they_fit():
    lengths = np.full(40, 100)
    plan = budget.make_plan(30 * 60, lengths, 40, 10, THROUGHPUT, 512, 8, None, pairs_per_example=20)
    assert plan.contrastive_pairs == 20 * 40  # fewer than CONTRASTIVE_MIN_PAIRS: all of them
    # ... and may take all the time the rest leaves (StopAt ends them there at the latest).
    assert plan.contrastive_seconds > plan.contrastive_pairs * plan.contrastive_pair_seconds
    # A budget too short for the minimum takes the length with the most pairs.
    short = budget.make_plan(5 * 60, np.full(2000, 600), 2000, 100, THROUGHPUT, 512, 32, None,
                             pairs_per_example=20)
    assert short.contrastive_pairs == max(o["pairs"] for o in short.options)
    assert short.seq_length == min(o["seq_length"] for o in short.options)
    # Fewer training texts than a batch still plan (the head trains on them all).
    few = budget.make_plan(10 * 60, np.full(12, 100), 12, 4, THROUGHPUT, 512, 32, None, pairs_per_example=20)
    assert (few.train_examples, few.contrastive_pairs) == (12, 240)


def test_unlabelled_texts_get_at_most_their_share_and_the_training_what_is_left():
    lengths = np.full(5000, 300)
    alone = budget.make_plan(10 * 60, lengths, 20_000, 20, THROUGHPUT, 512, 32, None, seq_length=256)
    plan = budget.make_plan(10 * 60, lengths, 20_000, 20, THROUGHPUT, 512, 32, None, seq_length=256,
                            unlabeled_examples=50_000, ngram_seconds=20.0)
    available = 10 * 60 - THROUGHPUT.startup
    per_text = THROUGHPUT.predict_seconds(np.array([256])) + 20.0 / 20_000
    # As many as the share holds, of the 50,000: labelling them and fitting the n-gram model again.
    assert 0 < plan.unlabeled_examples < 50_000
    assert plan.unlabeled_seconds <= budget.UNLABELED_SHARE * available + 1e-6
    assert plan.unlabeled_seconds == pytest.approx(
        plan.unlabeled_examples * per_text + THROUGHPUT.predict_startup + 20.0, abs=0.1)
    assert (budget.UNLABELED_SHARE * available - plan.unlabeled_seconds) < per_text + 0.1  # the share is used
    # The training gets the rest: fewer examples than without them, in proportion.
    assert _fits(plan) == pytest.approx(_fits(alone) * (available - plan.unlabeled_seconds) / available,
                                        rel=0.02)
    assert f"then labels {plan.unlabeled_examples} of the 50000 unlabelled texts" in plan.why
    # Few unlabelled texts: all of them; none: nothing reserved.
    few = budget.make_plan(10 * 60, lengths, 200, 20, THROUGHPUT, 512, 32, None, unlabeled_examples=100)
    assert few.unlabeled_seconds < budget.UNLABELED_SHARE * available
    assert few.unlabeled_examples == 100 and few.unlabeled_seconds > 0
    assert (alone.unlabeled_examples, alone.unlabeled_seconds) == (0, 0.0) and "unlabelled" not in alone.why


def test_the_deadline_keeps_the_plans_time_for_the_unlabelled_texts():
    plan = budget.make_plan(10 * 60, np.full(200, 300), 200, 20, THROUGHPUT, 512, 32, None,
                            unlabeled_examples=5000)
    record = {**plan.to_dict(), "throughput": THROUGHPUT.to_dict()}
    deadline = budget.deadline(record, 10, 0.0, plan.epochs)
    assert deadline.reserve() == pytest.approx(plan.unlabeled_seconds) and plan.unlabeled_seconds > 0
    without = budget.deadline({**record, "unlabeled_seconds": 0.0}, 10, 0.0, plan.epochs)
    assert without.reserve() == 0.0
