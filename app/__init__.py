"""bertclf: fine-tune TF-Hub BERT encoders for text classification and export them for TF Serving."""

import contextlib
import logging
import os
from collections.abc import Iterator

# hub.KerasLayer only works with Keras 2. This must happen before TensorFlow is first imported,
# so that `tf.keras` resolves to `tf_keras` everywhere in the project. Importing any `app.*`
# module runs this file first.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter drowns our own logs; users can still override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# CPU fusion: XLA auto-clustering of element-wise, reduction and data-movement ops only (GELU,
# layer norms, softmax, casts), so each chain of them runs as one compiled loop while matmuls stay
# on TensorFlow's oneDNN kernels (XLA's own CPU matmuls train ~14x slower here). It ran batch-64
# inference 1.13-1.35x faster and training at 128 tokens 5-8 % faster in steady state, at the price
# of compiling each new shape once (bench/README.md). The flags below only make CPU clusters
# possible; `cpu_fusion()` turns clustering on for the calls inside it: app.train's fit, and the
# inference app.predict and app.evaluate run when it has enough texts to pay for the compiling
# (app.evaluate.FUSION_MIN_TEXTS). TensorFlow reads these flags once, when it first
# sets up its devices, so they are set here; `BERTCLF_CPU_FUSION=0` or a TF_XLA_FLAGS of your own
# turns it off. Not in multi-worker clusters (TF_CONFIG): TF 2.21's collective runtime then fails
# with "Multiple CPU devices" when it starts the input pipeline.
CPU_FUSION_FLAGS = "--tf_xla_cpu_global_jit --tf_xla_ops_to_cluster=FUSIBLE"
if os.environ.get("BERTCLF_CPU_FUSION", "1") != "0" and not os.environ.get("TF_CONFIG"):
    os.environ.setdefault("TF_XLA_FLAGS", CPU_FUSION_FLAGS)

__version__ = "0.1.0"


def cpu_fusion_enabled() -> bool:
    """Whether this process runs with the CPU fusion flags above."""
    return "--tf_xla_cpu_global_jit" in os.environ.get("TF_XLA_FLAGS", "").split()


@contextlib.contextmanager
def cpu_fusion(enabled: bool = True) -> Iterator[bool]:
    """Auto-cluster (fuse) the TensorFlow functions called inside, if `enabled` and this process
    has the CPU fusion flags; yields whether it does. TensorFlow applies the setting per call, so a
    function traced before still runs fused inside and unfused outside."""
    if not (enabled and cpu_fusion_enabled()):
        yield False
        return
    import tensorflow as tf

    previous = tf.config.optimizer.get_jit()
    tf.config.optimizer.set_jit("autoclustering")
    try:
        yield True
    finally:
        tf.config.optimizer.set_jit(previous or False)


def configure_logging(level: int = logging.INFO) -> None:
    """For the CLIs: our INFO lines with timestamps; TensorFlow's and absl's only from WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
