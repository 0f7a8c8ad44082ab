"""keras-hub BertTextClassifier (Keras 3 on TensorFlow) on the same MiniLM weights.

Keras 3 cannot share a process with tf-keras's `hub.KerasLayer`, so this runs alone, without
TF_USE_LEGACY_KERAS. The weights come from the local Hugging Face checkpoint through
`from_preset` (keras-hub converts Transformers checkpoints). Prints one `RESULT {json}` line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.pop("TF_USE_LEGACY_KERAS", None)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_common_args, read_texts, windows_rate  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    add_common_args(p)
    args = p.parse_args()

    import keras
    import keras_hub
    import tensorflow as tf

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        args.checkpoint, sequence_length=args.seq_length)
    classifier = keras_hub.models.BertTextClassifier.from_preset(
        args.checkpoint, num_classes=2, preprocessor=preprocessor)
    classifier.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01, global_clipnorm=1.0),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    texts, labels = read_texts(Path(args.data), args.batch_size * 8)
    ds = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(args.batch_size, drop_remainder=True)
    times = [time.perf_counter()]

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    steps = args.warmup + args.windows * args.window
    classifier.fit(ds.repeat(), steps_per_epoch=steps, epochs=1, callbacks=[Timer()], verbose=0)
    result = windows_rate(times, args.batch_size, args.warmup, args.window)
    print("RESULT " + json.dumps({**result, "keras_hub": keras_hub.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
