"""Cost probe: each technique's training time per step and FLOPs per step against `none`, timed interleaved.

For every task and technique of the article and extended grids (`regbench-cost`, `make cost`):
build `none`'s trainer and the technique's (quick preset, seeds stacked as `make bench` stacks
them), warm both up, then time blocks of training passes over the same whole batches in turn,
none/tech, tech/none, ... in one process, so the machine's drift hits both sides of a pair
alike. A block counts its fastest pass; each pair gives a ratio tech / none; the estimate is their
geometric mean with a 95% t CI on the log ratios, and pairs go on until the CI's relative half-width
is <= --target (after >= --min-pairs pairs) or --max-seconds pass. `none` is probed against a second
`none` trainer: a control whose ratio should read 1. FLOPs per step: torch.utils.flop_counter.
Writes <out>/cost.csv (one row per task and technique) and <out>/cost.json (environment, settings).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from bench.config import CONF_DIR, ConfigError, TechniqueConfig, compose_config, load_technique, technique_names
from bench.data import Split
from bench.hooks import EpochState
from bench.paired_timing import interleave, relative_half_width
from bench.regularizers import inapplicable
from bench.tasks import get_task, task_names
from bench.results import write_atomic
from bench.train import eval_batches, evaluate, make_trainer, sync, train_epoch

GRIDS = ("article", "extended")  # the techniques probed: those of these grids' files, in their order
# A timed pass: the whole batches in the first 128 training samples, at least one: the MLP's 4 batches of 25 (its whole
# training set, ~1-3 ms with 10 seeds), one CIFAR batch of 128 (~25 ms). A block counts its fastest pass: every pass
# does the same work (same shapes and ops), so the fastest is the one the machine interrupted least. On the 2-core VM
# at load 7-8 (another sweep, benchmarks and tests running), the MLP's none-vs-none control after 31 pairs of 0.1 s
# blocks: +-6.5% by the fastest pass, +-7% by the lower quartile or the block's total time, +-12% by the median pass;
# CIFAR's 3.4-3.9% by all four. With 2 threads there (oversubscribed), CIFAR's control was +-31% after 15 pairs, 1
# thread +-3.9% after 54: on a busy machine use --threads 1.
PASS_SAMPLES = 128
EXTRA_MIN_SECONDS = 0.2  # the per-epoch extras (validation pass, end_epoch hooks): repeated until they add up to this
COLUMNS = ["task", "technique", "step_time_ratio", "ci_low", "ci_high", "flop_ratio", "epoch_time_ratio",
           "n_pairs", "converged", "none_step_ms", "tech_step_ms", "seeds_stacked",
           "ci_half_width", "op_ratio", "tech_mflop_per_step", "steps_per_pass", "passes_per_block", "steps_per_epoch",
           "uses_validation", "epoch_extra_ms", "probe_seconds"]


# --------------------------------------------------------------------------- what is timed and counted


def pass_data(train: Split, batch_size: int) -> Split:
    """The whole batches in the first PASS_SAMPLES training samples, at least one (a pass's data)."""
    n_batches = max(1, min(PASS_SAMPLES, len(train)) // batch_size)
    return train.head(n_batches * batch_size)


def timed_block(tr, part: Split, lr: torch.Tensor, passes: int, clock=time.perf_counter):
    """A block: `passes` training passes over `part` (each seed in its own order), each timed; returns the fastest."""
    def run() -> float:
        times = []
        for _ in range(passes):
            t0 = clock()
            train_epoch(tr, part, lr)
            sync(tr.device)
            times.append(clock() - t0)
        return min(times)
    return run


def repeat(run, seconds: float) -> list[float]:
    """The times run() returns, over repeats whose times add up to `seconds` (at least 3)."""
    times = []
    while len(times) < 3 or sum(times) < seconds:
        times.append(run())
    return times


class OpCount(TorchDispatchMode):
    """Counts the aten ops a piece of code dispatches: the MLP's steps are bound by per-op overhead, not FLOPs."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def count_step(tr, part: Split, lr: torch.Tensor) -> tuple[float, float]:
    """FLOPs and aten ops per training step, from one pass over `part`. torch.utils.flop_counter counts matmuls and
    convolutions only (the MLP's hand-written bmm/baddbmm included; its 1-output layer is a multiply-and-sum, ~1% of
    the net's FLOPs, which it does not see); elementwise work (dropout masks, batch norm, Adam) counts 0 FLOPs."""
    steps = len(part) // tr.cfg.batch_size
    with FlopCounterMode(display=False) as flops, OpCount() as ops:
        train_epoch(tr, part, lr)
    return flops.get_total_flops() / steps, ops.n / steps


def epoch_extra_seconds(tr, data, clock=time.perf_counter) -> float:
    """Seconds per epoch a technique adds outside its steps: the validation pass (full validation set, under the
    weights it evaluates) when it reads the validation loss (early stopping, LR on plateau), plus its end_epoch
    hooks. Early stopping's hook does the same masked copy of the weights whether or not the loss improved."""
    hooks = tr.hooked("end_epoch")
    uses_validation = any(r.uses_validation for r in tr.regs)
    if not hooks and not uses_validation:
        return 0.0
    S, dev = tr.n_seeds, tr.device
    val = list(eval_batches(data.val, tr.task, S))  # prepared once a run, as train_seeds does
    state = EpochState(tr.model, 0, torch.zeros(S, device=dev), torch.full((S,), tr.cfg.lr, device=dev),
                       torch.ones(S, dtype=torch.bool, device=dev), torch.full((S,), -1, device=dev))

    def one_epoch() -> float:
        t0 = clock()
        state.epoch += 1
        if uses_validation:
            with tr.measuring():
                state.val_loss = evaluate(tr.model, val, tr.task)[0]
        for reg in hooks:
            reg.end_epoch(state)
        sync(dev)
        return clock() - t0

    return min(repeat(one_epoch, EXTRA_MIN_SECONDS))  # fixed work: the fastest repeat, as for the passes


# --------------------------------------------------------------------------- one technique


def probe(task_cfg, technique: TechniqueConfig, seeds: list[int], data, device: torch.device, args) -> dict:
    """One row of cost.csv: the technique against a `none` trainer on the same seeds and batches."""
    started = time.perf_counter()
    none_tr = make_trainer(task_cfg, TechniqueConfig(), seeds, device)
    tech_tr = make_trainer(task_cfg, technique, seeds, device)  # technique none: a second none, the control
    part = pass_data(data.train, task_cfg.batch_size)
    lr = torch.full((len(seeds),), task_cfg.lr, device=device)
    steps_per_pass = len(part) // task_cfg.batch_size
    none_flops, none_ops = count_step(none_tr, part, lr)  # also the first (untimed) pass of each
    tech_flops, tech_ops = count_step(tech_tr, part, lr)
    # Warm-up (the first passes of a process timed 1.8x slower: the yardstick's note), and the block size: as many
    # passes as last >= --block-ms on none at its fastest (a slow spell of a shared machine would make blocks short):
    # at 100 ms, ~50 MLP passes, 4 CIFAR passes (one batch each).
    pass_s = min(repeat(timed_block(none_tr, part, lr, 1), 0.1))
    repeat(timed_block(tech_tr, part, lr, 1), 0.1)
    passes = max(1, math.ceil(args.block_ms / 1000 / pass_s))
    found = interleave(timed_block(none_tr, part, lr, passes), timed_block(tech_tr, part, lr, passes),
                       min_pairs=args.min_pairs, target=args.target, max_seconds=args.max_seconds)
    none_step = statistics.median(found["none_s"]) / steps_per_pass
    extra = epoch_extra_seconds(tech_tr, data)
    steps_per_epoch = math.ceil(task_cfg.n_train / task_cfg.batch_size)
    ratio, low, high = found["ratio"], found["low"], found["high"]
    return {
        "task": task_cfg.name, "technique": technique.name,
        "step_time_ratio": ratio, "ci_low": low, "ci_high": high,
        "flop_ratio": tech_flops / none_flops if none_flops else math.nan,
        # (steps x tech's step time + extras) / (steps x none's): none's own validation passes are measurement
        "epoch_time_ratio": ratio + extra / (steps_per_epoch * none_step),
        "n_pairs": found["n_pairs"], "converged": found["converged"],
        "none_step_ms": 1000 * none_step,
        "tech_step_ms": 1000 * statistics.median(found["tech_s"]) / steps_per_pass,
        "seeds_stacked": len(seeds),
        "ci_half_width": relative_half_width(ratio, low, high),
        "op_ratio": tech_ops / none_ops,
        "tech_mflop_per_step": tech_flops / 1e6,
        "steps_per_pass": steps_per_pass, "passes_per_block": passes, "steps_per_epoch": steps_per_epoch,
        "uses_validation": any(r.uses_validation for r in tech_tr.regs),
        "epoch_extra_ms": 1000 * extra,
        "probe_seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- the plan and the files


def grid_values(key: str) -> list[str]:
    """The values the article and extended grids sweep `key` over, in their files' order, without repeats."""
    from omegaconf import OmegaConf

    names = []
    for grid in GRIDS:
        listed = OmegaConf.load(Path(CONF_DIR) / "grid" / f"{grid}.yaml").hydra.sweeper.params[key]
        names += [n.strip() for n in str(listed).split(",") if n.strip() not in names]
    return names


def grid_tasks() -> list[str]:
    return grid_values("task")  # mlp, cifar


def grid_techniques() -> list[str]:
    """The grids' techniques, none first."""
    return ["none"] + [t for t in grid_values("technique") if t != "none"]


def parse_names(text: str | None, valid: list[str], what: str) -> list[str] | None:
    """A comma-separated list of names, each checked against the valid ones (ConfigError names the first bad one)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in valid:
            raise ConfigError(f"unknown {what} '{name}'; valid: {', '.join(valid)}")
    return names


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def progress_line(i: int, n: int, row: dict) -> str:
    return (f"[{i}/{n}] {row['task']}/{row['technique']}: step {row['step_time_ratio']:.3f}x "
            f"({row['ci_low']:.3f}-{row['ci_high']:.3f}, +-{100 * row['ci_half_width']:.1f}%) "
            f"in {row['n_pairs']} pairs{'' if row['converged'] else ' (time cap)'}, "
            f"FLOPs {row['flop_ratio']:.3f}x, epoch {row['epoch_time_ratio']:.3f}x, {row['probe_seconds']:.1f} s")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="regbench-cost", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", help="comma-separated tasks (default: every task)")
    p.add_argument("--techniques", help="comma-separated techniques (default: the article and extended grids'); "
                                        "none, the control, is always probed")
    p.add_argument("--preset", default="quick", help="preset whose sizes and seeds are probed (default quick)")
    p.add_argument("--out", default="results", help="folder for cost.csv and cost.json (default results)")
    p.add_argument("--target", type=float, default=0.05, help="stop at this relative 95%% CI half-width (0.05)")
    p.add_argument("--min-pairs", type=int, default=8, help="at least this many none/tech pairs (8)")
    p.add_argument("--max-seconds", type=float, default=20.0, help="time cap on one technique's pairs (20 s)")
    p.add_argument("--block-ms", type=float, default=100.0, help="a timed block lasts at least this long (100 ms)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = every core, as make bench")
    return p.parse_args(argv)


def plan(args) -> tuple[list[tuple], dict]:
    """Per task: its composed config, device, the seeds make bench stacks and the applicable techniques (none first);
    and per task the techniques skipped, with why. Every name and value is checked here, before anything trains."""
    from bench.run import pick_device, use_vectorized

    for key in ("target", "min_pairs", "max_seconds", "block_ms"):
        if getattr(args, key) <= 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be > 0, got {getattr(args, key)}")
    if args.min_pairs < 2:
        raise ConfigError(f"--min-pairs must be >= 2 (a CI needs two pairs), got {args.min_pairs}")
    parse_names(args.preset, sorted(p.stem for p in (Path(CONF_DIR) / "preset").glob("*.yaml")), "preset")
    tasks = parse_names(args.tasks, task_names(), "task") or grid_tasks()
    techniques = parse_names(args.techniques, technique_names(), "technique") or grid_techniques()
    configs = {task: compose_config(f"task={task}", f"preset={args.preset}", f"device={args.device}") for task in tasks}
    techniques = [load_technique(t) for t in ["none"] + [t for t in techniques if t != "none"]]
    jobs, skipped = [], {}
    for task, cfg in configs.items():
        device = pick_device(cfg.device)
        seeds = cfg.preset.seed_list()
        seeds = seeds if use_vectorized(cfg, device) else seeds[:1]  # CIFAR on CPU trains one seed at a time
        jobs.append((cfg.task, device, seeds, [t for t in techniques if not inapplicable(t, cfg.task)]))
        skipped[task] = {t.name: inapplicable(t, cfg.task) for t in techniques if inapplicable(t, cfg.task)}
    return jobs, skipped


def interrupt(signum, frame):
    """SIGTERM stops the probe the way Ctrl-C does: the rows finished so far stay written."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    from bench.cifar_files import DataError
    from bench.results import environment
    from bench.run import keep_freed_memory

    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        jobs, skipped = plan(args)
        data = {task.name: get_task(task.name).load_data(task, device, seeds) for task, device, seeds, _ in jobs}
    except (ConfigError, DataError) as e:
        print(f"regbench-cost: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    keep_freed_memory()
    out = Path(args.out)
    meta = {"environment": environment(jobs[0][1]), "argv": sys.argv[1:] if argv is None else list(argv),
            "preset": args.preset, "target": args.target, "min_pairs": args.min_pairs,
            "max_seconds": args.max_seconds, "block_ms": args.block_ms, "skipped": skipped,
            "data": {name: d.source for name, d in data.items()}, "complete": False}
    rows, started, n = [], time.perf_counter(), sum(len(j[3]) for j in jobs)
    try:
        for task, device, seeds, techniques in jobs:
            for technique in techniques:
                rows.append(probe(task, technique, seeds, data[task.name], device, args))
                print(progress_line(len(rows), n, rows[-1]), flush=True)
                meta["seconds"] = time.perf_counter() - started
                write_atomic(out / "cost.csv", csv_text(rows))  # whole rows only, after each technique
                write_atomic(out / "cost.json", json.dumps(meta, indent=1))
    except KeyboardInterrupt:
        print(f"\nregbench-cost: interrupted after {len(rows)} of {n} technique(s); {out / 'cost.csv'} holds those",
              file=sys.stderr)
        raise SystemExit(130) from None
    meta["complete"] = True
    write_atomic(out / "cost.json", json.dumps(meta, indent=1))
    print(f"wrote {out / 'cost.csv'} ({len(rows)} rows, {meta['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
