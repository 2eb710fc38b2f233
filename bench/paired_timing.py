"""Paired timing: two pieces of work timed in turn (ABBA order) until the 95% CI of their ratio is tight."""
from __future__ import annotations

import math
import statistics
import time

from scipy import stats


def ratio_ci(none_s: list[float], tech_s: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean of the pair ratios tech/none and its t confidence interval (computed on the log ratios)."""
    logs = [math.log(t / n) for n, t in zip(none_s, tech_s)]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), 0.0, math.inf
    half = stats.t.ppf(0.5 + level / 2, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def relative_half_width(ratio: float, low: float, high: float) -> float:
    """Half the CI's width over the estimate: 0.05 means about +-5%."""
    return (high - low) / 2 / ratio


def interleave(run_none, run_tech, clock=time.perf_counter, min_pairs: int = 8, target: float = 0.05,
               max_seconds: float = 20.0) -> dict:
    """Run run_none() and run_tech() (each returns the time it measured) in pairs, in ABBA order (none first in even
    pairs, tech first in odd ones, so a steady drift of the machine's speed cancels too), until there are >= min_pairs
    pairs and the 95% CI of the ratio has a relative half-width <= target, or max_seconds have passed by `clock`
    (after at least 2 pairs)."""
    none_s, tech_s = [], []
    start = clock()
    while True:
        times = {}
        for name, run in ([("none", run_none), ("tech", run_tech)] if len(none_s) % 2 == 0
                          else [("tech", run_tech), ("none", run_none)]):
            times[name] = run()
        none_s.append(times["none"])
        tech_s.append(times["tech"])
        ratio, low, high = ratio_ci(none_s, tech_s)
        converged = len(none_s) >= min_pairs and relative_half_width(ratio, low, high) <= target
        if converged or (len(none_s) >= 2 and clock() - start >= max_seconds):
            return {"ratio": ratio, "low": low, "high": high, "n_pairs": len(none_s), "converged": converged,
                    "none_s": none_s, "tech_s": tech_s}
