"""The cost probe (bench/cost.py): its stopping rule on a fake clock, its CI against scipy, FLOP counts against a hand
count, a tiny real probe's CSV, and bad input."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from bench import cost, paired_timing
from bench.config import compose_config, load_technique
from bench.data import Split
from bench.tasks import get_task
from bench.train import make_trainer

CPU = torch.device("cpu")


class FakeClock:
    """Time moves only when a fake block says so: the stopping rule is tested without wall time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def blocks(clock: FakeClock, none_times, tech_times, calls: list):
    """run_none / run_tech that advance the clock by their next duration, return it (what a block measured) and log
    the order they were called in."""
    def block(name, times):
        def run():
            calls.append(name)
            seconds = next(times)
            clock.now += seconds
            return seconds
        return run

    return block("none", iter(none_times)), block("tech", iter(tech_times))


def test_exact_ratio_stops_at_min_pairs_in_abba_order():
    clock, calls = FakeClock(), []
    run_none, run_tech = blocks(clock, [1.0] * 100, [2.0] * 100, calls)
    found = paired_timing.interleave(run_none, run_tech, clock=clock, min_pairs=8, target=0.05, max_seconds=1e9)
    assert found["n_pairs"] == 8 and found["converged"]
    assert found["ratio"] == pytest.approx(2.0) and found["low"] == pytest.approx(2.0) and found["high"] == pytest.approx(2.0)
    assert calls[:8] == ["none", "tech", "tech", "none", "none", "tech", "tech", "none"]


def test_time_cap_stops_a_noisy_probe():
    clock, calls = FakeClock(), []
    # ratios 1, 3, 1, 3, ...: never a tight CI; pairs take 2, 4, 2, 4, ... fake seconds: 20 s after the 7th
    run_none, run_tech = blocks(clock, [1.0] * 100, [1.0, 3.0] * 50, calls)
    found = paired_timing.interleave(run_none, run_tech, clock=clock, min_pairs=8, target=0.05, max_seconds=20.0)
    assert found["n_pairs"] == 7 and not found["converged"]
    assert clock.now == 20.0


def test_cap_still_gives_two_pairs():
    clock, calls = FakeClock(), []
    run_none, run_tech = blocks(clock, [10.0] * 10, [10.0] * 10, calls)
    found = paired_timing.interleave(run_none, run_tech, clock=clock, min_pairs=8, target=0.05, max_seconds=1.0)
    assert found["n_pairs"] == 2 and math.isfinite(found["high"])


def test_stops_at_the_first_pair_whose_ci_is_tight():
    rng = np.random.default_rng(0)
    noise = np.exp(rng.normal(0, 0.2, 200))
    tech = list(1.5 * noise)
    clock, calls = FakeClock(), []
    run_none, run_tech = blocks(clock, [1.0] * 200, tech, calls)
    found = paired_timing.interleave(run_none, run_tech, clock=clock, min_pairs=8, target=0.05, max_seconds=1e9)
    logs = np.log(tech)
    for n in range(8, 200):  # the reference: scipy's t interval on the first n log ratios
        low, high = np.exp(stats.ttest_1samp(logs[:n], 0).confidence_interval(0.95))
        if (high - low) / 2 / stats.gmean(tech[:n]) <= 0.05:
            break
    assert found["converged"] and found["n_pairs"] == n > 8


def test_ratio_ci_matches_scipy():
    rng = np.random.default_rng(1)
    none = rng.uniform(0.05, 0.07, 12)
    tech = none * np.exp(rng.normal(np.log(1.3), 0.08, 12))
    ratio, low, high = paired_timing.ratio_ci(list(none), list(tech))
    ci = stats.ttest_1samp(np.log(tech / none), 0).confidence_interval(0.95)
    assert ratio == pytest.approx(stats.gmean(tech / none))
    assert (low, high) == pytest.approx(tuple(np.exp([ci.low, ci.high])))
    assert paired_timing.relative_half_width(ratio, low, high) == pytest.approx((high - low) / 2 / ratio)


def mlp_setup(seeds):
    cfg = compose_config("task=mlp", "preset=smoke").task
    data = get_task("mlp").load_data(cfg, CPU, seeds)
    return cfg, data.train.head(cfg.batch_size), torch.full((len(seeds),), cfg.lr)


def test_mlp_flops_match_a_hand_count():
    cfg, part, lr = mlp_setup([0, 1])
    S, B = 2, cfg.batch_size
    hidden = [(cfg.in_dim, cfg.width)] + [(cfg.width, cfg.width)] * (cfg.depth - 1)
    # forward and weight gradient of every hidden layer, input gradient of all but the first: 2 FLOPs per multiply-add.
    # The 1-output layer is a multiply-and-sum on CPU, which the counter does not see.
    hand = 2 * S * B * (2 * sum(i * o for i, o in hidden) + sum(i * o for i, o in hidden[1:]))
    flops, ops = cost.count_step(make_trainer(cfg, load_technique("none"), [0, 1], CPU), part, lr)
    assert flops == hand and ops > 0
    flops_dropout, ops_dropout = cost.count_step(make_trainer(cfg, load_technique("dropout"), [0, 1], CPU), part, lr)
    assert flops_dropout == flops and ops_dropout > ops  # masks are elementwise work: same FLOPs, more ops
    autograd = make_trainer(cfg, load_technique("none"), [0, 1], CPU, autograd=True)
    assert cost.count_step(autograd, part, lr)[0] == hand  # autograd's backward does the same GEMMs


def test_cnn_flops_are_counted():
    cfg = compose_config("task=cifar", "preset=smoke").task
    g = torch.Generator().manual_seed(0)
    part = Split(torch.randint(0, 256, (cfg.batch_size, 3, 32, 32), dtype=torch.uint8, generator=g),
                 torch.randint(0, 10, (cfg.batch_size,), generator=g))
    lr = torch.full((1,), cfg.lr)
    flops = cost.count_step(make_trainer(cfg, load_technique("none"), [0], CPU), part, lr)[0]
    w, B = cfg.width, cfg.batch_size
    conv1 = 2 * B * 32 * 32 * w * 3 * 9  # forward of the first conv alone: the total is ~3x the forward
    assert flops > 3 * conv1
    assert cost.count_step(make_trainer(cfg, load_technique("dropout"), [0], CPU), part, lr)[0] == flops


def test_grid_techniques_none_first_and_inapplicable_skipped():
    names = cost.grid_techniques()
    assert names[0] == "none" and len(names) == len(set(names))
    assert {"l2", "early_stopping", "all", "mixup", "cutout", "ema"} <= set(names)
    jobs, skipped = cost.plan(cost.parse_args(["--tasks", "mlp", "--techniques", "dropout,cutout"]))
    (task, _, seeds, techniques), = jobs
    assert [t.name for t in techniques] == ["none", "dropout"] and len(seeds) == 10  # the MLP stacks its 10
    assert "cutout" in skipped["mlp"]


def test_tiny_probe_writes_the_csv(tmp_path, capsys):
    cost.main(["--tasks", "mlp", "--techniques", "none,dropout", "--preset", "smoke", "--out", str(tmp_path),
               "--max-seconds", "2", "--block-ms", "30", "--threads", "1"])
    with open(tmp_path / "cost.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == cost.COLUMNS
    assert cost.COLUMNS[:12] == ["task", "technique", "step_time_ratio", "ci_low", "ci_high", "flop_ratio",
                                 "epoch_time_ratio", "n_pairs", "converged", "none_step_ms", "tech_step_ms",
                                 "seeds_stacked"]
    none, dropout = rows
    assert (none["task"], none["technique"], dropout["technique"]) == ("mlp", "none", "dropout")
    ratio, low, high = (float(none[k]) for k in ("step_time_ratio", "ci_low", "ci_high"))
    assert 0.75 < ratio < 1.33 and low < 1.1 and high > 0.9  # the control: the same work reads ~1 (a noisy machine)
    assert float(none["flop_ratio"]) == 1.0 and float(dropout["flop_ratio"]) == 1.0
    assert int(none["n_pairs"]) >= 2 and none["seeds_stacked"] == "1"
    meta = json.loads((tmp_path / "cost.json").read_text())
    assert meta["complete"] and meta["environment"]["torch"] == torch.__version__
    assert capsys.readouterr().out.count("mlp/") == 2  # a progress line per technique
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("argv", [["--tasks", "mlpp"], ["--techniques", "none,dropuot"], ["--preset", "huge"],
                                  ["--max-seconds", "0"], ["--device", "tpu"]])
def test_bad_input_fails_at_start_with_one_line(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cost.main([*argv, "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("regbench-cost: error: ") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_missing_cifar_fails_at_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REGBENCH_CIFAR", str(tmp_path / "nowhere.tar.gz"))
    with pytest.raises(SystemExit) as e:
        cost.main(["--tasks", "mlp,cifar", "--techniques", "none", "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "CIFAR-10 not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
