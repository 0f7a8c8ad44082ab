"""TensorFlow measurements for bench/run.py, one per process (prints one JSON line).

    python bench/tf_worker.py peak
    python bench/tf_worker.py hub_style_encoder --output DIR
    python bench/tf_worker.py bertclf --data DIR --seq-length 128 --batch-size 32
    python bench/tf_worker.py tutorial --data DIR --seq-length 128 --batch-size 32
    python bench/tf_worker.py serve --model saved_models/NAME/VERSION --data DIR
    python bench/tf_worker.py accuracy --recipe bertclf|tutorial --data DIR ...
    python bench/tf_worker.py tta --train-csv F --test-csv F --minutes 15   # the tutorial recipe
    python bench/tf_worker.py profile --data DIR --seq-length 128 --compute-dtype float32

Every throughput is the median of several timed windows after warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow: hub.KerasLayer needs Keras 2

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
import tensorflow_text  # noqa: E402,F401
from common import (  # noqa: E402
    PROBE_STEPS,
    examples_in_budget,
    read_csv,
    read_texts,
    training_order,
    windows_rate,
)

from app import data  # noqa: E402
from app.config import TrainConfig  # noqa: E402
from app.model import encoders, preprocessing
from app.model.classifier import build_classifier  # noqa: E402
from app.runtime import cpu_fusion  # noqa: E402
from app.serving import inference
from app.training.optimization import create_optimizer  # noqa: E402


class StepTimer(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = [time.perf_counter()]

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def peak(args) -> dict:
    """Dense matmul rate in GFLOP/s, fp32 and bf16: the median of short windows, the two types
    alternating for `--probe-seconds`, and the 10th-90th percentile range of those windows.

    The range says how quiet the machine was: on the shared 2-core hosts this was built on, the
    bf16 rate alone swung 2-3x from one second to the next with nothing else of ours running, and
    every bf16 figure of a run moves with it."""
    n = 2048
    mm = tf.function(lambda x, y: tf.matmul(x, y))
    operands = {}
    for name, dtype in (("fp32", tf.float32), ("bf16", tf.bfloat16)):
        operands[name] = (tf.cast(tf.random.normal([n, n]), dtype), tf.cast(tf.random.normal([n, n]), dtype))
        mm(*operands[name]).numpy()
    rates = {name: [] for name in operands}
    end = time.perf_counter() + args.probe_seconds
    while time.perf_counter() < end or min(map(len, rates.values())) < 7:
        for name, (a, b) in operands.items():
            start = time.perf_counter()
            for _ in range(3):
                c = mm(a, b)
            c.numpy()
            rates[name].append(3 * 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return {"peak_gflops": {k: float(np.median(v)) for k, v in rates.items()},
            "peak_gflops_p10_p90": {k: [float(np.percentile(v, 10)), float(np.percentile(v, 90))]
                                    for k, v in rates.items()},
            "peak_probe_seconds": args.probe_seconds, "peak_windows": {k: len(v) for k, v in rates.items()}}


def hub_style_encoder(args) -> dict:
    """The MiniLM weights in the graph a TF-Hub BERT export runs, for the tutorial recipe.

    TF-Hub's BERT encoders are Keras models whose Dropout layers draw one float32 per element
    (`tf.nn.dropout`); bertclf's fast encoder hashes each element's index instead. Everything else
    (2-D matmuls, exact GELU, fp32) is what `app.convert` writes by default.
    """
    from app.model import bert_fast
    from app.model import conversion as convert

    bert_fast.dropout = lambda x, rate: tf.nn.dropout(x, rate=rate)
    out = Path(args.output)
    checkpoint = encoders.minilm_checkpoint()
    record = out / "bertclf_convert.json"
    if not encoders.is_current(record, convert.fingerprint(checkpoint, 128, "float32", "fast")):
        convert.convert(checkpoint, out)
    return {"encoder": str(out)}


def _texts(data_dir: str, n: int):
    """The same reviews the other workers train on (see common.read_texts)."""
    texts, labels = read_texts(Path(data_dir), n)
    return texts, np.asarray(labels, np.int32), ["neg", "pos"]


def bertclf_model(args, classes):
    """As app.train builds it; `--implementation plain` takes the offline encoder's plain graph."""
    if args.implementation == "plain":
        folder = encoders.ensure_offline_encoder(compute_dtype=args.compute_dtype, implementation="plain")
        spec = encoders.resolve(str(folder))
    else:
        spec = encoders.resolve(args.encoder, compute_dtype=args.compute_dtype)
    tokenizer = preprocessing.Tokenizer(spec.preprocess, args.seq_length, "head+tail")
    seq_length = None if args.length_buckets else args.seq_length  # as app.train builds it
    model = build_classifier(spec.encoder, len(classes), 0.1, seq_length, pooled_only=spec.pooled_only,
                             pooling=TrainConfig.pooling)
    return spec, tokenizer, model


def tutorial_model(args, classes):
    """The "Classify text with BERT" recipe: preprocessing inside the model, fp32, fixed length."""
    spec = encoders.resolve(args.tutorial_encoder or args.encoder)
    text = tf.keras.layers.Input(shape=(), dtype=tf.string, name="text")
    pre = hub.load(spec.preprocess)
    tokenize = hub.KerasLayer(pre.tokenize, name="tokenize")
    pack = hub.KerasLayer(pre.bert_pack_inputs, arguments=dict(seq_length=args.seq_length), name="pack")
    encoder_inputs = pack([tokenize(text)])
    outputs = hub.KerasLayer(spec.encoder, trainable=True, name="BERT_encoder")(encoder_inputs)
    net = tf.keras.layers.Dropout(0.1)(outputs["pooled_output"])
    net = tf.keras.layers.Dense(len(classes), activation="softmax", name="classifier")(net)
    model = tf.keras.Model(text, net)
    model.preprocess_module = pre  # tracked, so model.save() carries its vocabulary table
    return model


def _train_throughput(model, ds, args, shapes=()) -> dict:
    """`shapes`: one batch of each padded length, trained on first, so that the timed windows
    measure the steady state and not XLA compiling each new shape once (CPU fusion)."""
    steps = args.warmup + args.windows * args.window
    model.compile(optimizer=create_optimizer(args.learning_rate, 1000),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    if shapes:  # through fit, with the timed dataset's element spec: the same traced graph. XLA
        # compiles a cluster's new shapes lazily (on the second request), so each shape 3 times.
        warm = tf.data.Dataset.from_generator(lambda: iter(shapes * 3), output_signature=ds.element_spec)
        model.fit(warm, epochs=1, verbose=0)
    timer = StepTimer()
    model.fit(ds.repeat(), steps_per_epoch=steps, epochs=1, callbacks=[timer], verbose=0)
    return windows_rate(timer.times, args.batch_size, args.warmup, args.window)


def bertclf(args) -> dict:
    """As `app.train` runs on CPU. One length-bucketing window of reviews, so the timed batches
    have the padded lengths training on the whole split would give."""
    texts, labels, classes = _texts(args.data, args.batch_size * preprocessing.BUCKET_WINDOW)
    spec, tokenizer, model = bertclf_model(args, classes)
    ds = preprocessing.make_tf_dataset(texts, labels, tokenizer, args.batch_size, shuffle=True, seed=0,
                              drop_remainder=True, length_buckets=args.length_buckets)
    lengths, batches = [], {}  # every batch's padded length; one batch of each length
    for x, y in ds:
        lengths.append(x["input_word_ids"].shape[1])
        batches[lengths[-1]] = (x, y)
    mean_length = float(np.mean(lengths))  # for the FLOPs the MFU counts
    start = time.perf_counter()
    # As app.train: with CPU fusion where the flags are set (--no-train-fusion: without).
    with cpu_fusion(args.train_fusion) as fusion:
        rate = _train_throughput(model, ds, args, shapes=list(batches.values()))
    return {**rate, "cpu_fusion": fusion, "length_buckets": args.length_buckets,
            "compute_dtype": spec.compute_dtype, "implementation": spec.implementation,
            "mean_padded_length": mean_length, "padded_lengths": sorted(batches),
            "train_seconds_with_compile": time.perf_counter() - start}


def profile(args) -> dict:
    """Where a bertclf training step's time goes (one fixed batch at --seq-length, no buckets):
    the whole step, forward and backward without the optimizer, the forward pass, the optimizer
    alone, the step's dense matmuls alone (the encoder's GEMM shapes, forward and both backward
    products, in the compute dtype), and the input pipeline (tokenizing one batch). Each is the
    median of 2 x --windows rounds over all of them after warm-up; the shares are of the step."""
    texts, labels, classes = _texts(args.data, args.batch_size * 4)
    args.length_buckets = False
    spec, tokenizer, model = bertclf_model(args, classes)
    model.compile(optimizer=create_optimizer(args.learning_rate, 1000),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    ds = preprocessing.make_tf_dataset(texts, labels, tokenizer, args.batch_size, drop_remainder=True)
    x, y = next(iter(ds))
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    grads = forward_backward()
    forward = tf.function(lambda: model(x, training=True))
    pairs = list(zip(grads, model.trainable_variables, strict=True))
    apply = tf.function(lambda: model.optimizer.apply_gradients(pairs))
    # The encoder's dense matmuls of one step: per layer Q, K, V and the attention output (d x d),
    # the two feed-forward ones (d x 4d, 4d x d); the backward pass computes two products per
    # forward one (the input's gradient and the kernel's).
    d, layers, tokens = spec.hidden_size, spec.num_layers, args.batch_size * args.seq_length
    dtype = tf.bfloat16 if spec.compute_dtype == "bfloat16" else tf.float32
    shapes = [(d, d)] * 4 + [(d, 4 * d), (4 * d, d)]
    # Operands of each layer's own (identical products would be merged by graph optimisation).
    operands = [[(tf.cast(tf.random.normal([tokens, k]), dtype), tf.cast(tf.random.normal([k, n]), dtype),
                  tf.cast(tf.random.normal([tokens, n]), dtype)) for k, n in shapes] for _ in range(layers)]

    @tf.function
    def matmuls():
        out = []
        for layer in operands:
            for a, w, g in layer:
                out += [tf.matmul(a, w), tf.matmul(g, w, transpose_b=True), tf.matmul(a, g, transpose_a=True)]
        return out

    matmul_flops = 3 * layers * sum(2 * tokens * k * n for k, n in shapes)
    batch_texts = texts[:args.batch_size]
    parts = {"step": lambda: model.train_on_batch(x, y),
             "forward_backward": lambda: [tf.convert_to_tensor(g).numpy() for g in forward_backward()][:1],
             "forward": lambda: forward().numpy(), "optimizer": lambda: apply(),
             "dense_matmuls": lambda: [m.numpy() for m in matmuls()][:1],
             "tokenize_batch": lambda: tokenizer(tf.constant(batch_texts))}
    # Rounds over every part, so a machine that speeds up or slows down mid-run moves them alike.
    times = {name: [] for name in parts}
    with cpu_fusion(args.train_fusion) as fusion:
        for fn in parts.values():
            for _ in range(3):
                fn()
        for _ in range(args.windows * 2):
            for name, fn in parts.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    figures = {name: float(np.median(t)) for name, t in times.items()}
    step = figures["step"]
    return {"profile": {"seconds": figures, "share_of_step": {k: v / step for k, v in figures.items()},
                        "dense_matmul_gflops": matmul_flops / figures["dense_matmuls"] / 1e9,
                        "dense_matmul_gflop_per_step": matmul_flops / 1e9,
                        "examples_per_second": args.batch_size / step, "cpu_fusion": fusion,
                        "compute_dtype": spec.compute_dtype, "seq_length": args.seq_length,
                        "batch_size": args.batch_size}}


def tutorial(args) -> dict:
    texts, labels, classes = _texts(args.data, args.batch_size * 8)
    model = tutorial_model(args, classes)
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(texts), labels)).shuffle(len(texts), seed=0)
    ds = ds.batch(args.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return _train_throughput(model, ds, args)


def accuracy(args) -> dict:
    """Fixed budget (same examples, epochs, seed): accuracy on held-out reviews."""
    tf.keras.utils.set_random_seed(0)
    ds = data.read_dataset(args.data)
    split = ds.splits["train"]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(split))
    train_idx, eval_idx = order[:args.train_examples], order[args.train_examples:][:args.eval_examples]
    y = ds.label_ids("train")
    tr_texts, ev_texts = [split.texts[i] for i in train_idx], [split.texts[i] for i in eval_idx]
    total = (len(train_idx) // args.batch_size) * args.epochs
    start = time.perf_counter()
    if args.recipe == "bertclf":
        spec, tokenizer, model = bertclf_model(args, ds.classes)
        train_ds = preprocessing.make_tf_dataset(tr_texts, y[train_idx], tokenizer, args.batch_size,
                                                 shuffle=True, seed=0, drop_remainder=True,
                                                 length_buckets=args.length_buckets)
        eval_ds = preprocessing.make_tf_dataset(ev_texts, y[eval_idx], tokenizer, 64)
    else:
        model = tutorial_model(args, ds.classes)
        train_ds = tf.data.Dataset.from_tensor_slices((tf.constant(tr_texts), y[train_idx]))
        train_ds = train_ds.shuffle(len(tr_texts), seed=0).batch(args.batch_size, drop_remainder=True)
        eval_ds = tf.data.Dataset.from_tensor_slices((tf.constant(ev_texts), y[eval_idx])).batch(64)
    model.compile(optimizer=create_optimizer(args.learning_rate, total),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with cpu_fusion(args.recipe == "bertclf"):  # as app.train fits
        model.fit(train_ds, epochs=args.epochs, verbose=0)
    train_seconds = time.perf_counter() - start
    _, acc = model.evaluate(eval_ds, verbose=0)
    return {"accuracy": float(acc), "train_examples": len(train_idx), "eval_examples": len(eval_idx),
            "epochs": args.epochs, "train_seconds": train_seconds,
            "length_buckets": args.recipe == "bertclf" and args.length_buckets}


def tta(args) -> dict:
    """The tutorial recipe given `--minutes` (bench/common.py's rule), then its held-out accuracy."""
    tf.keras.utils.set_random_seed(0)
    budget = args.minutes * 60
    start = time.perf_counter()
    texts, labels = read_csv(args.train_csv)
    test_texts, test_labels = read_csv(args.test_csv)
    classes = sorted(set(labels))
    y = np.asarray([classes.index(label) for label in labels], np.int32)
    model = tutorial_model(args, classes)
    batch = args.batch_size

    def batches(index):
        pairs = (tf.constant([texts[i] for i in index]), y[index])
        return tf.data.Dataset.from_tensor_slices(pairs).batch(batch)

    model.compile(optimizer=create_optimizer(1e-30, 1000, 0.0, 0.0), loss="sparse_categorical_crossentropy")
    timer = StepTimer()
    model.fit(batches(training_order(len(texts), batch * (2 + PROBE_STEPS))), epochs=1, verbose=0,
              callbacks=[timer])
    rate = batch * PROBE_STEPS / (timer.times[-1] - timer.times[2])
    # Up to --epochs passes (the small-data bench gives the tutorial's own 5), as the rate allows.
    n = examples_in_budget(rate, budget - (time.perf_counter() - start), len(texts) * args.epochs, batch)
    model.compile(optimizer=create_optimizer(args.learning_rate, n // batch),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Stop(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            if time.perf_counter() - start > budget:
                self.model.stop_training = True

    model.fit(batches(training_order(len(texts), n)), epochs=1, verbose=0, callbacks=[Stop()])
    train_seconds = time.perf_counter() - start
    test_y = np.asarray([classes.index(label) for label in test_labels], np.int32)
    by_length = np.argsort([len(t) for t in test_texts])
    test_ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant([test_texts[i] for i in by_length]), test_y[by_length])).batch(64)
    _, acc = model.evaluate(test_ds, verbose=0)
    return {"accuracy": float(acc), "train_seconds": train_seconds, "train_examples": n,
            "probe_examples_per_second": rate, "seq_length": args.seq_length,
            "epochs": round(n / len(texts), 2)}


SHORT_WORDS = 12


def serve(args) -> dict:
    """bertclf's exported serving_default, or (`--recipe tutorial`) a tutorial-style reloaded
    Keras model, at batch 1 and 64, and at batch 1 on the reviews' first `SHORT_WORDS` words."""
    texts, _, classes = _texts(args.data, 512)

    short = [" ".join(t.split()[:SHORT_WORDS]) for t in texts]  # requests as short as a tweet

    def bench(fn, batch, reps, pool=texts):
        # The pool is cycled: the bundled sample has fewer reviews than 12 batches of 64 take.
        batches = [[pool[j % len(pool)] for j in range(i, i + batch)] for i in range(0, batch * reps, batch)]
        fn(batches[0])  # the first call optimises the graph (a loaded model's own warm-up aside)
        lat = []
        for b in batches:  # every request a new mix of lengths, none repeated before it is timed
            start = time.perf_counter()
            fn(b)
            lat.append(time.perf_counter() - start)
        lat = np.array(lat)
        return {"examples_per_second": float(batch / np.median(lat)),
                "p50_ms": float(np.percentile(lat, 50) * 1e3), "p99_ms": float(np.percentile(lat, 99) * 1e3)}

    if args.recipe == "bertclf":
        # As app.predict and app.evaluate run it: loaded (which warms each length bucket), texts in
        # batches of 64 sorted by length, CPU fusion only for predictions of thousands of texts.
        loaded = inference.load(args.model)

        def fn(t):
            return loaded.predict_outputs(t, 64)
    else:  # save the string-in Keras model and reload it, as the tutorial does
        model = tutorial_model(args, classes)
        path = Path(args.scratch) / "tutorial_savedmodel"
        model.save(str(path), include_optimizer=False)
        reloaded = tf.saved_model.load(str(path))

        def fn(t):
            return reloaded(tf.constant(t), training=False)
    # Enough calls that each figure takes 3-5 s: 200 requests of one text (about 15 ms each) and
    # 12 batches of 64 moved up to 20 % and 10 % between runs of the same code on a quiet host.
    return {args.recipe: {"batch1": bench(fn, 1, 200), "batch64": bench(fn, 64, 12),
                          "batch1_short": bench(fn, 1, 300, short), "cpu_fusion": False}}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["peak", "hub_style_encoder", "bertclf", "tutorial", "serve", "accuracy",
                                    "tta", "profile"])
    p.add_argument("--train-csv")
    p.add_argument("--test-csv")
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--output")
    p.add_argument("--tutorial-encoder", help="encoder for the tutorial recipe (default: --encoder)")
    p.add_argument("--data")
    p.add_argument("--encoder", default=encoders.DEFAULT_ENCODER)
    p.add_argument("--compute-dtype", default="float32")
    p.add_argument("--implementation", choices=["fast", "plain"], default="fast",
                   help="bertclf: the offline encoder's graph (app.convert --implementation)")
    p.add_argument("--seq-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--window", type=int, default=3)
    p.add_argument("--model")
    p.add_argument("--scratch", default="/tmp")
    p.add_argument("--probe-seconds", type=float, default=20,
                   help="peak: how long to sample the matmul rates (at least 7 windows each)")
    p.add_argument("--recipe", default="bertclf")
    p.add_argument("--train-examples", type=int, default=512)
    p.add_argument("--eval-examples", type=int, default=512)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--length-buckets", action=argparse.BooleanOptionalAction, default=True,
                   help="bertclf: pad batches to their length bucket, as app.train does off TPU")
    p.add_argument("--train-fusion", action=argparse.BooleanOptionalAction, default=True,
                   help="bertclf: train with CPU fusion, as app.train does where the flags are set")
    args = p.parse_args()
    result = globals()[args.mode](args)
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
