"""Benchmarks (`make perf`) are kept out of `make test`: pytest only collects tests/ by default.

They run with the same process set-up as `python -m bench` (malloc keeps freed memory), and each benchmark
stores the machine's calibration timed around it (drift.py), which `make perf` divides out."""
import math

import pytest

from bench.run import keep_freed_memory
from drift import calibration_seconds, machine_ratio

keep_freed_memory()
calibration_seconds()  # once, untimed: a process's first calibration read its matmul 2.5x slow


@pytest.fixture(autouse=True)
def machine_calibration(request):
    """Time the fixed calibration work just before and just after the benchmark: their geometric mean, and how much
    the machine's speed moved during the benchmark (after / before)."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    benchmark = request.getfixturevalue("benchmark")
    before = calibration_seconds()
    yield
    after = calibration_seconds()
    benchmark.extra_info["calibration_s"] = {k: math.sqrt(before[k] * after[k]) for k in before}
    benchmark.extra_info["calibration_after_over_before"] = machine_ratio(after, before)
