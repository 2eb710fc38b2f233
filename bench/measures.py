"""Per-cell measures beside the test metric: time to none's best val, per-epoch cost, underfitting, idle pieces."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import metric
from bench.stats import mean_ci
from bench.techniques import BASELINE, only_epoch_end

UNDERFIT_ACC = 0.10  # accuracy tasks: train accuracy more than this below none's
UNDERFIT_FLOOR = 1.5  # loss tasks: train loss above this x the noise floor (and above none's)
STOPS_LEARNING = 0.8  # final train loss >= this x the untrained model's validation loss


def best_val(history: list, task: str) -> float:
    key, higher = metric(task).val, metric(task).higher
    vals = [h.get(key) for h in history if h.get(key) is not None]
    return (max(vals) if higher else min(vals)) if vals else float("nan")


def target(none_rows: pd.DataFrame, task: str) -> dict:
    """none's best validation metric per seed (the same seed: same init and, for the MLP, the same data draw),
    with the mean over its seeds under key None for seeds none does not have."""
    goals = {r.seed: best_val(r.history, task) for r in none_rows.itertuples()}
    goals[None] = float(np.nanmean(list(goals.values()))) if goals else float("nan")
    return goals


def time_to_target(row, goal: float, task: str) -> tuple[int | None, float | None]:
    """(epochs, wall seconds) until the validation metric first reaches goal, or (None, None) for never.
    Seconds = cumulative train_s + per epoch the hook time, plus the validation pass when the technique uses it."""
    key, higher = metric(task).val, metric(task).higher
    extra = (row.hook_seconds_per_epoch or 0) + ((row.val_seconds_per_epoch or 0) if row.uses_validation else 0)
    seconds = 0.0
    for i, h in enumerate(row.history, 1):
        seconds += h.get("train_s") or 0.0
        v = h.get(key)
        if v is not None and np.isfinite(goal) and (v >= goal if higher else v <= goal):
            return i, seconds + i * extra
    return None, None


def in_reference_steps(seconds: float, row) -> float:
    """A seed's share of a run's seconds in units of the reference step timed before that run (the plain
    network's step on the same machine at that moment: see train.reference_step_seconds)."""
    return seconds / (row.reference_step_seconds / (row.n_seeds_stacked or 1))


def tt_summary(cell: pd.DataFrame, goal: float, task: str) -> dict:
    """Per cell: fraction of seeds reaching the goal, epochs, seconds and the same time in reference steps
    (mean ± CI over the seeds that reached it)."""
    hits = [(r, *time_to_target(r, goal.get(r.seed, goal[None]) if isinstance(goal, dict) else goal, task))
            for r in cell.itertuples()]
    reached = [(r, e, s) for r, e, s in hits if e is not None]
    return {"reached": len(reached), "n": len(hits), "epochs": mean_ci([e for _, e, _ in reached]),
            "seconds": mean_ci([s for _, _, s in reached]),
            "steps": mean_ci([in_reference_steps(s, r) for r, _, s in reached])}


def underfits(cell: pd.DataFrame, none: pd.DataFrame, task: str, d=None) -> bool:
    """Fits the task less than none: its train metric is worse than none's by the threshold (accuracy tasks: more
    than UNDERFIT_ACC below; loss tasks: above UNDERFIT_FLOOR x the noise floor and above none's) AND its test metric
    is worse than none's (d: the paired test-metric difference technique - none; else the means). A technique that
    fits its training set less but tests better is not flagged: that is regularization working."""
    if cell.empty or none.empty:
        return False
    higher = metric(task).higher
    delta = d.mean if d is not None and d.n else cell.test_metric.mean() - none.test_metric.mean()
    worse_test = delta < 0 if higher else delta > 0
    if higher:
        return worse_test and cell.train_acc.mean() < none.train_acc.mean() - UNDERFIT_ACC
    floor = cell.noise_floor.dropna().mean()
    limit = UNDERFIT_FLOOR * floor if np.isfinite(floor) else 0.5 * cell.initial_val_loss.mean()
    return worse_test and cell.train_loss.mean() > max(limit, none.train_loss.mean())


def never_acted(cell: pd.DataFrame, none: pd.DataFrame) -> list[str]:
    """Why a cell's regularizer cannot have done anything here (empty: it acted, as far as rows tell)."""
    why = []
    if len(cell) and cell.has_es.all() and not cell.stopped_early.any():
        why.append("early stopping never stopped")
    if len(cell) and cell.has_plateau.all() and (cell.lr_reductions.fillna(0) == 0).all():
        why.append("LR never lowered")
    cols = ["train_loss", "val_loss", "test_loss"]
    both = cell.set_index("seed")[cols].join(none.set_index("seed")[cols], rsuffix="_none", how="inner")
    if len(both) and (cell.technique != BASELINE).all() and all(
            np.allclose(both[c], both[c + "_none"], rtol=1e-9, atol=1e-12) for c in cols):
        why.append("rows identical to none")
    return why


def not_testable(cell: pd.DataFrame, none: pd.DataFrame, why: list[str] | None = None) -> str:
    """Non-empty when the cell's comparison with none says nothing: identical rows, or its only pieces never acted."""
    why = never_acted(cell, none) if why is None else why
    if "rows identical to none" in why or (why and only_epoch_end(cell)):
        return "; ".join(why)
    return ""


def epoch_overhead(cell: pd.DataFrame, none: pd.DataFrame) -> tuple[float, int, float]:
    """(per-epoch step time / none's, number of timed runs of the cell, relative noise) with ONE measurement per
    cell_run_id (stacked seeds share one), each run's time in units of the reference step timed before it.
    Noise, per cell, in quadrature: with 2+ runs the relative 95% CI of that measure across runs (drift the
    yardstick did not catch shows there); with one run its epochs' and its yardstick's IQR / median."""
    def runs(c):
        r = c.drop_duplicates("cell_run_id")
        return r.epoch_seconds_median / r.reference_step_seconds, r

    def noise(t, r):
        t = t.dropna()
        if len(t) >= 2:
            return mean_ci(t).half / t.mean()
        return float(np.hypot((r.epoch_seconds_iqr / r.epoch_seconds_median).median(), r.reference_step_iqr.median()))

    (t, rt), (b, rb) = runs(cell), runs(none)
    if t.dropna().empty or b.dropna().empty:
        return float("nan"), 0, float("nan")
    return float(t.mean() / b.mean()), int(t.notna().sum()), float(np.hypot(noise(t, rt), noise(b, rb)))
