"""Fine-tune a TF-Hub BERT encoder for text classification, then export and evaluate it.

    python -m app.train                              # offline MiniLM on the bundled sample
    python -m app.train --data ~/aclImdb --epochs 2  # your data; all flags: --help
    python -m app.train --data reviews.csv --time-budget 30   # the best it can do in 30 minutes

A run lives in `runs/MODEL_NAME/` (or `--run-dir`): config.json (what the run is told, every
value settled before training: app.config.RunConfig), record.json (what it did: app.record),
classes.json, TensorBoard logs, per-epoch history.csv / history.json, the best checkpoint and,
while it trains, a backup (every --backup-every steps or minutes). Running the same command after
the process was killed resumes at the step after the last backup; SIGTERM or Ctrl-C backs up and
stops (exit status 143 or 130), a second Ctrl-C stops at once. One process trains in a run folder
at a time. At the end the best model is exported to `OUTPUT_DIR/MODEL_NAME/VERSION/`
for TF Serving and evaluated on the test split (validation when there is none) into
`RUN_DIR/report/`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from app import config as config_mod
from app import runtime
from app.record import RunRecord

# TensorFlow is imported inside the stages, not here: `--help` and a bad flag answer at once,
# and `main` sets the process up (app.runtime) before TensorFlow starts.

logger = logging.getLogger("app.train")

# Token lengths for `--max-seq-length auto` and the budget planner come from this many texts.
LENGTH_SAMPLE = 5000


@dataclasses.dataclass
class RunResult:
    """Where a run's outputs are, what it was told (`config`) and what it did (`record`)."""

    run_dir: Path
    export_dir: Path | None
    report_dir: Path | None
    report: dict | None
    config: config_mod.RunConfig | None = None
    record: RunRecord | None = None


def run(cfg: config_mod.TrainConfig, callbacks: list | None = None) -> RunResult:
    """config -> data -> n-gram model -> plan -> model -> fit -> ensemble -> export -> report.
    `callbacks` are Keras callbacks added after the run's own (backup, checkpoint, logs)."""
    from app import distribute
    from app.training import backup

    strategy, resolved = resolve(cfg)
    run_dir = Path(resolved.settings.run_dir)
    with (backup.run_lock(run_dir) if distribute.is_chief() else contextlib.nullcontext()):
        return _run(strategy, resolved, callbacks)


def _run(strategy, resolved: config_mod.RunConfig, callbacks: list | None) -> RunResult:
    from app import distribute
    from app.model import ngram
    from app.training import backup, budget, fit

    run_dir = prepare_run_dir(resolved)
    dataset = read_data(resolved)
    unlabeled = read_unlabeled(resolved, dataset)
    record = RunRecord(data={"sources": dict(dataset.sources)})
    full_train = dataset.splits["train"]  # for the baseline: a budget's plan cuts the encoder's
    resolved = weigh_classes(resolved, dataset)
    started = time.monotonic()  # a --time-budget covers everything from here to the ensemble
    ngram_fit = fit_ngram(resolved, dataset)
    resolved, dataset, lengths = settle(resolved, strategy, dataset, started, ngram_fit, len(unlabeled))
    unlabeled = planned_unlabeled(resolved, unlabeled)
    c = resolved.settings
    (run_dir / "config.json").write_text(resolved.to_json())  # what the run is told, once
    (run_dir / "classes.json").write_text(json.dumps(resolved.classes))
    tokenizer, train_epoch, val_ds = pipelines(resolved, dataset)
    record.add("data", **data_record(resolved, dataset, lengths))
    if ngram_fit is not None:  # now, while the budget's clock has time for it
        ngram_fit.validation = ngram.predict(ngram_fit.model, dataset.splits["validation"].texts)
        ngram_fit.validation_known = ngram.known(ngram_fit.model, dataset.splits["validation"].texts)
    model, clock = build_model(resolved, strategy, len(resolved.classes), resolved.schedule["total_steps"],
                               dataset.multi_label, label_priors(dataset), resolved.schedule["warmup_steps"])
    # Traced and run once now, inside the budget's clock, so the pass after fit costs one pass (and
    # before the contrastive pairs, which get the time left).
    after_fit = ngram_fit is not None or dataset.multi_label or c.calibration != "none"
    encoder = validation_encoder(model, tokenizer, dataset) if after_fit else None
    if c.regime == "contrastive":
        if not fit.has_backup(run_dir):  # (a resumed run's backup holds what it trained)
            record.add("contrastive", **pretrain_contrastive(model, tokenizer, strategy, dataset, resolved,
                                                             started))
        # Fine-tuning the whole encoder after its pairs undid part of what they taught (measured:
        # bench/results/2026-12-07-small-data-zen5.json); fit trains the head on the embedding.
        model.get_layer("encoder").trainable = False
        clock = compile_model(model, resolved, strategy, resolved.schedule["total_steps"],
                              dataset.multi_label, resolved.schedule["warmup_steps"])
    deadline = None
    if c.time_budget:  # after fit, one pass over the validation split for the weight, temperature, thresholds
        deadline = budget.deadline(resolved.plan, c.time_budget, started, c.epochs, clock,
                                   reserve_validations=1 if encoder is not None else 0)
    logger.info("training on %d examples (%d steps/epoch, %d epochs); validating on %d",
                len(dataset.splits["train"]), resolved.schedule["steps_per_epoch"], c.epochs,
                len(dataset.splits["validation"]))
    with backup.interrupts() as interrupt:
        history, backups = fit.fit(
            model, train_epoch, resolved.schedule["steps_per_epoch"], val_ds, run_dir, c.epochs, c.patience,
            resolved.cpu_fusion, callbacks, deadline,
            class_weight=_class_ids(resolved, dataset.classes, dataset.multi_label),
            monitor=fit.MULTI_LABEL_MONITOR if dataset.multi_label else fit.MONITOR,
            backup_every=backup.parse_every(c.backup_every), interrupt=interrupt,
            worker=distribute.worker_folder())
    fit_seconds = deadline.elapsed() - deadline.validation_total if deadline is not None else None
    fitted = time.monotonic()
    encoder_validation = validation_probabilities(encoder, dataset)
    passed = time.monotonic()
    ngram_model, combination, val_probabilities = ensemble(encoder_validation, ngram_fit, dataset, resolved,
                                                           record)
    if unlabeled:
        ngram_model, combination, val_probabilities = self_train(
            encoder, encoder_validation, ngram_fit, combination, val_probabilities, unlabeled, full_train,
            dataset, resolved, record)
    val_probabilities = calibrate(resolved, dataset, val_probabilities, record)
    decide(resolved, dataset, val_probabilities, record)
    record.add("training", **training_record(started, deadline, history), **backups,
               **after_fit_record(encoder_validation, fitted, passed))
    # The probe's correction is learnt from what trained the encoder: the fine-tuning steps, or a
    # contrastive run's pairs (its frozen-encoder steps cost otherwise).
    if deadline is not None and c.regime != "contrastive":
        record.add("training", **budget.learn_from_run(resolved.plan, deadline.steps, c.batch_size,
                                                       fit_seconds))
    elif deadline is not None:
        pairs = record.contrastive
        record.add("training", **budget.learn_from_pairs(resolved.plan, pairs.get("step_seconds"),
                                                         pairs.get("batch_size", 0)))
    export_dir = export(model, tokenizer, resolved, record, ngram_model, combination)
    if export_dir is None:  # a worker of a cluster other than the chief
        return RunResult(run_dir, None, None, None, resolved, record)
    (run_dir / "record.json").write_text(record.to_json())
    (run_dir / "export_path.txt").write_text(f"{export_dir}\n")
    report_dir, report = evaluate(export_dir, dataset, history, run_dir, full_train, c.baseline != "none",
                                  c.seed)
    return RunResult(run_dir, export_dir, report_dir, report, resolved, record)


def settle(resolved: config_mod.RunConfig, strategy, dataset, started: float | None = None,
           ngram=None, unlabeled: int = 0):
    """(run config, dataset, token lengths): every value the data decides, settled before any
    training: CPU fusion (`tune`), the regime (`app.training.contrastive.choose_regime`), the
    sequence length and, with a budget, the plan's examples, pairs, epochs and unlabelled texts
    (`plan`, which cuts the splits), then the columns, task, class names and the
    schedule's steps. `lengths` are `token_lengths`' sample. The budget has paid for what ran
    since `started`; `ngram` (the fitted n-gram model, or None): the plan leaves time for its
    weight's validation pass and, with `unlabeled` texts, for self-training."""
    from app.training import contrastive

    lengths = token_lengths(resolved, dataset)
    resolved = tune(resolved, strategy, dataset, lengths)
    regime, why = contrastive.choose_regime(resolved.settings.regime, len(dataset.splits["train"]),
                                            dataset.multi_label, dataset.splits["train"].pairs is not None)
    logger.info("regime: %s (%s)", regime, why)
    resolved = resolved.with_regime(regime, why)
    resolved, dataset = plan(resolved, strategy, dataset, lengths, started, ngram, unlabeled)
    n_train, batch = len(dataset.splits["train"]), resolved.settings.batch_size
    if n_train < batch:
        raise ValueError(f"--batch-size {batch} is larger than the {n_train} training examples")
    # Length buckets reorder examples but keep the number of batches (app.model.preprocessing).
    steps = n_train // batch if resolved.drop_remainder else -(-n_train // batch)
    resolved = resolved.with_data(dataset.columns, dataset.classes, steps, dataset.multi_label)
    return resolved, dataset, lengths


def resolve(cfg: config_mod.TrainConfig):
    """(strategy, resolved config): the strategy for the hardware, then every default chosen."""
    import tensorflow as tf

    from app import distribute
    from app.model import encoders

    # Strategy first: multi-worker and TPU set-up must precede other TensorFlow work.
    strategy, why = distribute.choose_strategy(cfg.strategy, cfg.tpu)
    hardware = distribute.describe(strategy, why)
    logger.info("strategy %s with %d replica(s): %s", hardware.strategy, hardware.replicas, why)
    resolved = config_mod.resolve(cfg, hardware, encoders.resolve)
    c = resolved.settings
    logger.info("encoder %s (%s, %s); batch %d, learning rate %g%s, seq length %s, precision %s, "
                "jit_compile %s, CPU fusion %s, length buckets %s", resolved.encoder.name,
                resolved.encoder.implementation or "TF Hub", resolved.encoder.compute_dtype, c.batch_size,
                c.learning_rate, f" (layer decay {c.layer_decay:g})" if c.layer_decay != 1 else "",
                c.max_seq_length or "auto", c.mixed_precision, c.jit_compile,
                c.cpu_fusion if resolved.cpu_fusion else "off", c.length_buckets)
    logger.info("resolved config:\n%s", resolved.to_json())
    tf.keras.utils.set_random_seed(c.seed)
    return strategy, resolved


def prepare_run_dir(resolved: config_mod.RunConfig) -> Path:
    """Create the run folder; refuse to resume a backup that another config wrote, and an export
    location that cannot be written, before any training."""
    from app import distribute
    from app.serving.export import check_location
    from app.training import fit

    run_dir = Path(resolved.settings.run_dir)
    saved = run_dir / "config.json"
    if fit.has_backup(run_dir) and saved.exists():
        try:
            previous = json.loads(saved.read_text()).get("requested", {})
        except (ValueError, AttributeError):
            previous = {}
        current = resolved.requested.to_dict()
        free = {"backup_every"}  # changing it changes nothing the backup holds
        differ = sorted(k for k in (set(previous) | set(current)) - free if previous.get(k) != current.get(k))
        if differ:
            raise ValueError(
                f"--run-dir {run_dir} holds an unfinished run with different settings ({differ}); "
                "run the same command to resume it, or choose another --run-dir / --model-name"
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--run-dir {run_dir}: cannot write ({e.strerror})") from e
    if distribute.is_chief():
        check_location(resolved.settings.output_dir, resolved.settings.model_name, resolved.settings.version)
    return run_dir


def read_data(resolved: config_mod.RunConfig):
    """Read and split the data, as the config asks (before any planning)."""
    from app import data

    c = resolved.settings
    table = data.TableFormat(c.text_column, c.label_column, c.header, c.label_names, c.text_pair_column,
                             c.task, c.label_separator, c.label_columns, c.format)
    dataset = data.load_dataset(c.data, c.test_data, table, c.validation_split, c.max_train_examples,
                                c.max_eval_examples, c.seed)
    for warning in dataset.warnings:
        logger.warning("data: %s", warning)
    return dataset


def read_unlabeled(resolved: config_mod.RunConfig, dataset) -> list[str]:
    """`--unlabeled-data`'s texts for self-training (app.data.read_unlabeled: the labelled texts
    left out, at most `--max-unlabeled-examples`); [] without the flag."""
    from app import data

    c = resolved.settings
    if c.unlabeled_data is None:
        return []
    if dataset.multi_label:
        raise ValueError(f"--unlabeled-data {c.unlabeled_data}: self-training is for one label a text; "
                         "the data has sets of labels")
    table = data.TableFormat(c.text_column, header=c.header, format=c.format)
    labelled = [t for split in dataset.splits.values() for t in split.texts]
    texts, notes = data.read_unlabeled(c.unlabeled_data, table, labelled, c.max_unlabeled_examples, c.seed)
    dataset.warnings.extend(notes)
    logger.info("--unlabeled-data %s: %d texts for self-training", c.unlabeled_data, len(texts))
    return texts


def planned_unlabeled(resolved: config_mod.RunConfig, texts: list[str]) -> list[str]:
    """The unlabelled texts a time budget's plan has time for (a seeded sample); all without one."""
    n = resolved.plan.get("unlabeled_examples")
    if not resolved.settings.time_budget or n is None or n >= len(texts):
        return texts
    rng = np.random.default_rng(resolved.settings.seed)
    return [texts[i] for i in sorted(rng.choice(len(texts), n, replace=False))]


def check_task_flags(cfg: config_mod.TrainConfig, multi_label: bool, n_classes: int, classes=None) -> None:
    """Refuse flags the data's task cannot take (a ValueError naming the flag)."""
    if cfg.decision_threshold is not None and (multi_label or n_classes != 2):
        raise ValueError(f"--decision-threshold {cfg.decision_threshold} is for two classes; the "
                         f"data has {'label sets of ' if multi_label else ''}{n_classes} classes"
                         + (f" {list(classes)}" if classes is not None else ""))


def weigh_classes(resolved: config_mod.RunConfig, dataset) -> config_mod.RunConfig:
    """Each class's loss weight (`--class-weight`), from the training split as read (for
    multi-label data, each label's positive examples' weight); a budget's plan keeps its class
    proportions."""
    from app.model.classifier import class_weights

    check_task_flags(resolved.settings, dataset.multi_label, len(dataset.classes), dataset.classes)
    weights = class_weights(dataset.splits["train"].labels, dataset.classes, resolved.settings.class_weight)
    if resolved.settings.class_weight != "none":
        logger.info("%s (--class-weight %s): %s", "positive examples' loss weight by label"
                    if dataset.multi_label else "class weights", resolved.settings.class_weight, weights)
    return resolved.with_class_weights(weights)


def _class_ids(resolved: config_mod.RunConfig, classes: list[str],
               multi_label: bool = False) -> dict[int, float] | None:
    """The class weights by class index, as Keras and scikit-learn take them; None unweighted
    (and for multi-label data, whose weights are the loss's own: `build_model`)."""
    if resolved.settings.class_weight == "none" or multi_label:
        return None
    return {i: resolved.class_weights[c] for i, c in enumerate(classes)}


def token_lengths(resolved: config_mod.RunConfig, dataset) -> np.ndarray:
    """The word pieces of a seeded sample of `LENGTH_SAMPLE` training texts (pairs together): what
    the sequence length, the plan and the speed probe are chosen from."""
    from app.model import preprocessing

    c = resolved.settings
    train = dataset.splits["train"]
    sample = train
    if len(sample) > LENGTH_SAMPLE:  # a seeded sample says enough about the lengths
        rng = np.random.default_rng(c.seed)
        sample = train.take(sorted(rng.choice(len(train), LENGTH_SAMPLE, replace=False)))
    tokenizer = preprocessing.Tokenizer(c.preprocess, resolved.encoder.max_seq_length, c.truncation)
    return np.asarray(tokenizer.token_lengths(sample.texts, sample.pairs))


def tune(resolved: config_mod.RunConfig, strategy, dataset, lengths: np.ndarray):
    """The resolved config with CPU fusion chosen for this machine and run (`--cpu-fusion auto`):
    training steps timed with and without it (app.training.tuning; cached per machine), fused only where
    the run's steps repay compiling its shapes. The choice and its figures go in the record."""
    from app.model import preprocessing
    from app.training import budget, tuning

    c = resolved.settings
    if c.cpu_fusion != "auto" or not resolved.cpu_fusion:
        why = (f"--cpu-fusion {c.cpu_fusion}" if c.cpu_fusion != "auto" else
               "the whole step is XLA-compiled (--jit-compile)" if c.jit_compile else
               "this process has no CPU fusion flags (app.runtime)")
        logger.info("CPU fusion %s: %s", "on" if resolved.cpu_fusion else "off", why)
        return resolved.with_cpu_fusion(resolved.cpu_fusion, {"chosen_by": why})
    limit = resolved.encoder.max_seq_length
    # The probe times the length the run will have (a budget's plan picks among lengths near it).
    length, _ = budget.sequence_length(lengths, limit, c.max_seq_length)
    width = preprocessing.bucket_width(length) if c.length_buckets else None
    # Shapes the fit compiles: each bucket length the texts reach, and a last, smaller batch.
    shapes = len(np.unique(budget.padded_lengths(lengths, length, width))) + 1
    n_train = len(dataset.splits["train"])
    key = _probe_key(resolved, probe="cpu_fusion", batch_size=c.batch_size, seq_length=length)
    entry = budget.cached(key)
    if entry is not None:
        probe = tuning.FusionProbe.from_dict(entry)
        source = f"measured earlier on this machine ({budget.cache_file()})"
    else:
        logger.info("CPU fusion: timing training steps of %d at %d word pieces with and without it "
                    "(once for this machine; cached in %s)", c.batch_size, length, budget.cache_file())
        start = time.monotonic()
        model, inputs, labels = _probe_model(resolved, strategy, dataset, c.batch_size, (length,))

        def step(fused: bool) -> None:
            with runtime.cpu_fusion(fused):
                model.train_on_batch(inputs[length], labels)

        probe = tuning.probe_cpu_fusion(step, c.batch_size, length)
        budget.save_cached(key, probe.to_dict())
        source = f"probed in {time.monotonic() - start:.0f} s"
        del model
    if c.time_budget:  # at most the steps the budget can hold at the unfused rate
        steps = max(1, int(c.time_budget * 60 / probe.step_off))
    else:
        steps = -(-n_train // c.batch_size) * (c.epochs or config_mod.DEFAULT_EPOCHS)
    fused, why, figures = tuning.decide_cpu_fusion(probe, steps, shapes)
    logger.info("CPU fusion %s: %s; %s", "on" if fused else "off", why, source)
    return resolved.with_cpu_fusion(fused, {"chosen_by": "probe", "why": why, **figures})


def plan(resolved: config_mod.RunConfig, strategy, dataset, lengths: np.ndarray,
         started: float | None = None, ngram=None, unlabeled: int = 0):
    """(resolved config, dataset): `--max-seq-length auto` from the training texts' token lengths
    (`lengths`, from `token_lengths`); with `--time-budget`, the length, training and validation
    examples and epochs that fit it (app.training.budget), the splits cut to the planned sizes (stratified,
    seeded). The budget has paid for what ran since `started` (the n-gram model, the probes);
    with an n-gram model (`ngram`, fitted) the plan leaves time for its weight's pass over the
    validation split and for labelling the `unlabeled` texts that fit (self-training)."""
    from app import data
    from app.model import preprocessing
    from app.training import budget, contrastive

    c = resolved.settings
    if c.max_seq_length is not None and not c.time_budget:
        return resolved, dataset
    train = dataset.splits["train"]
    limit = resolved.encoder.max_seq_length
    if not c.time_budget:
        length, why = budget.sequence_length(lengths, limit)
        logger.info("--max-seq-length auto: %d (%s)", length, why)
        return resolved.with_plan({"max_seq_length": why}, max_seq_length=length), dataset

    throughput, probe_seconds, key = probe_throughput(resolved, strategy, dataset)
    spent = time.monotonic() - started if started is not None else probe_seconds
    width = preprocessing.bucket_width if c.length_buckets else None
    the_plan = budget.make_plan(
        c.time_budget * 60, lengths, len(train), len(dataset.splits["validation"]), throughput, limit,
        c.batch_size, width, spent_seconds=spent, seq_length=c.max_seq_length, epochs=c.epochs,
        min_validation=min(len(dataset.splits["validation"]), 2 * len(dataset.classes)),
        extra_validations=1 if ngram is not None else 0, ngram=ngram is not None,
        pairs_per_example=contrastive.MAX_PAIRS_PER_EXAMPLE if c.regime == "contrastive" else 0,
        unlabeled_examples=unlabeled, ngram_seconds=ngram.record["seconds"] if ngram is not None else 0.0)
    logger.info("time budget: %s", the_plan.why)
    splits, sources = dict(dataset.splits), dict(dataset.sources)
    for name, n in (("train", the_plan.train_examples), ("validation", the_plan.validation_examples)):
        if n < len(splits[name]):
            splits[name], _ = data.stratified_subset(splits[name], n, c.seed)
            sources[name] += f", the time budget's stratified sample of {n}"
    dataset = dataclasses.replace(dataset, splits=splits, sources=sources)
    record = {**the_plan.to_dict(), "probe_seconds": round(probe_seconds, 1),
              "throughput": throughput.to_dict(), "throughput_key": key}
    return resolved.with_plan(record, max_seq_length=the_plan.seq_length, epochs=the_plan.epochs), dataset


def _probe_key(resolved: config_mod.RunConfig, **parts) -> str:
    """The probe cache's key (app.training.budget.machine_key) for this hardware and encoder, and `parts`."""
    from app.training import budget

    spec = resolved.encoder
    return budget.machine_key(device=resolved.hardware.device, replicas=resolved.hardware.replicas,
                              encoder=spec.encoder, converter=resolved.converter.get("fingerprint"),
                              dtype=spec.compute_dtype, pooled_only=spec.pooled_only,
                              pooling=resolved.settings.pooling, **parts)


def _probe_model(resolved: config_mod.RunConfig, strategy, dataset, batch: int, lengths):
    """(throw-away model, {length: inputs}, labels) for timing steps: the run's model, and a batch
    of its longest training texts tokenized at each length (so that every length is filled)."""
    import tensorflow as tf

    from app.model import preprocessing

    c = resolved.settings
    texts = sorted(dataset.splits["train"].texts, key=len)[-batch:]
    texts = (texts * batch)[:batch]
    model, _ = build_model(resolved, strategy, len(dataset.classes), 1000, dataset.multi_label)
    inputs = {length: preprocessing.Tokenizer(c.preprocess, length, c.truncation)(tf.constant(texts))
              for length in lengths}
    labels = tf.zeros([batch, len(dataset.classes)]) if dataset.multi_label else tf.zeros([batch], tf.int32)
    return model, inputs, labels


def probe_throughput(resolved: config_mod.RunConfig, strategy, dataset):
    """(Throughput, seconds the probe took, cache key): from the cache for this machine and
    encoder, else timed on a throw-away copy of the model."""
    from app.training import budget

    c = resolved.settings
    key = _probe_key(resolved, cpu_fusion=resolved.cpu_fusion, jit_compile=c.jit_compile)
    cached = budget.cached_throughput(key)
    if cached is not None:
        logger.info("time budget: this machine's throughput for %s from %s", resolved.encoder.name,
                    budget.cache_file())
        return cached, 0.0, key
    start = time.monotonic()
    replicas = resolved.hardware.replicas
    batch = -(-budget.PROBE_BATCH // replicas) * replicas
    lengths = budget.probe_lengths(resolved.encoder.max_seq_length)
    logger.info("time budget: timing %s on this machine at %s word pieces (once; cached in %s)",
                resolved.encoder.name, list(lengths), budget.cache_file())
    model, inputs, labels = _probe_model(resolved, strategy, dataset, batch, lengths)
    with runtime.cpu_fusion(resolved.cpu_fusion):
        throughput = budget.probe(lambda length: model.train_on_batch(inputs[length], labels),
                                  lambda length: model.predict_on_batch(inputs[length]), lengths, batch)
    budget.save_throughput(key, throughput)
    return throughput, time.monotonic() - start, key


def pipelines(resolved: config_mod.RunConfig, dataset):
    """(tokenizer, epoch -> training `tf.data` pipeline, validation pipeline), as the settled
    config says."""
    from app.model import preprocessing

    c = resolved.settings
    tokenizer = preprocessing.Tokenizer(c.preprocess, c.max_seq_length, c.truncation)
    train, val = dataset.splits["train"], dataset.splits["validation"]
    train_labels = dataset.label_ids("train")

    def train_epoch(epoch: int):
        """The training batches of one epoch, in an order the seed and the epoch fix."""
        return preprocessing.make_tf_dataset(
            train.texts, train_labels, tokenizer, c.batch_size, shuffle=True, seed=c.seed,
            drop_remainder=resolved.drop_remainder, length_buckets=c.length_buckets, pairs=train.pairs,
            epoch=epoch)

    val_ds = preprocessing.make_tf_dataset(
        val.texts, dataset.label_ids("validation"), tokenizer, c.batch_size,
        drop_remainder=resolved.drop_remainder, cache=True, length_buckets=c.length_buckets, pairs=val.pairs)
    return tokenizer, train_epoch, val_ds


def data_record(resolved: config_mod.RunConfig, dataset, lengths: np.ndarray) -> dict:
    """The data as the run uses it: each split's size, and the share of texts the sequence
    length cuts (the report's findings), from `lengths` (`token_lengths`' sample)."""
    c = resolved.settings
    over = float(np.mean(np.asarray(lengths) + 2 > c.max_seq_length)) if len(lengths) else 0.0
    logger.info("at %d word pieces, %.0f %% of the training %s are cut (--truncation %s)", c.max_seq_length,
                100 * over, "pairs" if dataset.splits["train"].pairs is not None else "texts", c.truncation)
    return {"examples": {name: len(split) for name, split in dataset.splits.items()},
            "over_seq_length": round(over, 4)}


def training_record(started: float, deadline, history) -> dict:
    """What training took: wall seconds from planning to the end of fit (a resumed run counts its
    earlier processes' epochs too), the epochs run, and whether the budget stopped it."""
    seconds = deadline.elapsed() if deadline is not None else time.monotonic() - started
    record = {"wall_seconds": round(seconds, 1), "epochs_run": int(len(history))}
    if deadline is not None:
        record.update(budget_seconds=deadline.budget, stopped_by_budget=deadline.stopped_early,
                      steps=deadline.steps)
    return record


def after_fit_record(encoder_validation: np.ndarray | None, fitted: float, passed: float) -> dict:
    """What the work after fit took (a budget reserves one validation pass for it): the encoder's
    pass over the validation split, then the ensemble (and self-training), calibration and thresholds."""
    if encoder_validation is None:
        return {}
    now = time.monotonic()
    logger.info("after fit: the encoder on %d validation texts in %.1f s, then the ensemble (and "
                "self-training), calibration and thresholds in %.1f s", len(encoder_validation),
                passed - fitted, now - passed)
    return {"validation_pass_seconds": round(passed - fitted, 1),
            "after_pass_seconds": round(now - passed, 1)}


def fit_ngram(resolved: config_mod.RunConfig, dataset):
    """The n-gram model on every training example (before a budget's plan cuts the split for
    the encoder), or None with `--no-ngram-model`."""
    from app.model import ngram

    if not resolved.settings.ngram_model:
        if resolved.requested.ngram_model and resolved.settings.text_pair_column:
            logger.info("no n-gram model for text pairs: a bag of words cannot compare two texts")
        return None
    return ngram.fit(dataset.splits["train"].texts, dataset.label_ids("train"), len(dataset.classes),
                     resolved.settings.seed,
                     class_weight=_class_ids(resolved, dataset.classes, dataset.multi_label))


def pretrain_contrastive(model, tokenizer, strategy, dataset, resolved: config_mod.RunConfig,
                         started: float) -> dict:
    """The contrastive regime's first stage (app.training.contrastive): the encoder trained on
    pairs of training texts, then the head started at a logistic regression on their embeddings.
    A budget's plan gives the pairs their time, up to what the rest of the run (estimated from
    `started` on, and the start-ups after them as their own first step measures them) needs,
    planning up to `MAX_PAIRS_PER_EXAMPLE` a text; `HEADROOM` times that many are drawn and
    `StopAt`, not their count, ends them at their time, so a machine faster than its probe trains
    on until the budget is spent. Without a budget:
    `PAIRS_PER_EXAMPLE` a text, at most `MAX_PAIRS`."""
    from app.training import budget, contrastive

    c = resolved.settings
    train = dataset.splits["train"]
    labels = dataset.label_ids("train")
    timing = {}
    if c.time_budget:
        timing = budget.pairs_timing(resolved.plan, c.time_budget, started)
        pairs = (int(budget.HEADROOM * contrastive.MAX_PAIRS_PER_EXAMPLE * len(train))
                 if timing["expected_pairs"] else 0)
    else:
        pairs = min(contrastive.PAIRS_PER_EXAMPLE * len(train), contrastive.MAX_PAIRS)
    if pairs < 1:
        logger.info("contrastive regime: no time for pairs in the budget; fine-tuning alone")
        return {"pairs": 0}
    encoded = {k: v.numpy() for k, v in tokenizer(list(train.texts)).items()}
    with runtime.cpu_fusion(resolved.cpu_fusion):
        done = contrastive.train_encoder(model, strategy, encoded, labels, pairs, c.seed,
                                         weight_decay=c.weight_decay, layer_decay=c.layer_decay, **timing)
        embeddings = contrastive.embedder(model).predict(encoded, batch_size=c.batch_size, verbose=0)
    return {**done, **contrastive.fit_head(model, embeddings, labels, c.seed)}


def validation_encoder(model, tokenizer, dataset):
    """The encoder's probabilities exactly as the export will compute them (length buckets and
    all), as a function of texts (and their pairs), for the pass over the validation split after
    fit (the n-gram weight, the temperature, the thresholds). It is traced and run on two
    validation texts here, before fit, so that a time budget's last seconds are not spent tracing
    (under the CPU fusion setting the pass will use: a function is optimised on its first run)."""
    import tensorflow as tf

    from app import runtime
    from app.serving import inference
    from app.serving.export import ServingModel

    val = dataset.splits["validation"]
    serving = ServingModel(model, tokenizer, dataset.classes, {}, pairs=val.pairs is not None)
    columns = [column for column in (val.texts, val.pairs) if column is not None]
    signature = [tf.TensorSpec([None], tf.string)] * len(columns)
    encoder = tf.function(serving.encoder_probabilities, input_signature=signature)
    with runtime.cpu_fusion(len(val.texts) >= inference.FUSION_MIN_TEXTS):
        encoder(*(tf.constant(list(column[:2]), tf.string) for column in columns))
    return encoder


def _predict(encoder, texts, pairs=None) -> np.ndarray:
    """`encoder`'s probabilities (`validation_encoder`'s function) on many texts, in batches."""
    from app.serving import inference

    probabilities, _ = inference.predict_texts(lambda **t: {"probabilities": encoder(*t.values())},
                                               texts, pairs=pairs)
    return probabilities


def validation_probabilities(encoder, dataset) -> np.ndarray | None:
    """The encoder's probabilities on the validation split, as the export computes them (None
    when nothing after fit needs them, and `encoder`, from `validation_encoder`, is None)."""
    if encoder is None:
        return None
    val = dataset.splits["validation"]
    return _predict(encoder, val.texts, val.pairs)


def ensemble(encoder_probabilities, ngram_fit, dataset, resolved: config_mod.RunConfig, record: RunRecord):
    """(n-gram model or None, how to combine it, validation probabilities): the
    encoder's (`encoder_probabilities` on the validation split, from `validation_probabilities`)
    and the n-gram model's probabilities combined by the rule (weighted average or
    log-linear pooling, app.model.ngram.choose_ensemble) that does best on the validation split
    (multi-label: the average, its weight by validation loss); the probabilities are the
    export's on the validation split (None when `encoder_probabilities` are None). The
    combination is `{"weight": w}` or `{"pooling": ...}`; the rule and its figures go in the
    record's `ngram`."""
    from app.model import ngram

    if encoder_probabilities is None:
        return None, {}, None
    val = dataset.splits["validation"]
    if ngram_fit is None:
        return None, {}, encoder_probabilities
    ngram_probabilities, known = ngram_fit.validation, ngram_fit.validation_known
    if ngram_probabilities is None:
        ngram_probabilities = ngram.predict(ngram_fit.model, val.texts)
    if known is None:
        known = ngram.known(ngram_fit.model, val.texts)
    label_ids = dataset.label_ids("validation")
    weight, figures = ngram.choose_weight(encoder_probabilities, ngram_probabilities, label_ids, known)
    figures["texts_without_known_ngrams"] = int(np.sum(~known))
    acc = figures["validation_accuracy"]
    logger.info("n-gram weight %.2f: validation %s %.4f (encoder alone %.4f, n-grams alone %.4f)",
                weight, "label decisions right at 0.5" if dataset.multi_label else "accuracy",
                acc["ensemble"], acc["encoder"], acc["ngram"])
    rule, params = "average", {"weight": weight}
    if len(label_ids) < ngram.MIN_CHOOSING_EXAMPLES:
        weight, params = ngram.EVEN_WEIGHT, {"weight": ngram.EVEN_WEIGHT}
        figures = {**figures, "weight": weight, "rule": rule,
                   "why": f"fewer than {ngram.MIN_CHOOSING_EXAMPLES} validation texts to choose on"}
        logger.info("ensemble: the even average (n-gram weight %.2f): %d validation texts are too few to "
                    "choose a rule or weight on (at least %d)", weight, len(label_ids),
                    ngram.MIN_CHOOSING_EXAMPLES)
    elif not dataset.multi_label:
        rule, params, chosen = ngram.choose_ensemble(encoder_probabilities, ngram_probabilities, label_ids,
                                                     resolved.settings.seed, known)
        figures = {**figures, "rule": rule, **({"pooling": params} if rule == "log-linear" else {}),
                   "rules": chosen["rules"], "folds": chosen["folds"]}
        scores = ", ".join(f"{r} {f['cross_validated_accuracy']:.4f} / {f['cross_validated_log_loss']:.4f}"
                           for r, f in chosen["rules"].items())
        logger.info("ensemble: %s, by cross-validated accuracy, then log loss, on the validation split "
                    "(%s)%s", rule, scores,
                    f": softmax({params['encoder']:.3f} log p_encoder + {params['ngram']:.3f} log p_ngram "
                    f"+ bias)" if rule == "log-linear" else "")
    probabilities = ngram.combine(rule, params, encoder_probabilities, ngram_probabilities, known)
    combination = {"pooling": params} if rule == "log-linear" else {"weight": weight}
    if not dataset.multi_label:  # the served combination's (the weight search's best may not be served)
        figures["validation_accuracy"] = {**figures["validation_accuracy"],
                                          "ensemble": _accuracy(probabilities, label_ids)}
    record.add("ngram", **ngram_fit.record, **figures)
    return ngram_fit.model, combination, probabilities


def self_train(encoder, encoder_validation: np.ndarray, ngram_fit, combination: dict,
               val_probabilities: np.ndarray, unlabeled: list[str], full_train, dataset,
               resolved: config_mod.RunConfig, record: RunRecord):
    """`ensemble`'s (n-gram model, combination, validation probabilities) after self-training
    (app.training.self_training): the `unlabeled` texts labelled by the ensemble as chosen
    (`combination`, `val_probabilities` its validation probabilities), the n-gram model fitted
    again on the training texts it had (`full_train`) and those, and the ensemble chosen anew.
    With at least `ngram.MIN_CHOOSING_EXAMPLES` validation texts, a model less accurate on them
    than before is not kept. The record's `self_training` says what the texts bought."""
    from app import data
    from app.model import ngram
    from app.training import self_training

    start = time.monotonic()
    logger.info("self-training: labelling %d unlabelled texts with the trained ensemble", len(unlabeled))
    rule, params = (("log-linear", combination["pooling"]) if "pooling" in combination
                    else ("average", combination))
    old = ngram_fit.model
    combined = ngram.combine(rule, params, _predict(encoder, unlabeled), ngram.predict(old, unlabeled),
                             ngram.known(old, unlabeled))
    pseudo = self_training.pseudo_labels(combined)
    labelled = data.label_ids(full_train.labels, dataset.classes)
    refit = self_training.refit_ngram(full_train.texts, labelled, unlabeled, pseudo,
                                      len(dataset.classes), resolved.settings.seed,
                                      _class_ids(resolved, dataset.classes))
    val = dataset.splits["validation"]
    refit.validation = ngram.predict(refit.model, val.texts)
    refit.validation_known = ngram.known(refit.model, val.texts)
    chosen = ensemble(encoder_validation, refit, dataset, resolved, record)
    y = dataset.label_ids("validation")
    before = {"ensemble": _accuracy(val_probabilities, y), "ngram": _accuracy(ngram_fit.validation, y)}
    after = {"ensemble": _accuracy(chosen[2], y), "ngram": _accuracy(refit.validation, y)}
    kept = len(y) < ngram.MIN_CHOOSING_EXAMPLES or after["ensemble"] >= before["ensemble"]
    logger.info("self-training: validation accuracy %.4f -> %.4f (the n-gram model alone %.4f -> %.4f) on %d "
                "validation texts%s", before["ensemble"], after["ensemble"], before["ngram"], after["ngram"],
                len(y), "" if kept else "; the model before self-training is kept")
    if not kept:
        chosen = ensemble(encoder_validation, ngram_fit, dataset, resolved, record)
    record.add("self_training", unlabeled_texts=len(unlabeled), source=resolved.settings.unlabeled_data,
               seconds=round(time.monotonic() - start, 1), kept=kept, validation_examples=int(len(y)),
               **self_training.summary(dataset.classes, pseudo, before, after))
    return chosen


def _accuracy(probabilities: np.ndarray, label_ids: np.ndarray) -> float:
    return round(float(np.mean(np.asarray(probabilities).argmax(axis=1) == label_ids)), 4)


def calibrate(resolved: config_mod.RunConfig, dataset, probabilities, record: RunRecord):
    """The calibrated validation probabilities: the temperature (one a label for multi-label)
    with the lowest validation log loss (app.training.calibration), recorded (`calibration`) and applied by
    the export; unchanged with `--calibration none`, or with fewer than `calibration.MIN_EXAMPLES`
    validation texts (T = 1, and the record says why)."""
    from app.training import calibration

    if resolved.settings.calibration == "none":
        return probabilities
    true = dataset.label_ids("validation")
    multi = dataset.multi_label
    few = len(true) < calibration.MIN_EXAMPLES
    if few:  # T = 1: the probabilities as they are
        temperature = np.ones(len(dataset.classes), np.float32) if multi else np.float32(1.0)
    else:  # rounded as recorded, so that the export applies what the thresholds were chosen with
        temperature = np.round(calibration.fit_temperature(probabilities, true, multi), 4)
    calibrated = calibration.apply_temperature(probabilities, temperature, multi)
    shown = ({c: float(t) for c, t in zip(dataset.classes, temperature, strict=True)} if multi
             else float(temperature))
    why = ({"why": f"fewer than {calibration.MIN_EXAMPLES} validation texts to fit a temperature on"}
           if few else {})
    record.add("calibration", method="temperature", validation_examples=int(len(true)), temperature=shown,
               **why)
    if few:
        logger.info("calibration: none (temperature 1): %d validation examples are too few to fit one on "
                    "(at least %d)", len(true), calibration.MIN_EXAMPLES)
    else:
        logger.info("calibration: temperature %s (fitted on %d validation examples)", shown, len(true))
    return calibrated


def decide(resolved: config_mod.RunConfig, dataset, probabilities, record: RunRecord) -> None:
    """Multi-label: each label's decision threshold, by the rule (global, per label, or shrunk)
    with the best cross-validated micro F1 on the validation split (app.training.decision), recorded
    (`thresholds`, `threshold_rule`) and applied by the export."""
    from app.training import decision

    if not dataset.multi_label:
        return
    thresholds, rule = decision.threshold_rule(probabilities, dataset.label_ids("validation"),
                                                 resolved.settings.seed)
    chosen = {c: round(float(t), 4) for c, t in zip(dataset.classes, thresholds, strict=True)}
    figures = ", ".join(f"{name} {f['cross_validated_micro_f1']:.4f}" for name, f in rule["rules"].items())
    logger.info("decision thresholds: the %s rule, by cross-validated micro F1 on %d validation examples "
                "(%s): %s", rule["rule"], rule["examples"], figures, chosen)
    record.add("thresholds", **chosen)
    record.add("threshold_rule", **rule)


def label_priors(dataset) -> list[float] | None:
    """Multi-label: each label's log-odds in the training split, where the head's biases start
    (app.model.classifier); None for one class a text."""
    from app.model.classifier import prior_log_odds

    if not dataset.multi_label:
        return None
    train = dataset.splits["train"]
    counts = train.counts()
    return prior_log_odds([counts.get(c, 0) for c in dataset.classes], len(train))


def build_model(resolved: config_mod.RunConfig, strategy, num_classes: int, total_steps: int,
                multi_label: bool = False, initial_bias: list[float] | None = None,
                warmup_steps: int | None = None):
    """(classifier, clock): the model and its optimizer, built in the strategy's scope, compiled
    (`compile_model`); the clock is the learning-rate schedule's share of a time budget used
    (`app.training.fit.Deadline`)."""
    from app.model.classifier import build_classifier

    c = resolved.settings
    with strategy.scope():
        model = build_classifier(resolved.encoder.encoder, num_classes, c.dropout,
                                 None if c.length_buckets else c.max_seq_length, c.model_name,
                                 pooled_only=resolved.encoder.pooled_only, pooling=c.pooling,
                                 multi_label=multi_label, initial_bias=initial_bias)
    return model, compile_model(model, resolved, strategy, total_steps, multi_label, warmup_steps)


def compile_model(model, resolved: config_mod.RunConfig, strategy, total_steps: int,
                  multi_label: bool = False, warmup_steps: int | None = None):
    """Compile `model` with a new optimizer in the strategy's scope (again after a change of
    which layers train) and return the budget's clock (None without a budget). Multi-label:
    binary cross-entropy per label, and micro F1 at 0.5 to follow."""
    import tensorflow as tf

    from app.model.classifier import HEAD_LAYER, LabelWeightedBinaryCrossentropy
    from app.training.optimization import create_optimizer

    c = resolved.settings
    with strategy.scope():
        clock = tf.Variable(0.0, trainable=False, name="budget_clock",
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA) if c.time_budget else None
        head_factor = c.head_learning_rate_factor or 1.0  # (a probe's model, before the task is known: 1)
        factors = {f"{HEAD_LAYER}/": head_factor} if head_factor != 1 else None
        optimizer = create_optimizer(c.learning_rate, total_steps, c.warmup_fraction, c.weight_decay,
                                     c.clip_norm, clock, factors, warmup_steps, c.layer_decay)
        if multi_label:
            weights = [resolved.class_weights.get(name, 1.0) for name in resolved.classes]
            loss = (LabelWeightedBinaryCrossentropy(weights) if any(w != 1.0 for w in weights)
                    else tf.keras.losses.BinaryCrossentropy())
            metrics = [tf.keras.metrics.F1Score(average="micro", threshold=0.5, name="f1")]
        else:
            loss = tf.keras.losses.SparseCategoricalCrossentropy()
            metrics = [tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            jit_compile=c.jit_compile,
            steps_per_execution=c.steps_per_execution,
        )
    return clock


def export(model, tokenizer, resolved: config_mod.RunConfig, record: RunRecord, ngram_model=None,
           combination: dict | None = None) -> Path | None:
    """The export folder (None on a worker other than the chief), its path and version added to
    the record; the export holds the config and the record as assets.

    Saving can run collective ops under MultiWorkerMirroredStrategy, so every worker exports;
    only the chief keeps its export."""
    from app import distribute
    from app.serving.export import choose_version, export_model

    c = resolved.settings
    classes = resolved.classes
    chief = distribute.is_chief()
    output_dir = c.output_dir if chief else tempfile.mkdtemp(prefix="bertclf-worker-export-")
    version = choose_version(output_dir, c.model_name, c.version)
    record.add("export", path=str(Path(output_dir) / c.model_name / str(version)), version=version)
    thresholds = [record.thresholds[name] for name in classes] if record.thresholds else None
    temperature = record.calibration.get("temperature")
    if isinstance(temperature, dict):
        temperature = [temperature[name] for name in classes]
    export_dir = export_model(model, tokenizer, classes, resolved.to_json(), output_dir, c.model_name,
                              version, ngram_model, (combination or {}).get("weight", 0.0),
                              pairs=c.text_pair_column is not None, thresholds=thresholds,
                              temperature=temperature, decision_threshold=c.decision_threshold,
                              pooling=(combination or {}).get("pooling"), record_json=record.to_json())
    if not chief:
        shutil.rmtree(output_dir, ignore_errors=True)
        return None
    return export_dir


def evaluate(export_dir: Path, dataset, history, run_dir: Path, train_split=None, baseline: bool = True,
             seed: int = 42) -> tuple[Path, dict]:
    """The report of the exported model on the test split (validation when there is none), named
    by its source, beside the baseline fitted on `train_split` (app.reporting.baseline), with the training
    examples the model finds most surprising."""
    from app.evaluate import evaluate_export

    name = "test" if "test" in dataset.splits else "validation"
    split = dataset.splits[name]
    report_dir = run_dir / "report"
    report = evaluate_export(str(export_dir), split.texts, split.labels, split.ids, report_dir,
                             data=dataset.sources.get(name, name), history=history, pairs=split.pairs,
                             train_split=train_split, baseline=baseline, seed=seed)
    return report_dir, report


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m app.train` (docs/flags.md is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m app.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    config_mod.add_arguments(parser)
    parser.add_argument("--verbose", action="store_true", help="keep TensorFlow's own start-up lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.build_config(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runtime.setup(args.verbose)
    from app.training import backup

    try:
        result = run(cfg)
    except ValueError as e:  # DataError and RunLocked included: the user's input, explained
        print(f"error: {e}", file=sys.stderr)
        return 2
    except backup.BackupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except backup.Interrupted as e:
        print(f"\n{e.message}", file=sys.stderr)
        return e.exit_status
    if result.export_dir is not None:
        from app.evaluate import baseline_line, summary_line

        r = result.report
        print(f"\nexported model: {result.export_dir}")
        print(f"report:         {result.report_dir / 'report.html'}")
        print(f"test {summary_line(r)} ({r['data']})")
        if r.get("baseline"):
            print(f"baseline {baseline_line(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
