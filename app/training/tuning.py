"""Speed choices that depend on the machine, made by measuring them there: CPU fusion.

Whether XLA's fusion of the element-wise ops pays depends on the CPU (on some it speeds a step
up, on others it barely moves it) and on the run: each new input shape compiles its clusters
once, and length buckets give a run several shapes, so a short run can spend more compiling than
it saves. `--cpu-fusion auto` therefore times training steps on this machine with fusion on and
off, alternated on one throw-away model at the run's batch size and sequence length, and turns
it on only when the steady gain over the run's steps beats the compilation of its shapes. The
figures are cached per CPU, core count, encoder, precision and library versions (the
throughput probe's cache, `app.training.budget.cache_file`), so a machine pays the probe once.

The decision is plain arithmetic (`decide_cpu_fusion`), tested without a model.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

# Timed steps per setting after the warm-up (alternated: off, on, off, on, ...).
PROBE_REPEATS = 3
# Each training shape is compiled once for the fit and once for its validation function; the
# validation function's clusters (no gradients) compile in about half the time.
VALIDATION_COMPILE_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class FusionProbe:
    """Seconds a training step takes without and with fusion (medians of alternated steps), and
    what compiling one shape's clusters cost the first fused step."""

    step_off: float
    step_on: float
    compile_seconds: float
    batch_size: int
    seq_length: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FusionProbe:
        return cls(float(d["step_off"]), float(d["step_on"]), float(d["compile_seconds"]),
                   int(d["batch_size"]), int(d["seq_length"]))


def decide_cpu_fusion(probe: FusionProbe, steps: int, shapes: int) -> tuple[bool, str, dict]:
    """(fuse?, why, figures): fuse when the steady gain over `steps` training steps beats
    compiling `shapes` input shapes (for the fit and its validation)."""
    if steps < 1 or shapes < 1:
        raise ValueError(f"steps and shapes must be positive, got {steps} and {shapes}")
    gain = (probe.step_off - probe.step_on) * steps
    cost = probe.compile_seconds * shapes * (1 + VALIDATION_COMPILE_SHARE)
    fuse = gain > cost
    speedup = probe.step_off / probe.step_on if probe.step_on > 0 else float("inf")
    why = (f"a step of {probe.batch_size} at {probe.seq_length} word pieces takes "
           f"{probe.step_on:.3f} s fused, {probe.step_off:.3f} s not ({speedup:.2f}x);"
           f" over {steps} steps that {'saves' if gain >= 0 else 'costs'} "
           f"{abs(gain):.0f} s against {cost:.0f} s compiling "
           f"{shapes} shape(s) ({probe.compile_seconds:.1f} s each, plus validation)")
    figures = {**probe.to_dict(), "speedup": round(speedup, 3), "steps": steps, "shapes": shapes,
               "gain_seconds": round(gain, 1), "compile_cost_seconds": round(cost, 1)}
    return fuse, why, figures


def probe_cpu_fusion(step: Callable[[bool], None], batch_size: int, seq_length: int,
                     repeats: int = PROBE_REPEATS) -> FusionProbe:
    """Time `step(fused)` (one training step at the run's shape) with fusion off and on.

    Two unfused steps trace the function and warm the caches; the first fused step compiles the
    clusters (XLA compiles a shape on its second request, so two fused steps pay it); then the
    settings alternate, so a machine that slows down or speeds up mid-probe hurts neither more.
    """
    for _ in range(2):
        step(False)
    first_on = []
    for _ in range(2):
        start = time.perf_counter()
        step(True)
        first_on.append(time.perf_counter() - start)
    off, on = [], []
    for _ in range(repeats):
        for fused, times in ((False, off), (True, on)):
            start = time.perf_counter()
            step(fused)
            times.append(time.perf_counter() - start)
    step_off, step_on = float(np.median(off)), float(np.median(on))
    compile_seconds = max(0.0, sum(first_on) - 2 * step_on)
    return FusionProbe(step_off, step_on, compile_seconds, batch_size, seq_length)
