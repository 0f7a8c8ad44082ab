"""How a bertclf process runs TensorFlow: CPU fusion, a quiet start, logging, versions.

Nothing here runs on import. Every CLI calls `setup()` first thing in its `main`, before
TensorFlow has run an op; a notebook or script that wants the same calls it too.

CPU fusion is XLA auto-clustering of the element-wise, reduction and data-movement ops only
(GELU, layer norms, softmax, casts): each chain of them runs as one compiled loop while the
matmuls stay on TensorFlow's oneDNN kernels, whose CPU training is much faster than XLA's own.
It needs two process-wide flags (`CPU_FUSION_FLAGS`, read when TensorFlow first sets up its
devices) and then runs only for the calls inside `cpu_fusion()`: `app.train`'s fit, and
predictions over enough texts to repay compiling each new shape once (`app.serving.inference`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator

CPU_FUSION_FLAGS = "--tf_xla_cpu_global_jit --tf_xla_ops_to_cluster=FUSIBLE"

# What TensorFlow's native code prints to stderr while it loads and looks for devices, before
# its log level applies: the same lines on every run, none of them about the user's work.
_STARTUP_CHATTER = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cpu_feature_guard\.cc|"
    r"^To enable the following instructions|failed call to cuInit|oneDNN custom operations|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|computation placer already registered|"
    r"oneDNN supports DT_INT64 only on platforms with AVX-512"
)
_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-hub", "tensorflow-text")


def setup(verbose: bool = False, level: int = logging.INFO) -> None:
    """For the CLIs: CPU fusion flags, TensorFlow loaded without its start-up lines (`verbose`
    keeps them), and our log lines with timestamps."""
    enable_cpu_fusion_flags()
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.nullcontext() if verbose else quiet_native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery prints its own line (cuInit)
    configure_logging(level)


def enable_cpu_fusion_flags() -> bool:
    """Set `TF_XLA_FLAGS` for CPU fusion unless the user set their own, `BERTCLF_CPU_FUSION=0`
    turns it off, or `TF_CONFIG` names a cluster (TF 2.21's collective runtime then fails with
    "Multiple CPU devices" when it starts the input pipeline). Takes effect only before
    TensorFlow's first op. Returns whether the process has the flags."""
    if os.environ.get("BERTCLF_CPU_FUSION", "1") != "0" and not os.environ.get("TF_CONFIG"):
        os.environ.setdefault("TF_XLA_FLAGS", CPU_FUSION_FLAGS)
    return cpu_fusion_enabled()


def cpu_fusion_enabled() -> bool:
    """Whether this process runs with the CPU fusion flags."""
    return "--tf_xla_cpu_global_jit" in os.environ.get("TF_XLA_FLAGS", "").split()


@contextlib.contextmanager
def cpu_fusion(enabled: bool = True) -> Iterator[bool]:
    """Auto-cluster (fuse) the TensorFlow functions called inside, if `enabled` and this process
    has the CPU fusion flags; yields whether it does and restores the JIT setting after. TensorFlow
    applies the setting per call, so a function traced before still runs fused inside."""
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


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Hold back what native code writes to stderr (file descriptor 2) inside, then pass on every
    line but TensorFlow's start-up chatter, so a real error is never lost."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not _STARTUP_CHATTER.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def cpu_name() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (results name the CPU they ran on)."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def configure_logging(level: int = logging.INFO) -> None:
    """Our lines with timestamps; TensorFlow's and absl's only from WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def versions() -> dict[str, str]:
    """The versions a run or an export depends on, as installed."""
    from app import __version__

    found = {"bertclf": __version__, "python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
