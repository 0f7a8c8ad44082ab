"""Pick the tf.distribute strategy for the hardware, and say why.

`auto` prefers, in order: a TPU (when `--tpu` is given or the machine looks like a TPU VM),
several workers named in `TF_CONFIG`, several GPUs (mirrored), one GPU, and finally the CPU.
"""

from __future__ import annotations

import glob
import json
import logging
import os

import tensorflow as tf

from app import runtime
from app.config import Hardware

logger = logging.getLogger(__name__)


def _tf_config_workers() -> int:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e})") from e
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def _looks_like_tpu_host() -> bool:
    # Checked without touching the network: asking the cluster resolver on a machine without
    # a TPU can wait on cloud metadata servers.
    return bool(os.environ.get("TPU_NAME") or os.environ.get("TPU_ACCELERATOR_TYPE")
                or glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _tpu_strategy(tpu: str | None) -> tf.distribute.Strategy:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "local")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def choose_strategy(name: str = "auto", tpu: str | None = None) -> tuple[tf.distribute.Strategy, str]:
    """Return (strategy, reason). Must run before any other TensorFlow work in the process."""
    gpus = tf.config.list_physical_devices("GPU")
    workers = _tf_config_workers()
    if name == "tpu" or (name == "auto" and (tpu or _looks_like_tpu_host())):
        try:
            return _tpu_strategy(tpu), f"TPU {tpu or 'local'}"
        except (ValueError, tf.errors.OpError) as e:
            if name == "tpu":
                raise ValueError(f"--strategy tpu: cannot reach TPU {tpu or 'local'} ({e})") from e
            logger.warning("a TPU looked available but could not be used (%s); falling back", e)
    if name == "multi-worker" or (name == "auto" and workers > 1):
        if workers < 1:
            raise ValueError("--strategy multi-worker needs TF_CONFIG naming the cluster's workers")
        return tf.distribute.MultiWorkerMirroredStrategy(), f"TF_CONFIG names {workers} workers"
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy(), f"{len(gpus)} GPUs" if gpus else "mirrored on CPU devices"
    # One device: TensorFlow's default strategy, which places work on the GPU when there is one.
    if name == "gpu" or (name == "auto" and len(gpus) == 1):
        if not gpus:
            raise ValueError("--strategy gpu: TensorFlow sees no GPU on this machine")
        return tf.distribute.get_strategy(), "one GPU" if len(gpus) == 1 else f"one of {len(gpus)} GPUs"
    if name == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
    return tf.distribute.get_strategy(), ("--strategy cpu" if name == "cpu"
                                          else "no TPU, GPU or TF_CONFIG cluster: CPU")


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public class name users know (MultiWorkerMirroredStrategy is implemented by
    CollectiveAllReduceStrategy; the default strategy has a private class)."""
    names = (
        (tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
        (tf.distribute.TPUStrategy, "TPUStrategy"),
        (tf.distribute.MirroredStrategy, "MirroredStrategy"),
        (tf.distribute.OneDeviceStrategy, "OneDeviceStrategy"),
    )
    for cls, name in names:
        if isinstance(strategy, cls):
            return name
    return "default strategy (one device)"


def has_fast_bfloat16(strategy: tf.distribute.Strategy) -> bool:
    """TPUs, Ampere-or-newer GPUs, and CPUs with AVX512-BF16 or AMX compute bfloat16 natively."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    gpus = tf.config.get_visible_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return tuple(capability) >= (8, 0)
    return runtime.cpu_has_native_bfloat16()


def device_kind(strategy: tf.distribute.Strategy) -> str:
    """"TPU", "GPU" or "CPU": what the strategy's replicas run on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "TPU"
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return "GPU" if tf.config.get_visible_devices("GPU") else "CPU"
    return "GPU" if any("GPU" in d.upper() for d in strategy.extended.worker_devices) else "CPU"


def describe(strategy: tf.distribute.Strategy, why: str = "") -> Hardware:
    """The facts about the hardware that `app.config.resolve` chooses defaults from."""
    return Hardware(strategy=strategy_name(strategy), replicas=strategy.num_replicas_in_sync,
                    device=device_kind(strategy), fast_bfloat16=has_fast_bfloat16(strategy),
                    cpu_fusion=runtime.cpu_fusion_enabled(), why=why)


def worker_folder() -> str:
    """"" for the chief (or a single process), else "worker-N": where a cluster's other workers
    keep their own checkpoints inside the run folder."""
    if is_chief():
        return ""
    task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
    return f"{task.get('type', 'worker')}-{task.get('index', 0)}"


def is_chief() -> bool:
    """Whether this process writes the run's outputs (only one worker of a cluster does)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    task = json.loads(raw).get("task", {})
    cluster = json.loads(raw).get("cluster", {})
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in cluster
