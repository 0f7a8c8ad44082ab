"""Fitting a run into the time the user has: `--max-seq-length auto` and `--time-budget MINUTES`.

`auto_seq_length` picks a sequence length from the training texts' token lengths. With a budget,
`make_plan` chooses the sequence length, the number of training and validation examples and the
epochs from those lengths and from how fast this machine trains the encoder (`Throughput`,
probed once per machine and encoder and cached, then corrected by what each budgeted run
measured: `learn_from_run` after fine-tuning, `learn_from_pairs` after the contrastive regime's
pairs). `deadline` builds the `app.training.fit.Deadline` callback that keeps `model.fit` to the
budget whatever the probe said: it stops training in time for the last validation, and it drives
the learning-rate schedule's clock, so the schedule decays to its end at the deadline even when
the steps run slower than planned. `app.train` calls this module at three points: `plan`, the
deadline, and learning from the run after training.

No TensorFlow at import: the planner is plain arithmetic, tested without a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# The lengths the planner chooses between (word pieces, [CLS] and [SEP] included).
CANDIDATE_LENGTHS = (64, 128, 256, 384, 512)
# Without a budget, `auto` keeps three quarters of the texts whole, at most AUTO_MAX_LENGTH:
# a step's cost grows faster than its length, and longer runs should be asked for.
AUTO_QUANTILE = 0.75
AUTO_MAX_LENGTH = 256
# With a budget, lengths up to the one that keeps 90 % of the texts whole are considered.
NEED_QUANTILE = 0.9
# The plan takes the length whose training the accuracy model rates best (`expected_accuracy`):
# accuracy = top - examples_term / examples seen - length_term x (share of word pieces cut).
# Fitted by least squares on the budgeted IMDb runs in bench/results (*-tta-*.json,
# 2026-12-06-budget6-zen5.json: 64 to 512 word pieces, 2,300 to 20,000 examples seen), for the
# served ensemble and for the encoder alone (no n-gram model, or text pairs). It ranks plans; it
# does not forecast a data set's accuracy. The ensemble barely gains from length (its n-gram
# model reads every word), the encoder alone does.
ACCURACY_MODEL = {"ensemble": (0.926, 74.0, 0.0004), "encoder": (0.971, 313.0, 0.123)}
# A second pass over the same examples is counted as half a pass over new ones (an assumption:
# the bench runs were single passes).
REPEAT_VALUE = 0.5
# The estimate counts at most MAX_EPOCHS over the training examples; the plan allows HEADROOM
# times the epochs the estimate fits (whole epochs): a run faster than its probe goes on training
# (more examples, another epoch) until the deadline ends it, and the learning rate decays by the
# clock, so a probe's error in either direction costs no time.
HEADROOM = 2.0
MAX_EPOCHS = 3
# Share of the budget (after the probe and start-up) spent validating, over all epochs.
VALIDATION_SHARE = 0.1
# The contrastive regime (app.training.contrastive) trains its pairs (two texts at the full length,
# `PAIR_COST` training examples' time) until the time the head's training, the validations and what
# follows them are estimated to need; it takes the best-rated length that still fits this many
# pairs (or every pair the regime asks for, when fewer), else the one with the most pairs: SetFit's
# recipe asks for pairs before length (on 64 IMDb reviews 40 pairs a text at 256 word pieces beat
# 20 at 512), and the accuracy model, fitted on fine-tuning runs, knows nothing of pairs. On 200
# reviews the length it took (256 on a Xeon) beat both 128 (more pairs) and 384 (longer texts):
# docs/time-budget.md, "Levers measured and not adopted".
CONTRASTIVE_MIN_PAIRS = 2700
# A pair's two texts take less than two training examples' time (one optimizer update for 32
# texts, no softmax head): 1.39 to 1.55 measured in budgeted IMDb runs at 256 and 384 word pieces
# (bench/results/2026-12-07-tta-small-vm-3.json, -vm-7.json, -vm-8.json, Zen 5). At 2 the plan gave
# the pairs too little time, and `StopAt`, reading their pace as a fast machine's, gave them the
# rest of the run's estimate too.
PAIR_COST = 1.5
# What runs between the pairs' stop and the head's training (the embeddings' pass, compiling the
# classifier, the head fit's input pipeline and first traces) is a fixed cost that does not scale
# with the pairs' pace: about two of the pairs' own start-ups (their first step's time beyond their
# pace), which `StopAt` measures as they begin, under the load the machine has then. It keeps this
# many free, the third for the head's per-step and validation overheads, which its forward
# passes' estimate leaves out; the plan counts as many of the probe's (docs/time-budget.md).
AFTER_PAIRS_STARTUPS = 3
# `--unlabeled-data`: labelling the unlabelled texts (one pass of the encoder) and fitting the
# n-gram model again takes at most this share of the time left; the rest trains.
UNLABELED_SHARE = 0.25
# A probe trains this many examples a step, at these lengths (or the candidates below them).
PROBE_BATCH = 8
PROBE_LENGTHS = (128, 256)


def quantile_length(token_lengths: Sequence[int], q: float) -> int:
    """The q-quantile of the texts' encoder input lengths (word pieces + [CLS] and [SEP])."""
    lengths = np.asarray(token_lengths, dtype=np.int64) + 2
    return int(np.ceil(np.quantile(lengths, q))) if len(lengths) else 2


def _smallest_candidate(length: int, limit: int) -> int:
    fits = [c for c in CANDIDATE_LENGTHS if c <= limit]
    if not fits:
        return limit
    return next((c for c in fits if c >= length), fits[-1])


def auto_seq_length(token_lengths: Sequence[int], limit: int) -> tuple[int, str]:
    """(sequence length, why): the smallest candidate holding `AUTO_QUANTILE` of the texts whole."""
    q = quantile_length(token_lengths, AUTO_QUANTILE)
    length = min(_smallest_candidate(q, limit), AUTO_MAX_LENGTH)
    median = quantile_length(token_lengths, 0.5)
    why = (f"{int(AUTO_QUANTILE * 100)} % of the training texts are at most {q} word pieces (median "
           f"{median}); {length} is the smallest of {list(CANDIDATE_LENGTHS)} holding them"
           + (f", capped at {AUTO_MAX_LENGTH} without --time-budget" if length < _smallest_candidate(q, limit)
              else ""))
    return length, why


def sequence_length(token_lengths: Sequence[int], limit: int,
                    requested: int | None = None) -> tuple[int, str]:
    """(sequence length, why) of a run without a time budget: the one asked for, else `auto`'s.
    (With a budget, `make_plan` chooses it among the candidates.)"""
    if requested is not None:
        return requested, f"--max-seq-length {requested}"
    return auto_seq_length(token_lengths, limit)


def coverage(token_lengths: Sequence[int], seq_length: int) -> float:
    """The mean share of each text's word pieces (with [CLS] and [SEP]) kept at `seq_length`."""
    lengths = np.asarray(token_lengths, dtype=np.float64) + 2
    return float(np.mean(np.minimum(lengths, seq_length) / lengths)) if len(lengths) else 1.0


def expected_accuracy(kept: float, examples_seen: float, ngram: bool = True) -> float:
    """The planner's accuracy model (`ACCURACY_MODEL`) for a run that keeps the share `kept` of
    the word pieces and trains on `examples_seen` examples (repeats counted by `REPEAT_VALUE`).
    Continuous in both, so a probe a little off changes the estimate a little."""
    top, examples_term, length_term = ACCURACY_MODEL["ensemble" if ngram else "encoder"]
    return top - examples_term / max(examples_seen, 1.0) - length_term * (1.0 - kept)


def whole_epochs(epochs: float) -> int:
    """The whole epochs (so the validations) a run of `epochs` estimated epochs starts: 0.3 -> 1,
    2.0 -> 2 (float noise in the estimate does not add one)."""
    return math.ceil(epochs - 1e-9)


def padded_lengths(token_lengths: Sequence[int], seq_length: int, bucket_width: int | None) -> np.ndarray:
    """Each text's padded length at `seq_length`: its bucket with length buckets, else the full
    length. (A batch is padded to its longest text; texts are sorted by length before batching,
    so the text's own bucket is close.)"""
    lengths = np.minimum(np.asarray(token_lengths, dtype=np.int64) + 2, seq_length)
    if not bucket_width:
        return np.full(len(lengths), seq_length)
    return np.minimum(-(-lengths // bucket_width) * bucket_width, seq_length)


# ----------------------------------------------------------------------------- throughput


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Seconds per example at a padded length L, as `a L + b L^2` (a transformer's cost per token
    is linear in L for the dense layers, quadratic for attention), for training and prediction;
    `startup` is what tracing and compiling cost before the first training step,
    `predict_startup` before the first prediction (each validation function pays it once);
    `correction` scales the training cost by what budgeted runs measured (1 until one has)."""

    train: tuple[float, float]
    predict: tuple[float, float]
    startup: float
    correction: float = 1.0
    predict_startup: float = 0.0

    def train_seconds(self, lengths: np.ndarray) -> float:
        a, b = self.train
        return float(np.sum(a * lengths + b * lengths.astype(np.float64) ** 2)) * self.correction

    def predict_seconds(self, lengths: np.ndarray) -> float:
        a, b = self.predict
        return float(np.sum(a * lengths + b * lengths.astype(np.float64) ** 2))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Throughput:
        return cls(tuple(d["train"]), tuple(d["predict"]), float(d["startup"]),
                   float(d.get("correction", 1.0)), float(d.get("predict_startup", 0.0)))


def fit_cost(seconds_per_example: dict[int, float]) -> tuple[float, float]:
    """(a, b) with a L + b L^2 through the measured (length, seconds per example) points:
    least squares, both non-negative; one point gives a cost proportional to L."""
    points = sorted(seconds_per_example.items())
    if not points:
        raise ValueError("no throughput measurements")
    if len(points) == 1:
        (length, seconds), = points
        return seconds / length, 0.0
    lengths = np.asarray([p[0] for p in points], dtype=np.float64)
    seconds = np.asarray([p[1] for p in points], dtype=np.float64)
    a, b = np.linalg.lstsq(np.stack([lengths, lengths ** 2], axis=1), seconds, rcond=None)[0]
    if b < 0:  # noise made longer texts look cheaper per token: linear through the points
        return float(np.sum(seconds * lengths) / np.sum(lengths ** 2)), 0.0
    if a < 0:
        return 0.0, float(np.sum(seconds * lengths ** 2) / np.sum(lengths ** 4))
    return float(a), float(b)


def probe_lengths(limit: int) -> tuple[int, ...]:
    """The lengths a probe times: `PROBE_LENGTHS`, or the candidates that fit under `limit`."""
    fits = tuple(c for c in PROBE_LENGTHS if c <= limit)
    return fits or (min(limit, CANDIDATE_LENGTHS[0]),)


def probe(train_step: Callable[[int], None], predict_step: Callable[[int], None], lengths: Sequence[int],
          batch_size: int, repeats: int = 2, warmup: int = 3) -> Throughput:
    """Time `train_step(L)` and `predict_step(L)` (one batch of `batch_size` at padded length L).

    The first `warmup` calls at each length trace the functions and compile their fused clusters
    (XLA compiles a new shape on its second request); their extra time is the start-up cost.
    """
    train, predict, startup, predict_startup = {}, {}, 0.0, 0.0
    for length in lengths:
        warm = []
        for _ in range(warmup):
            start = time.perf_counter()
            train_step(length)
            warm.append(time.perf_counter() - start)
        timed = []
        for _ in range(repeats):
            start = time.perf_counter()
            train_step(length)
            timed.append(time.perf_counter() - start)
        step = float(np.median(timed))
        startup += max(0.0, sum(warm) - warmup * step)
        train[length] = step / batch_size
        warm = []
        for _ in range(2):
            start = time.perf_counter()
            predict_step(length)
            warm.append(time.perf_counter() - start)
        start = time.perf_counter()
        predict_step(length)
        step = time.perf_counter() - start
        predict_startup += max(0.0, sum(warm) - 2 * step)
        predict[length] = step / batch_size
        logger.info("probe at %d word pieces: training %.2f examples/s, prediction %.1f examples/s",
                    length, 1 / train[length], 1 / predict[length])
    return Throughput(fit_cost(train), fit_cost(predict), startup, predict_startup=predict_startup)


def cache_file() -> Path:
    """`$BERTCLF_CACHE_DIR/throughput.json`, by default under `~/.cache/bertclf`."""
    root = os.environ.get("BERTCLF_CACHE_DIR") or Path.home() / ".cache" / "bertclf"
    return Path(root) / "throughput.json"


def machine_key(**parts) -> str:
    """What a probe's figures hold for: this CPU (model name, cores), the libraries that compute
    (TensorFlow, its Keras, TF Hub, TF Text) and the given parts (device, encoder and its converter
    fingerprint, precision, fusion, what was probed)."""
    from app.runtime import cpu_name, versions

    libraries = {k: v for k, v in versions().items() if k not in ("bertclf", "python")}
    described = json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "libraries": libraries, **parts},
                           sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def cached(key: str) -> dict | None:
    """The cache's entry for `key` (a machine_key), or None."""
    try:
        entry = json.loads(cache_file().read_text()).get(key)
        return entry if isinstance(entry, dict) else None
    except (OSError, ValueError, AttributeError):
        return None


def save_cached(key: str, entry: dict) -> None:
    """Write the cache entry; a cache that cannot be written only costs the next run a probe."""
    path = cache_file()
    try:
        entries = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        entries = {}
    entries[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=2, sort_keys=True))
        tmp.replace(path)
    except OSError as e:
        logger.warning("cannot write the probe cache %s (%s)", path, e.strerror)


def cached_throughput(key: str) -> Throughput | None:
    entry = cached(key)
    try:
        return Throughput.from_dict(entry) if entry else None
    except (KeyError, TypeError, ValueError):
        return None


def save_throughput(key: str, throughput: Throughput) -> None:
    save_cached(key, throughput.to_dict())


def corrected(throughput: Throughput, planned_seconds: float, measured_seconds: float) -> Throughput:
    """The throughput with its training cost scaled toward what a run measured (the running
    correction moves halfway each run, so one noisy run does not swing the next plan)."""
    if planned_seconds <= 0 or measured_seconds <= 0:
        return throughput
    ratio = measured_seconds / planned_seconds  # both at the current correction
    factor = throughput.correction * math.sqrt(ratio)
    return dataclasses.replace(throughput, correction=float(min(max(factor, 0.25), 4.0)))


# ----------------------------------------------------------------------------- plan


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a budget buys: the values the run uses and the arithmetic behind them."""

    budget_seconds: float
    seq_length: int
    train_examples: int
    epochs: int  # at most: the deadline ends the run
    expected_epochs: float  # what the estimate fits in the training time (the schedule's warm-up)
    validation_examples: int
    train_seconds: float  # the plan's estimate of the training passes alone
    seconds_per_example: float  # the estimate's training cost at the chosen length
    validation_seconds: float  # of all validation passes (each epoch's and any after training),
    # with tracing the validation function and the one after training once each
    validation_pass_seconds: float  # of one pass, without tracing
    startup_seconds: float
    why: str
    options: list[dict]  # each length considered: examples, epochs, estimated seconds
    contrastive_pairs: int = 0  # the contrastive regime's pairs (0: fine-tuning alone)
    contrastive_seconds: float = 0.0  # the time their training may take (what the rest leaves)
    contrastive_after_seconds: float = 0.0  # of the rest, the passes that scale with the pairs' pace
    contrastive_pair_seconds: float = 0.0  # the estimate of one pair's
    unlabeled_examples: int = 0  # --unlabeled-data texts self-training labels (app.training.self_training)
    unlabeled_seconds: float = 0.0  # the estimate of their pass and the n-gram model's refit

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_plan(budget_seconds: float, token_lengths: Sequence[int], n_train: int, n_validation: int,
              throughput: Throughput, limit: int, batch_size: int, bucket_width: Callable[[int], int] | None,
              spent_seconds: float = 0.0, seq_length: int | None = None, epochs: int | None = None,
              min_validation: int = 2, extra_validations: int = 0, ngram: bool = True,
              pairs_per_example: int = 0, unlabeled_examples: int = 0, ngram_seconds: float = 0.0) -> Plan:
    """Choose the sequence length, examples and epochs that fit `budget_seconds`.

    Candidate lengths run up to the one that keeps 90 % of the texts whole (or are the user's
    `seq_length`). At each, the training time left gives the examples the estimate trains on
    (every one, then more epochs, at most `MAX_EPOCHS`); the plan takes the length that
    `expected_accuracy` rates best for that (`ngram`: the served model is the n-gram ensemble).
    Every training example is planned, over `HEADROOM` times the epochs the estimate fits (so at
    most `HEADROOM` x `MAX_EPOCHS`): the deadline ends the run on time and the learning rate
    decays by the clock, so a run that goes faster than its probe trains on. Given `epochs` are
    kept, over as many examples as fit.
    `bucket_width(L)` is the length buckets' width at L (None without buckets); `spent_seconds`
    what the budget already paid (the probe, the n-gram model); `extra_validations` passes over
    the validation split after training (the n-gram weight's). `token_lengths` may be a sample
    of the training texts. `pairs_per_example` (the contrastive regime's) plans up to that many
    pairs a training example, in the time the head's training and the validations leave
    (`_contrastive`), at a length that fits `CONTRASTIVE_MIN_PAIRS` of them; the head then trains
    `epochs` (else `MAX_EPOCHS`) epochs on every training example.
    `unlabeled_examples` (`--unlabeled-data`'s) are labelled after training, as many as fit in
    `UNLABELED_SHARE` of the time, and the n-gram model (fitted in `ngram_seconds` on the
    `n_train` texts) is fitted again with them.
    """
    if budget_seconds <= 0:
        raise ValueError(f"--time-budget must be positive, got {budget_seconds / 60:g} minutes")
    lengths = np.asarray(token_lengths, dtype=np.int64)
    if not len(lengths):
        raise ValueError("no training texts to plan for")
    need = _smallest_candidate(quantile_length(lengths, NEED_QUANTILE), limit)
    if seq_length is not None:
        candidates = [seq_length]
    else:
        candidates = sorted({c for c in CANDIDATE_LENGTHS if c <= need} | {need}, reverse=True)
    available = budget_seconds - spent_seconds - throughput.startup
    head_epochs = epochs or MAX_EPOCHS  # the contrastive regime's head, on the frozen encoder
    options = []
    for length in candidates:
        width = bucket_width(length) if bucket_width else None
        per_example = throughput.train_seconds(padded_lengths(lengths, length, width)) / len(lengths)
        unlabeled, unlabeled_seconds = _unlabeled(unlabeled_examples, available, n_train, ngram_seconds,
                                                  throughput, padded_lengths(lengths, length, width))
        if pairs_per_example:
            option = _contrastive(available - unlabeled_seconds, lengths, length, width, n_train,
                                  n_validation, throughput, pairs_per_example, extra_validations, head_epochs)
            n, e = n_train, float(head_epochs)
        else:
            option = {}
            train_time = (available - unlabeled_seconds) * (1 - VALIDATION_SHARE)
            passes = train_time / per_example if per_example > 0 else float(n_train * MAX_EPOCHS)
            if epochs:
                n, e = min(n_train, int(passes // epochs)), float(epochs)
            else:
                n = min(n_train, int(passes))
                e = min(float(MAX_EPOCHS), passes / max(n, 1)) if n else 1.0
        kept = coverage(lengths, length)
        seen = n * (1 + REPEAT_VALUE * (e - 1))
        options.append({"seq_length": length, "train_examples": n, "epochs": round(e, 2),
                        "seconds_per_example": per_example, "kept": round(kept, 3),
                        "estimate": round(expected_accuracy(kept, seen, ngram), 4),
                        **option,
                        **({"unlabeled": unlabeled, "unlabeled_seconds": round(unlabeled_seconds, 1)}
                           if unlabeled_examples else {})})
    eligible = options
    if pairs_per_example:
        wanted = min(pairs_per_example * n_train, CONTRASTIVE_MIN_PAIRS)
        eligible = ([o for o in options if o["pairs"] >= wanted]
                    or [max(options, key=lambda o: (o["pairs"], o["estimate"]))])
    chosen = max(eligible, key=lambda o: o["estimate"])  # ties: the longer length, listed first
    length, fits, fitted_epochs = chosen["seq_length"], chosen["train_examples"], chosen["epochs"]
    if fits < min(batch_size, n_train):
        minimum = (throughput.startup + spent_seconds
                   + batch_size * 4 * chosen["seconds_per_example"] / (1 - VALIDATION_SHARE))
        raise ValueError(f"--time-budget {budget_seconds / 60:g} minutes trains only {fits} examples at "
                         f"{length} word pieces on this machine, fewer than one batch of {batch_size}; "
                         f"give at least {math.ceil(minimum / 60)} minutes")
    if pairs_per_example:  # the head's epochs, on the frozen encoder: cheap, and no headroom
        n, e = n_train, head_epochs
        expected_epochs = float(e)
    elif epochs:  # one given epoch over more examples than the estimate: the deadline ends it
        n, e = (min(n_train, int(fits * HEADROOM)) if epochs == 1 else fits), epochs
        expected_epochs = float(epochs) * fits / n
    else:
        # What one epoch over every example would take, in the estimate's epochs.
        expected_epochs = fits * fitted_epochs / n_train
        n, e = n_train, max(1, whole_epochs(expected_epochs * HEADROOM))
    width = bucket_width(length) if bucket_width else None
    per_val = throughput.predict_seconds(padded_lengths(lengths, length, width)) / len(lengths)
    validations = whole_epochs(expected_epochs)
    n_val = n_validation
    validation_time = ((available - chosen.get("unlabeled_seconds", 0.0)) * VALIDATION_SHARE
                       - (1 + extra_validations) * throughput.predict_startup)
    if per_val > 0 and not pairs_per_example:  # (the contrastive option paid for every validation)
        passes = validations + extra_validations
        n_val = int(min(n_validation, max(0.0, validation_time) / (passes * per_val)))
    n_val = min(n_validation, max(n_val, min_validation))
    ranked = sorted(options, key=lambda o: -o["estimate"])[:3]
    pairs = chosen.get("pairs", 0)
    why = (f"{budget_seconds / 60:g} minutes on this machine: at {length} word pieces "
           f"({chosen['seconds_per_example']:.3f} s an example) training fits about "
           + (f"{pairs} contrastive pairs (in at most {chosen['pairs_seconds']:.0f} s), then the head "
              f"{e} epoch(s) of {n} on the frozen encoder" if pairs_per_example else
              f"{fits * fitted_epochs:.0f} examples ({expected_epochs:.2f} epoch(s) of {n}; up to {e} "
              "planned, the deadline ends it)")
           + f", validating on {n_val}"
           + (f", then labels {chosen['unlabeled']} of the {unlabeled_examples} unlabelled texts "
              f"({chosen['unlabeled_seconds']:.0f} s)" if unlabeled_examples else "")
           + "; 90 % of the texts are at most "
           f"{quantile_length(lengths, NEED_QUANTILE)} word pieces. The accuracy model rates "
           + ", ".join(f"{o['seq_length']} word pieces {o['estimate']:.3f} ({o['train_examples']} examples "
                       f"x {o['epochs']:g}, {o['kept']:.0%} of the word pieces)" for o in ranked))
    return Plan(budget_seconds=budget_seconds, seq_length=length, train_examples=n, epochs=e,
                expected_epochs=round(expected_epochs, 3), validation_examples=n_val,
                train_seconds=round(fits * fitted_epochs * chosen["seconds_per_example"], 1),
                seconds_per_example=chosen["seconds_per_example"],
                validation_seconds=round(n_val * (validations + extra_validations) * per_val
                                         + (1 + extra_validations) * throughput.predict_startup, 1),
                validation_pass_seconds=round(n_val * per_val, 2),
                startup_seconds=round(throughput.startup + spent_seconds, 1), why=why,
                options=[{**o, "seconds_per_example": round(o["seconds_per_example"], 4)} for o in options],
                contrastive_pairs=pairs, contrastive_seconds=chosen.get("pairs_seconds", 0.0),
                contrastive_pair_seconds=chosen.get("pair_seconds", 0.0),
                contrastive_after_seconds=chosen.get("after_seconds", 0.0),
                unlabeled_examples=chosen.get("unlabeled", 0),
                unlabeled_seconds=chosen.get("unlabeled_seconds", 0.0))


def _contrastive(available: float, lengths: np.ndarray, length: int, width: int | None, n_train: int,
                 n_validation: int, throughput: Throughput, pairs_per_example: int, extra_validations: int,
                 head_epochs: int) -> dict:
    """The contrastive regime's option at `length`: its pairs (padded to the full length,
    `PAIR_COST` training examples each) get the `available` seconds that the rest leaves: the
    head's `head_epochs` on the frozen encoder (a forward pass an example and epoch, one more for the
    logistic head's embeddings), the validations, and the start-ups between the pairs and the
    head (`AFTER_PAIRS_STARTUPS`). At most `pairs_per_example` a training example; `pairs_seconds`
    is the time they may take (app.training.contrastive.StopAt ends them there), `pair_seconds` one
    pair's, `after_seconds` the passes after them (which scale with their pace; the start-ups do not)."""
    forward = throughput.predict_seconds(padded_lengths(lengths, length, width)) / len(lengths)
    passes = ((1 + head_epochs) * n_train + (head_epochs + extra_validations) * n_validation) * forward
    rest = (passes + (2 + extra_validations) * throughput.predict_startup
            + AFTER_PAIRS_STARTUPS * throughput.startup)
    per_pair = PAIR_COST * throughput.train_seconds(np.array([length]))
    slot = max(0.0, available - rest)
    fit = int(slot / per_pair) if per_pair > 0 else pairs_per_example * n_train
    pairs = min(pairs_per_example * n_train, fit)
    return {"pairs": pairs, "pairs_seconds": round(slot, 1), "pair_seconds": round(per_pair, 5),
            "after_seconds": round(passes, 1)}


def _unlabeled(wanted: int, available: float, n_train: int, ngram_seconds: float, throughput: Throughput,
               padded: np.ndarray) -> tuple[int, float]:
    """(texts, seconds): of `wanted` unlabelled texts, as many as `UNLABELED_SHARE` of the
    `available` seconds labels (one pass each, at the mean cost of the `padded` lengths) and fits
    the n-gram model again on (its fit on `n_train` texts took `ngram_seconds`)."""
    if wanted <= 0:
        return 0, 0.0
    per_text = throughput.predict_seconds(padded) / len(padded) + ngram_seconds / max(n_train, 1)
    fixed = throughput.predict_startup + ngram_seconds
    left = max(0.0, UNLABELED_SHARE * available - fixed)
    n = wanted if per_text <= 0 else min(wanted, int(left / per_text))
    return n, (n * per_text + fixed if n else 0.0)


# ----------------------------------------------------------------------------- the run


def deadline(plan_record: dict, budget_minutes: float, started: float, epochs: int, clock=None,
             reserve_validations: int = 0):
    """The `app.training.fit.Deadline` that keeps a run to its plan (`plan_record`, `Plan.to_dict` with the
    throughput it used). The budget counts from `started` (a `time.monotonic()` reading); the
    first validation traces its function, so it is expected to take one pass plus that;
    `reserve_validations` passes are kept for work after fit, and the plan's estimate of
    self-training's (`unlabeled_seconds`); `clock` is the learning-rate schedule's share of the
    budget used."""
    from app.training.fit import Deadline  # TensorFlow: only when a budgeted run trains

    one_validation = plan_record["validation_pass_seconds"] + plan_record["throughput"]["predict_startup"]
    validations = whole_epochs(plan_record.get("expected_epochs", epochs))
    return Deadline(budget_minutes * 60, started, one_validation, epochs, clock,
                    reserve_validations=reserve_validations, validations=max(1, min(epochs, validations)),
                    reserve_seconds=plan_record.get("unlabeled_seconds", 0.0))


def pairs_timing(plan_record: dict, budget_minutes: float, started: float) -> dict:
    """`app.training.contrastive.train_encoder`'s timing arguments for a budgeted run's pairs: they
    stop `until` (a `time.monotonic()` reading: the budget's end, counted from `started`, less
    self-training's reserve, which the deadline keeps as planned, and the passes after them,
    `after_seconds`), moved by their pace and less `startups` of their own start-up, which
    `StopAt` measures (`AFTER_PAIRS_STARTUPS`)."""
    after = plan_record["contrastive_after_seconds"]
    end = started + budget_minutes * 60 - plan_record.get("unlabeled_seconds", 0.0)
    return {"until": end - after, "after_seconds": after,
            "startups": AFTER_PAIRS_STARTUPS, "pair_seconds": plan_record["contrastive_pair_seconds"],
            "expected_pairs": plan_record["contrastive_pairs"]}


def learn_from_pairs(plan_record: dict, step_seconds: float | None, batch_size: int) -> dict:
    """After a budgeted contrastive run: correct this machine's cached throughput as
    `learn_from_run` does, by the pairs' measured pace (`step_seconds` a step of `batch_size`
    pairs; the plan's pair is `PAIR_COST` training examples). The pairs are the run's encoder
    training, so without this a probe's error would stay in every plan of a machine whose runs
    are contrastive. Returns the planned and the trained rate, for the run record."""
    planned = plan_record.get("contrastive_pair_seconds", 0.0) * batch_size
    if not step_seconds or step_seconds <= 0 or planned <= 0:
        return {}
    throughput = Throughput.from_dict(plan_record["throughput"])
    save_throughput(plan_record["throughput_key"], corrected(throughput, planned, step_seconds))
    logger.info("time budget: the plan expected %.2f contrastive pairs/s, they trained at %.2f (%.2fx)",
                batch_size / planned, batch_size / step_seconds, planned / step_seconds)
    return {"planned_pairs_per_second": round(batch_size / planned, 2),
            "trained_pairs_per_second": round(batch_size / step_seconds, 2)}


def learn_from_run(plan_record: dict, steps: int, batch_size: int, training_seconds: float) -> dict:
    """After a budgeted run: correct this machine's cached throughput (the plan's cache key) by
    what its `steps` training steps took (`training_seconds`, validation excluded) and return the
    planned and the trained rate, for the run record (how well the plan predicted)."""
    if not steps:
        return {}
    examples = steps * batch_size
    planned = plan_record["seconds_per_example"] * examples
    measured = training_seconds - plan_record["startup_seconds"]
    throughput = Throughput.from_dict(plan_record["throughput"])
    save_throughput(plan_record["throughput_key"], corrected(throughput, planned, measured))
    if measured <= 0:
        return {}
    logger.info("time budget: the plan expected %.2f training examples/s, the run trained at %.2f (%.2fx)",
                examples / planned, examples / measured, planned / measured)
    return {"planned_examples_per_second": round(examples / planned, 2),
            "trained_examples_per_second": round(examples / measured, 2)}
