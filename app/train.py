"""Fine-tune a TF-Hub BERT encoder for text classification, then export and evaluate it.

    python -m app.train                              # offline MiniLM on the bundled sample
    python -m app.train --data ~/aclImdb --epochs 2  # your data; all flags: --help

A run lives in `runs/MODEL_NAME/` (or `--run-dir`): config.json (the resolved config),
classes.json, TensorBoard logs, per-epoch history.csv / history.json, the best checkpoint and,
while it trains, a backup. Running the same command after the process was killed resumes from
the last finished epoch. At the end the best model is exported to `OUTPUT_DIR/MODEL_NAME/VERSION/`
for TF Serving and evaluated on the test split (validation when there is none) into
`RUN_DIR/report/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from app import config as config_mod
from app import runtime

# TensorFlow is imported inside the stages, not here: `--help` and a bad flag answer at once,
# and `main` sets the process up (app.runtime) before TensorFlow starts.

logger = logging.getLogger("app.train")


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    export_dir: Path | None
    report_dir: Path | None
    report: dict | None
    config: config_mod.ResolvedConfig | None = None


def run(cfg: config_mod.TrainConfig, callbacks: list | None = None) -> RunResult:
    """config -> data -> model -> fit -> export -> report. `callbacks` are Keras callbacks added
    after the run's own (backup, checkpoint, logs)."""
    from app import fit

    strategy, resolved = resolve(cfg)
    run_dir = prepare_run_dir(resolved)
    dataset, tokenizer, train_ds, val_ds, resolved = datasets(resolved)
    (run_dir / "config.json").write_text(resolved.to_json())
    (run_dir / "classes.json").write_text(json.dumps(dataset.classes))
    model = build_model(resolved, strategy, len(dataset.classes))
    logger.info("training on %d examples (%d steps/epoch, %d epochs); validating on %d",
                len(dataset.splits["train"]), resolved.schedule["steps_per_epoch"], resolved.config.epochs,
                len(dataset.splits["validation"]))
    history = fit.fit(model, train_ds, val_ds, run_dir, resolved.config.epochs, resolved.config.patience,
                      resolved.cpu_fusion, callbacks)
    export_dir, resolved = export(model, tokenizer, dataset.classes, resolved)
    if export_dir is None:  # a worker of a cluster other than the chief
        return RunResult(run_dir, None, None, None, resolved)
    (run_dir / "config.json").write_text(resolved.to_json())
    (run_dir / "export_path.txt").write_text(f"{export_dir}\n")
    report_dir, report = evaluate(export_dir, dataset, history, run_dir, resolved.config.data)
    return RunResult(run_dir, export_dir, report_dir, report, resolved)


def resolve(cfg: config_mod.TrainConfig):
    """(strategy, resolved config): the strategy for the hardware, then every default chosen."""
    import tensorflow as tf

    from app import distribute

    # Strategy first: multi-worker and TPU set-up must precede other TensorFlow work.
    strategy, why = distribute.choose_strategy(cfg.strategy, cfg.tpu)
    hardware = distribute.describe(strategy, why)
    logger.info("strategy %s with %d replica(s): %s", hardware.strategy, hardware.replicas, why)
    resolved = config_mod.resolve(cfg, hardware)
    c = resolved.config
    logger.info("encoder %s (%s, %s); batch %d, learning rate %g, seq length %d, precision %s, "
                "jit_compile %s, CPU fusion %s, length buckets %s", resolved.encoder.name,
                resolved.encoder.implementation or "TF Hub", resolved.encoder.compute_dtype, c.batch_size,
                c.learning_rate, c.max_seq_length, c.mixed_precision, c.jit_compile, resolved.cpu_fusion,
                c.length_buckets)
    logger.info("resolved config:\n%s", resolved.to_json())
    tf.keras.utils.set_random_seed(c.seed)
    return strategy, resolved


def prepare_run_dir(resolved: config_mod.ResolvedConfig) -> Path:
    """Create the run folder; refuse to resume a backup that another config wrote, and an export
    location that cannot be written, before any training."""
    from app import distribute, fit
    from app.export import check_location

    run_dir = Path(resolved.config.run_dir)
    saved = run_dir / "config.json"
    if fit.has_backup(run_dir) and saved.exists():
        try:
            previous = json.loads(saved.read_text()).get("requested", {})
        except (ValueError, AttributeError):
            previous = {}
        current = resolved.requested.to_dict()
        differ = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
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
        check_location(resolved.config.output_dir, resolved.config.model_name, resolved.config.version)
    return run_dir


def datasets(resolved: config_mod.ResolvedConfig):
    """Read and split the data; the tokenizer and the training and validation pipelines."""
    from app import data, preprocessing

    c = resolved.config
    dataset = data.load_dataset(c.data, c.test_data, c.text_column, c.label_column, c.validation_split,
                                c.max_train_examples, c.max_eval_examples, c.seed)
    for warning in dataset.warnings:
        logger.warning("data: %s", warning)
    train = dataset.splits["train"]
    if len(train) < c.batch_size:
        raise ValueError(f"--batch-size {c.batch_size} is larger than the {len(train)} training examples")
    tokenizer = preprocessing.Tokenizer(c.preprocess, c.max_seq_length, c.truncation)
    train_ds = preprocessing.make_tf_dataset(
        train.texts, dataset.label_ids("train"), tokenizer, c.batch_size, shuffle=True, seed=c.seed,
        drop_remainder=resolved.drop_remainder, length_buckets=c.length_buckets)
    val_ds = preprocessing.make_tf_dataset(
        dataset.splits["validation"].texts, dataset.label_ids("validation"), tokenizer, c.batch_size,
        drop_remainder=resolved.drop_remainder, cache=True, length_buckets=c.length_buckets)
    resolved = resolved.with_data(dataset.columns, dataset.classes,
                                  {name: len(split) for name, split in dataset.splits.items()},
                                  int(train_ds.cardinality()))
    return dataset, tokenizer, train_ds, val_ds, resolved


def build_model(resolved: config_mod.ResolvedConfig, strategy, num_classes: int):
    """The classifier and its optimizer, built in the strategy's scope, compiled."""
    import tensorflow as tf

    from app.model import build_classifier
    from app.optimization import create_optimizer

    c = resolved.config
    with strategy.scope():
        model = build_classifier(resolved.encoder.encoder, num_classes, c.dropout,
                                 None if c.length_buckets else c.max_seq_length, c.model_name,
                                 pooled_only=resolved.encoder.pooled_only)
        optimizer = create_optimizer(c.learning_rate, resolved.schedule["total_steps"], c.warmup_fraction,
                                     c.weight_decay, c.clip_norm)
        model.compile(
            optimizer=optimizer,
            loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=c.jit_compile,
            steps_per_execution=c.steps_per_execution,
        )
    return model


def export(model, tokenizer, classes: list[str], resolved: config_mod.ResolvedConfig):
    """(export folder or None, resolved config with the export's version).

    Saving can run collective ops under MultiWorkerMirroredStrategy, so every worker exports;
    only the chief keeps its export."""
    from app import distribute
    from app.export import choose_version, export_model

    c = resolved.config
    chief = distribute.is_chief()
    output_dir = c.output_dir if chief else tempfile.mkdtemp(prefix="bertclf-worker-export-")
    version = choose_version(output_dir, c.model_name, c.version)
    resolved = resolved.with_export(str(Path(output_dir) / c.model_name / str(version)), version)
    export_dir = export_model(model, tokenizer, classes, resolved.to_json(), output_dir, c.model_name,
                              version)
    if not chief:
        shutil.rmtree(output_dir, ignore_errors=True)
        return None, resolved
    return export_dir, resolved


def evaluate(export_dir: Path, dataset, history, run_dir: Path, data: str) -> tuple[Path, dict]:
    """The report of the exported model on the test split (validation when there is none)."""
    from app.evaluate import evaluate_export

    name = "test" if "test" in dataset.splits else "validation"
    split = dataset.splits[name]
    report_dir = run_dir / "report"
    report = evaluate_export(str(export_dir), split.texts, split.labels, split.ids, report_dir,
                             data=f"{data} ({name} split)", history=history)
    return report_dir, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    config_mod.add_arguments(parser)
    parser.add_argument("--verbose", action="store_true", help="keep TensorFlow's own start-up lines")
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.build_config(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runtime.setup(args.verbose)
    try:
        result = run(cfg)
    except ValueError as e:  # DataError included: the user's input, explained
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.export_dir is not None:
        r = result.report
        print(f"\nexported model: {result.export_dir}")
        print(f"report:         {result.report_dir / 'report.html'}")
        print(f"test accuracy {r['accuracy']:.4f}, macro F1 {r['macro_f1']:.4f} on {r['n_examples']} "
              f"examples ({r['data']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
