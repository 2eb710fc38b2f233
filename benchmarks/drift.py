"""Machine drift in `make perf`: a fixed workload timed around every benchmark, and the baseline check that divides it out.

The dev machine is a shared VM whose speed drifts by tens of percent between sessions, so a benchmark's median
alone, compared with a baseline saved on another day, fails on the machine rather than the code (the fifth
baseline's own check read the unchanged end-to-end cell +42%, and a later one read the unchanged width-64 CNN
+37%). conftest.py times `calibration_seconds()` (fixed torch work that no regbench code touches) just before
and just after each benchmark and stores it in the benchmark's extra_info; the check compares each benchmark's
median relative to that calibration:

    python benchmarks/drift.py RUN.json BASELINE_DIR [--tolerance 0.25]

fails (exit 1) when a benchmark's median / calibration is more than `tolerance` above the same ratio in the
newest baseline of BASELINE_DIR for this Python (pytest-benchmark's machine-id folder). A baseline saved before
calibration existed is compared raw, and said so. The calibration is CPU work, what every benchmark here runs on
a CPU-only machine; it does not cover process start-up and imports (part of the end-to-end benchmark), and a
correction beyond 1.5x either way is flagged as large: the verdict then leans on how uniform the drift was.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import re
import statistics
import sys
import time
from pathlib import Path

CALIBRATION_REPEATS = 7  # each component's median of 7 timed calls (after one untimed call); ~0.1 s in all
LARGE_DRIFT = 1.5  # a machine ratio beyond this (or below its inverse) is flagged
clock = time.perf_counter  # the calibration's clock (tests put a fake one in its place)


def calibration_seconds() -> dict[str, float]:
    """Seconds of three fixed pieces of CPU work, one per kind of speed the benchmarks depend on: a 512x512 fp32
    matmul (compute), copying 32 MB into another 32 MB (memory bandwidth: twice the dev VM's 32 MB L3) and 100
    in-place adds on 64 numbers (per-op overhead)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(512, 512, generator=gen)
    src, dst = torch.ones(8 * 2**20), torch.empty(8 * 2**20)
    small = torch.zeros(64)

    def small_ops():
        for _ in range(100):
            small.add_(1.0)

    work = {"matmul": lambda: a @ a, "memory": lambda: dst.copy_(src), "small_ops": small_ops}
    seconds = {}
    for name, fn in work.items():
        times = []
        for i in range(CALIBRATION_REPEATS + 1):
            t = clock()
            fn()
            if i:  # the first call is a warm-up
                times.append(clock() - t)
        seconds[name] = statistics.median(times)
    return seconds


def machine_ratio(now: dict[str, float] | None, base: dict[str, float] | None) -> float | None:
    """How much slower the machine ran now than at the baseline: the geometric mean of the components' ratios
    (None when the two share no valid component, e.g. a baseline saved before calibration existed)."""
    keys = [k for k in sorted(set(now or {}) & set(base or {})) if now[k] > 0 and base[k] > 0]
    if not keys:
        return None
    return math.exp(statistics.fmean(math.log(now[k] / base[k]) for k in keys))


def machine_id() -> str:
    """pytest-benchmark's name for this machine's folder of saved runs (its utils.get_machine_id)."""
    return "-".join([platform.system(), platform.python_implementation(),
                     ".".join(platform.python_version_tuple()[:2]), platform.architecture()[0]])


def latest_baseline(folder: Path) -> Path:
    """The newest saved run in folder/<machine id> (pytest-benchmark numbers them 0001_, 0002_, ...)."""
    runs = [p for p in (folder / machine_id()).glob("*.json") if re.match(r"\d{4}_", p.name)]
    if not runs:
        raise FileNotFoundError(f"no saved baseline in {folder / machine_id()}: run make perf-save first")
    return max(runs, key=lambda p: int(p.name[:4]))


def compare(run: dict, baseline: dict, tolerance: float) -> tuple[list[str], list[str]]:
    """One line per benchmark of the run, and the names of those slower than the baseline by more than tolerance
    after dividing out the machine's drift (raw, where the baseline has no calibration)."""
    base = {b["fullname"]: b for b in baseline["benchmarks"]}
    seen = {b["fullname"] for b in run["benchmarks"]}
    missing = [b["name"] for b in baseline["benchmarks"] if b["fullname"] not in seen]
    lines = [f"missing from this run ({len(missing)}): {', '.join(missing)}"] if missing else []
    failed = []
    for b in run["benchmarks"]:
        old = base.get(b["fullname"])
        if old is None:
            lines.append(f"{b['name']:<45} new (not in the baseline)")
            continue
        raw = b["stats"]["median"] / old["stats"]["median"]
        machine = machine_ratio(b["extra_info"].get("calibration_s"), old["extra_info"].get("calibration_s"))
        ratio = raw / machine if machine else raw
        verdict = "SLOWER" if ratio > 1 + tolerance else "ok"
        if machine and not 1 / LARGE_DRIFT <= machine <= LARGE_DRIFT:
            verdict += " (large drift)"
        drift = f"machine {machine:.2f}x" if machine else "no calibration in baseline: raw"
        lines.append(f"{b['name']:<45} raw {raw:5.2f}x  {drift:<32} -> {ratio:5.2f}x  {verdict}")
        if verdict.startswith("SLOWER"):
            failed.append(b["name"])
    return lines, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="this run's JSON (pytest --benchmark-json)")
    parser.add_argument("baseline_dir", type=Path, help="the folder of saved baselines for this CPU")
    parser.add_argument("--tolerance", type=float, default=0.25, help="allowed slowdown (default 0.25: 25%%)")
    args = parser.parse_args(argv)
    try:
        path = latest_baseline(args.baseline_dir)
        run, baseline = json.loads(args.run.read_text()), json.loads(path.read_text())
    except (OSError, ValueError) as e:
        print(f"drift: error: {e}", file=sys.stderr)
        return 2
    lines, failed = compare(run, baseline, args.tolerance)
    print(f"== against {path} (median / machine calibration; fails above {1 + args.tolerance:.2f}x)")
    print("\n".join(lines))
    if failed:
        print(f"{len(failed)} benchmark(s) slower than the baseline beyond the machine's drift: {', '.join(failed)}")
        return 1
    print(f"all {len(run['benchmarks'])} benchmark(s) within {args.tolerance:.0%} of the baseline (the machine's "
          "drift divided out where both runs have its calibration)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
