"""Each technique vs none, per task, at its default and tuned on validation: paired effect, Holm, measured cost."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.analysis import metric, tasks_of
from bench.measures import epoch_overhead, in_reference_steps, never_acted, not_testable, target, tt_summary, underfits
from bench.selection import default_cells, tuned_cells
from bench.stats import Paired, fmt, holm, mean_ci, paired, practical_margin, practical_verdict
from bench.techniques import BASELINE, order_techniques

COST_WORDS = ((1.10, "Negligible"), (1.50, "Low"), (math.inf, "Medium-High"))  # upper bounds of the cost ratio


def versus_none(df: pd.DataFrame, task: str, tuned: bool = False) -> pd.DataFrame:
    """One line per technique at its default (or at the strength chosen on validation): test metric, paired
    difference to none with CIs, Holm p, verdict, cost, gap, train metric and flags."""
    art = default_cells(df, task)
    none = art[art.technique == BASELINE]
    if art.empty or none.empty:
        return pd.DataFrame()
    cells, chosen = tuned_cells(df, task) if tuned else (art, {})
    goal, m = target(none, task), metric(task)
    margin = practical_margin(m.higher, none.test_metric.mean())
    tt_none = tt_summary(none, goal, task)
    lines = []
    for tech in order_techniques(cells):
        c = cells[cells.technique == tech]
        d, gap_d = (paired(c.set_index("seed")[col], none.set_index("seed")[col]) if tech != BASELINE
                    else Paired(np.array([])) for col in ("test_metric", "gap"))
        acted = never_acted(c, none)
        skip = not_testable(c, none, acted) if tech != BASELINE else ""
        cost = measured_cost(c, none, task, goal, tt_none)
        grid = art[art.technique == tech].grid.iloc[0]
        all_seeds = df[(df.task == task) & (df.grid == grid) & (df.technique == tech)
                       & (df.task_cfg == art.task_cfg.iloc[0])]
        lines.append({
            "technique": tech, "n": len(c), "test": mean_ci(c.test_metric), "d": d, "p": d.p if not skip else np.nan,
            "train": mean_ci(c.train_metric), "gap": mean_ci(c.gap), "gap_d": gap_d, "acc_gap": mean_ci(c.acc_gap),
            "tt": cost["tt"], "cost": cost, "result_s": mean_ci(c.seconds_to_result),
            "result_steps": mean_ci([in_reference_steps(r.seconds_to_result, r) for r in c.itertuples()]),
            "underfits": tech != BASELINE and underfits(c, none, task, d), "never_acted": acted,
            "skip": skip, "not_ok": 0 if tuned else int((all_seeds.status != "ok").sum()),
            "chosen": chosen.get(tech, (None, None, 1, ""))})
    out = pd.DataFrame(lines)
    out["p_holm"] = holm(out.p)
    out["word"] = [verdict_word(r, margin, m.higher) for r in out.itertuples()]
    out["verdict"] = [with_why(r, margin) for r in out.itertuples()]
    out["margin"] = margin
    return out


def verdict_word(r, margin: float, higher: bool) -> str:
    """helps / hurts / no practical difference / inconclusive (bench.stats.practical_verdict); the baseline and
    cells whose regularizer never acted get no word of the four."""
    if r.technique == BASELINE:
        return "baseline"
    if r.skip:
        return "not testable here"
    return practical_verdict(r.d.mean, r.d.lo, r.d.hi, r.p_holm, margin, higher)


def with_why(r, margin: float) -> str:
    """The verdict word with what stands behind it: the margin, or why the CI is too wide to decide."""
    if r.word == "baseline":
        return "baseline (fixed epoch budget)"
    if r.word == "not testable here":
        return f"not testable here ({r.skip})"
    if r.word == "no practical difference":
        return f"no practical difference (95% CI within ±{fmt(margin)})"
    if r.word == "inconclusive":
        if r.d.n < 2:
            return f"inconclusive (n={r.d.n}: no paired test)"
        return f"inconclusive (95% CI wider than ±{fmt(margin)}; detectable at 80% power: {fmt(r.d.mdd)}, n={r.d.n})"
    return r.word


def comparisons_frame(tables: dict) -> pd.DataFrame:
    """Every line of the tables vs none, flat, with all its numbers (techniques.csv beside REPORT.md)."""
    recs = []
    for (task, kind), t in tables.items():
        for r in t.itertuples():
            d, c = r.d, r.cost
            recs.append({
                "task": task, "kind": kind, "technique": r.technique, "chosen": r.chosen[0], "default": r.chosen[1],
                "candidates": r.chosen[2], "n": r.n, "test_mean": r.test.mean, "test_ci_half": r.test.half,
                "delta": d.mean, "ci_low": d.lo, "ci_high": d.hi, "boot_low": d.boot_lo, "boot_high": d.boot_hi,
                "p": r.p, "p_holm": r.p_holm, "mdd": d.mdd, "margin": r.margin, "verdict": r.word,
                "train_mean": r.train.mean, "gap_mean": r.gap.mean, "acc_gap_mean": r.acc_gap.mean,
                "underfits": r.underfits, "tt_reached": c["tt"]["reached"], "tt_epochs": c["tt"]["epochs"].mean,
                "tt_seconds": c["tt"]["seconds"].mean, "seconds_to_result": r.result_s.mean,
                "epoch_ratio": c["epoch_ratio"], "epoch_noise": c["epoch_noise"], "epoch_runs": c["epoch_runs"]})
    return pd.DataFrame(recs)


def tables_vs_none(df: pd.DataFrame) -> dict:
    """{(task, "default" | "tuned"): versus_none table}, computed once for the report."""
    return {(task, kind): versus_none(df, task, kind == "tuned")
            for task in tasks_of(df) for kind in ("default", "tuned")}


def cost_word(ratio: float) -> str:
    return "n/a" if not np.isfinite(ratio) else next(w for bound, w in COST_WORDS if ratio < bound)


def measured_cost(cell: pd.DataFrame, none: pd.DataFrame, task: str, goal: dict, tt_none: dict) -> dict:
    """Cost ratio vs none. Measure: time to none's best validation metric (mean over the seeds that reached it)
    when at least half the seeds and one of none's reached it; else per-epoch step time. Both in units of the
    reference step timed before each run, so the machine's drift between cells cancels."""
    tt = tt_summary(cell, goal, task)
    ratio_e, runs, noise_e = epoch_overhead(cell, none)
    if tt["reached"] and tt["reached"] >= tt["n"] / 2 and tt_none["reached"]:
        rel = [s.half / s.mean for s in (tt["steps"], tt_none["steps"]) if s.n >= 2 and s.mean > 0]
        ratio = tt["steps"].mean / tt_none["steps"].mean
        noise = math.sqrt(sum(r * r for r in rel)) if rel else float("nan")
        measure = "time to none's best val"
    else:
        ratio, noise = ratio_e, noise_e
        measure = "per-epoch step time (target not reached)" if tt["n"] else "per-epoch step time"
    return {"ratio": ratio, "noise": noise, "measure": measure, "word": cost_word(ratio), "tt": tt,
            "epoch_ratio": ratio_e, "epoch_runs": runs, "epoch_noise": noise_e}


def band_verdict(lo: float, hi: float, claimed: str) -> str:
    """Supported when [lo, hi] (a cost ratio's CI) stays inside the claimed band, not supported when it stays
    outside, inconclusive when a band edge lies inside it. Negligible and Low are read as upper bounds ("at most
    Low"), Medium-High as a lower bound."""
    bounds = [0.0] + [b for b, _ in COST_WORDS]
    k = [w for _, w in COST_WORDS].index(claimed)
    lo_band, hi_band = (bounds[k] if claimed == COST_WORDS[-1][1] else 0.0), bounds[k + 1]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive (no confidence interval)"
    if lo_band <= lo and hi < hi_band:
        return "supported"
    if hi < lo_band or lo >= hi_band:
        return "not supported"
    return "inconclusive (CI spans a band edge)"
