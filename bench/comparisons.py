"""Each technique vs none, per task, at its default and tuned on validation: paired effect, Holm, measured cost."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.analysis import metric, tasks_of
from bench.measures import epoch_overhead, in_reference_steps, never_acted, not_testable, target, tt_summary, underfits
from bench.selection import default_cells, tuned_cells
from bench.stats import EQUIVALENCE, Paired, holm, judge, mean_ci, paired, with_reason
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
    margin = EQUIVALENCE * abs(none.test_metric.mean())
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
            "underfits": tech != BASELINE and underfits(c, none, task), "never_acted": acted,
            "skip": skip, "not_ok": 0 if tuned else int((all_seeds.status != "ok").sum()),
            "chosen": chosen.get(tech, (None, None, 1, ""))})
    out = pd.DataFrame(lines)
    out["p_holm"] = holm(out.p)
    out["verdict"] = [effect_words(r, margin, m.higher) for r in out.itertuples()]
    return out


def effect_words(r, margin: float, higher: bool) -> str:
    if r.technique == BASELINE:
        return "baseline (fixed epoch budget)"
    if r.skip:
        return f"not testable here ({r.skip})"
    verdict, reason = judge(r.d, r.p_holm, margin, 1 if higher else -1)
    if verdict == "supported":
        return "better than none"
    if reason == "significant effect the other way":
        return "worse than none"
    return "equivalent to none" if verdict == "not supported" else with_reason("inconclusive", reason)


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


def cost_verdict(cost: dict, claimed: str) -> str:
    """Supported when the ratio ± its noise stays inside the claimed band, not supported when it stays outside,
    inconclusive when a band edge lies within the noise (or there is no noise estimate). Negligible and Low are
    read as upper bounds ("at most Low"), Medium-High as a lower bound."""
    bounds = [0.0] + [b for b, _ in COST_WORDS]
    k = [w for _, w in COST_WORDS].index(claimed)
    lo_band, hi_band = (bounds[k] if claimed == COST_WORDS[-1][1] else 0.0), bounds[k + 1]
    r, noise = cost["ratio"], cost["noise"]
    if not np.isfinite(r):
        return "not testable here (no timing)"
    if not np.isfinite(noise):
        return "inconclusive (one measurement: no noise estimate)"
    lo, hi = r * (1 - noise), r * (1 + noise)
    if lo_band <= lo and hi < hi_band:
        return "supported"
    if hi < lo_band or lo >= hi_band:
        return "not supported"
    return "inconclusive (within timing noise)"
