"""app.training.tuning: CPU fusion chosen by what it measured, the probe's alternation and warm-up, and
`--cpu-fusion` resolved (an explicit choice wins; `on` where fusion cannot run is refused)."""

from __future__ import annotations

import json

import pytest

from app import config
from app.training import tuning
from tests.test_config import CPU, fake_encoders


def probe(step_off=1.0, step_on=0.8, compile_seconds=10.0):
    return tuning.FusionProbe(step_off, step_on, compile_seconds, batch_size=32, seq_length=128)


def test_fusion_pays_only_when_the_runs_steps_repay_compiling_its_shapes():
    # 0.2 s saved a step; 3 shapes cost 3 x 10 s x 1.5 (validation) = 45 s.
    fused, why, figures = tuning.decide_cpu_fusion(probe(), steps=1000, shapes=3)
    assert fused and figures["gain_seconds"] == 200.0 and figures["compile_cost_seconds"] == 45.0
    assert "1.25x" in why and "saves 200 s against 45 s" in why
    fused, why, _ = tuning.decide_cpu_fusion(probe(), steps=100, shapes=3)  # 20 s < 45 s
    assert not fused and "saves 20 s" in why
    # Fusion that slows the step never pays, however long the run.
    fused, why, figures = tuning.decide_cpu_fusion(probe(step_on=1.1), steps=10**6, shapes=1)
    assert not fused and figures["gain_seconds"] < 0 and "costs" in why
    with pytest.raises(ValueError, match="steps and shapes"):
        tuning.decide_cpu_fusion(probe(), steps=0, shapes=1)


def test_the_probe_alternates_settings_after_warming_both_up_and_measures_the_compilation(monkeypatch):
    calls = []

    def step(fused: bool) -> None:
        calls.append(fused)

    times = iter([1.0, 1.0,  # unfused warm-up
                  12.0, 0.5,  # fused: the first compiles
                  1.0, 0.5, 1.2, 0.6, 0.9, 0.5])  # alternated off, on

    clock = {"t": 0.0}

    def fake_perf_counter():
        return clock["t"]

    def timed_step(fused: bool) -> None:
        step(fused)
        clock["t"] += next(times)

    monkeypatch.setattr(tuning.time, "perf_counter", fake_perf_counter)
    result = tuning.probe_cpu_fusion(timed_step, 32, 64, repeats=3)
    assert calls == [False, False, True, True, False, True, False, True, False, True]
    assert result.step_off == pytest.approx(1.0) and result.step_on == pytest.approx(0.5)
    assert result.compile_seconds == pytest.approx(12.0 + 0.5 - 2 * 0.5)
    assert tuning.FusionProbe.from_dict(result.to_dict()) == result


def test_cpu_fusion_flag_resolves_and_is_validated():
    find, _ = fake_encoders()
    assert config.resolve(config.TrainConfig(), CPU, find).cpu_fusion is True  # auto: app.train probes
    assert config.resolve(config.TrainConfig(cpu_fusion="off"), CPU, find).cpu_fusion is False
    assert config.resolve(config.TrainConfig(cpu_fusion="on"), CPU, find).cpu_fusion is True
    no_flags = config.Hardware("default strategy (one device)", 1, "CPU", False, cpu_fusion=False)
    with pytest.raises(ValueError, match="--cpu-fusion on: this process has no CPU fusion flags"):
        config.resolve(config.TrainConfig(cpu_fusion="on"), no_flags, find)
    with pytest.raises(ValueError, match="--cpu-fusion on: --jit-compile"):
        config.resolve(config.TrainConfig(cpu_fusion="on", jit_compile=True), CPU, find)
    with pytest.raises(ValueError, match=r"--cpu-fusion must be one of .*got 'sometimes'"):
        config.validate(config.TrainConfig(cpu_fusion="sometimes"))


_TUNE = """
import argparse, json, sys
from app import config, runtime, train
runtime.setup()
parser = argparse.ArgumentParser()
config.add_arguments(parser)
cfg = config.build_config(parser.parse_args(sys.argv[1:]))
strategy, resolved = train.resolve(cfg)
dataset = train.read_data(resolved)
lengths = train.token_lengths(resolved, dataset)
first = train.tune(resolved, strategy, dataset, lengths)
again = train.tune(resolved, strategy, dataset, lengths)
print(json.dumps([first.settings.cpu_fusion, first.tuning, again.tuning]))
"""


def test_auto_times_both_settings_on_the_run_and_caches_the_figures(tiny_hub, tiny_reviews, tmp_path):
    """In a process with the fusion flags (as the CLIs run): a real probe of the tiny encoder,
    its figures recorded and its decision consistent with them; the second run reads the cache."""
    from tests.conftest import FUSION_ENV, run_script, tiny_train_args

    env = {**FUSION_ENV, "BERTCLF_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_script(_TUNE, *tiny_train_args(tiny_hub, tiny_reviews, tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen, first, again = json.loads(proc.stdout.strip().splitlines()[-1])
    record = first["cpu_fusion"]
    assert record["chosen_by"] == "probe" and record["batch_size"] == 8 and record["seq_length"] == 32
    assert record["step_on"] > 0 and record["step_off"] > 0 and record["compile_seconds"] >= 0
    assert record["steps"] == 5 * 23  # ceil(180 training texts / 8) x 5 epochs
    assert chosen == ("on" if record["gain_seconds"] > record["compile_cost_seconds"] else "off")
    assert again["cpu_fusion"] == record  # from the cache: the same figures, no second probe
    assert "measured earlier on this machine" in proc.stderr
    assert proc.stderr.count("timing training steps") == 1
    assert json.loads((tmp_path / "cache" / "throughput.json").read_text())  # the entry is on disk
