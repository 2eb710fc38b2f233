"""Statistics: mean ± CI, paired differences, Holm, the minimal detectable difference and the verdict rule."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

ALPHA, POWER = 0.05, 0.80  # two-sided test level; power behind the minimal detectable difference
EQUIVALENCE = 0.02  # loss metrics: "no practical difference" = the 95% CI lies within ±2% of the reference's mean
PRACTICAL_ACC = 0.01  # "no practical difference" on accuracy: the 95% CI lies within ±1 point
VERDICTS = ("helps", "hurts", "no practical difference", "inconclusive")  # the summary's words
BOOTSTRAP = dict(n_resamples=2000, method="percentile", random_state=0)


def fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


@dataclass
class Stat:
    mean: float
    half: float  # half width of the 95% t CI; nan when n < 2
    n: int

    def __str__(self) -> str:
        if self.n == 0 or not np.isfinite(self.mean):
            return "n/a"
        return f"{fmt(self.mean)} (n=1)" if self.n < 2 else f"{fmt(self.mean)} ± {fmt(self.half, 2)}"


def mean_ci(values) -> Stat:
    v = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna().to_numpy(dtype=float)
    if len(v) < 2:
        return Stat(float(v[0]) if len(v) else float("nan"), float("nan"), len(v))
    return Stat(float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))), len(v))


def min_detectable(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true mean difference a two-sided paired t-test at `alpha` detects with `power` (noncentral t)."""
    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return float("nan")
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def shortfall(d):
        ncp = d * math.sqrt(n)
        return stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp) - power

    hi = 1.0
    while shortfall(hi) < 0 and hi < 1e3:  # bracket the root (nct is NaN far out)
        hi *= 2
    approx = (crit + stats.t.ppf(power, df)) / math.sqrt(n)  # the usual closed-form approximation
    found = shortfall(hi) >= 0 and np.isfinite(shortfall(hi))
    return (optimize.brentq(shortfall, 1e-6, hi) if found else approx) * sd


@dataclass
class Paired:
    """Paired differences a - b over the seeds both have."""
    diffs: np.ndarray
    mean: float = float("nan")
    lo: float = float("nan")  # 95% t CI
    hi: float = float("nan")
    boot_lo: float = float("nan")  # 95% bootstrap percentile CI
    boot_hi: float = float("nan")
    p: float = float("nan")  # paired t-test
    sd: float = float("nan")
    mdd: float = float("nan")

    @property
    def n(self) -> int:
        return len(self.diffs)


def paired(a: pd.Series, b: pd.Series) -> Paired:
    """a and b are indexed by seed."""
    both = pd.concat([a.groupby(level=0).mean(), b.groupby(level=0).mean()], axis=1, keys=["a", "b"]).dropna()
    d = (both.a - both.b).to_numpy(dtype=float)
    out = Paired(d, mean=float(d.mean()) if len(d) else float("nan"))
    if len(d) < 2:
        return out
    out.sd = float(d.std(ddof=1))
    if out.sd <= 1e-12 * max(1.0, abs(out.mean)):
        out.lo = out.hi = out.boot_lo = out.boot_hi = out.mean
        return out
    se, df = out.sd / math.sqrt(len(d)), len(d) - 1
    out.lo, out.hi = out.mean - stats.t.ppf(0.975, df) * se, out.mean + stats.t.ppf(0.975, df) * se
    out.p = float(2 * stats.t.sf(abs(out.mean / se), df))
    boot = stats.bootstrap((d,), np.mean, confidence_level=0.95, **BOOTSTRAP).confidence_interval
    out.boot_lo, out.boot_hi = float(boot.low), float(boot.high)
    out.mdd = min_detectable(out.sd, len(d))
    return out


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (nan stays nan and is not counted in the family)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (len(idx) - rank) * p[i]))
        out[i] = running
    return out


def judge(d: Paired, p_adj: float, margin: float, direction: int = 1) -> tuple[str, str]:
    """Does the difference have the claimed sign (direction +1: positive)? -> (verdict, reason). The same rule as
    practical_verdict: a 95% CI inside ±margin is "not supported (no practical difference)", significant or not;
    then Holm p < ALPHA says supported, or not supported for an effect the other way; else inconclusive."""
    if d.n < 2 or not np.isfinite(d.sd):
        return "inconclusive", f"n={d.n}: no paired test"
    if np.isfinite(margin) and -margin <= d.lo and d.hi <= margin:
        return "not supported", f"no practical difference: 95% CI within ±{fmt(margin)}"
    if not np.isfinite(d.p):
        return "inconclusive", "identical differences in every seed: no t-test"
    if p_adj < ALPHA:
        return ("supported", "") if d.mean * direction > 0 else ("not supported", "significant effect the other way")
    if abs(d.mean) < d.mdd:
        return "inconclusive", f"underpowered: minimal detectable difference {fmt(d.mdd)} at n={d.n}"
    return "inconclusive", "not significant after Holm"


def with_reason(verdict: str, reason: str) -> str:
    return f"{verdict} ({reason})" if reason else verdict


def practical_margin(higher_better: bool, baseline_mean: float) -> float:
    """The margin of "no practical difference": ±1 accuracy point (PRACTICAL_ACC) for a metric where higher is
    better (accuracy), else ±EQUIVALENCE of the baseline's mean (MSE)."""
    return PRACTICAL_ACC if higher_better else EQUIVALENCE * abs(baseline_mean)


def practical_verdict(mean: float, lo: float, hi: float, p_adj: float, margin: float, higher_better: bool) -> str:
    """One of VERDICTS for an effect (technique - reference) with its 95% CI [lo, hi] and Holm-adjusted p.

    CI inclusion: the whole 95% CI inside ±margin is "no practical difference", significant or not (a
    significant effect smaller than the margin does not matter in practice); otherwise Holm p < ALPHA gives
    "helps" or "hurts" by the metric's direction; anything else is "inconclusive" (the CI is too wide)."""
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(margin)):
        return "inconclusive"
    if -margin <= lo and hi <= margin:
        return "no practical difference"
    if np.isfinite(p_adj) and p_adj < ALPHA:
        return "helps" if (mean > 0) == higher_better else "hurts"
    return "inconclusive"
