"""Which rows each comparison uses: the default cells of a task, the sweep grids, the strength chosen on validation."""
from __future__ import annotations

import pandas as pd

from bench.analysis import metric
from bench.stats import fmt
from bench.techniques import BASELINE, order_techniques

DEFAULT_GRIDS = ("article", "extended")  # grids that run each technique at its default; the first one wins
SEARCH_PREFIX = "search_"  # hyperparameter-search trials (bench/conf/search): never pooled with the fixed grids
FACTORIAL_PREFIX = "factorial"  # the factorial designs (bench/conf/grid/factorial*.yaml): only in bench/effects.py
SWEEP_WORDS = {  # sweep grid -> what its axis is, in words (other sweep grids are named by their swept field)
    "l2": "L2 weight decay (coupled)", "adamw": "AdamW weight decay (decoupled)", "l1": "L1 strength",
    "dropout": "dropout probability", "augment": "augmentation strength",
    "patience": "early-stopping patience (fraction of the budget)", "label_smoothing": "label smoothing eps",
    "mixup": "mixup alpha (lambda ~ Beta(alpha, alpha))", "ema": "weight-EMA decay per step",
}


def ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.status == "ok"]


def fixed_grids(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the fixed grids: without the hyperparameter-search trials."""
    return df[~df.grid.astype(str).str.startswith(SEARCH_PREFIX)]


def main_config(df: pd.DataFrame, task: str, grid: str | None = None) -> str | None:
    """The default grids' task config for a task (the one with most rows when several); without such rows,
    the given grid's."""
    for g in (*DEFAULT_GRIDS, grid):
        rows = df[(df.grid == g) & (df.task == task)]
        if len(rows):
            return rows.task_cfg.value_counts().index[0]
    return None


def default_grid(df: pd.DataFrame, task: str, technique: str) -> str | None:
    """The first default grid holding rows of the technique for the task."""
    grids = set(df[(df.task == task) & (df.technique == technique)].grid)
    return next((g for g in DEFAULT_GRIDS if g in grids), None)


def default_cells(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """ok rows of each technique at its default for a task: from the first default grid that has the technique,
    at the task's main config."""
    cfg = main_config(df, task)
    rows = ok(df[df.grid.isin(DEFAULT_GRIDS) & (df.task == task) & (df.task_cfg == cfg)])
    first = rows.groupby("technique").grid.agg(lambda g: min(g, key=DEFAULT_GRIDS.index))
    return rows[rows.grid == rows.technique.map(first)]


def sweep_grids(df: pd.DataFrame) -> dict[str, list[str]]:
    """Grids that set a technique's swept value away from its default (or, without default rows, to several
    values): grid -> those techniques, in technique order; grids ordered by their first technique."""
    at_default = df[df.grid.isin(DEFAULT_GRIDS)].groupby("technique").value.agg(lambda v: set(v.dropna()))
    found: dict[str, list[str]] = {}
    others = fixed_grids(df[~df.grid.isin(DEFAULT_GRIDS) & df.value.notna()])
    others = others[~others.grid.astype(str).str.startswith(FACTORIAL_PREFIX)]
    for (grid, tech), rows in others.groupby(["grid", "technique"]):
        values, default = set(rows.value), at_default.get(tech, set())
        if (values - default) if default else len(values) > 1:
            found.setdefault(grid, []).append(tech)
    order = order_techniques(df)
    found = {g: sorted(ts, key=order.index) for g, ts in found.items()}
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[1][0]), kv[0])))


def sweeps_of(df: pd.DataFrame, technique: str) -> list[str]:
    return [g for g, techs in sweep_grids(df).items() if technique in techs]


def sweep_words(df: pd.DataFrame, grid: str) -> str:
    if grid in SWEEP_WORDS:
        return SWEEP_WORDS[grid]
    fields = df[df.grid == grid].swept_field.dropna()
    return f"{fields.iloc[0] if len(fields) else grid} ({grid} sweep)"


def sweep_candidates(df: pd.DataFrame, task: str, technique: str) -> pd.DataFrame:
    """The technique's default cell plus its sweep cells at the same task config (all statuses)."""
    grids = sweeps_of(df, technique)
    cfg = main_config(df, task, grids[0] if grids else None)
    keep = (df.task == task) & (df.technique == technique) & (df.task_cfg == cfg)
    return df[keep & df.grid.isin([default_grid(df, task, technique), *grids])]


def best_on_validation(cells: pd.DataFrame, names, task: str) -> str | None:
    """Of the named techniques in cells, the one with the best mean validation metric (None if none has rows)."""
    means = cells[cells.technique.isin(names)].groupby("technique").val_metric.mean()
    if means.empty:
        return None
    return means.idxmax() if metric(task).higher else means.idxmin()


def choose_on_validation(candidates: pd.DataFrame, higher_better: bool, default=None):
    """candidates: columns value, seed, val_metric ONLY. Returns (chosen value, number of candidates): the best
    mean validation metric; on a tie the default stays, else the smallest value."""
    means = candidates.groupby("value", dropna=False)["val_metric"].mean()
    tied = means[means == (means.max() if higher_better else means.min())].index
    return (default if default in tied else tied[0]), len(means)


def tuned_cells(df: pd.DataFrame, task: str) -> tuple[pd.DataFrame, dict]:
    """Per technique, the rows at the strength chosen on validation (mean over seeds), and what was chosen:
    {technique: (chosen value, default value, n candidates, note)}. Candidates with a non-ok seed are skipped."""
    art = default_cells(df, task)
    chosen, picked = {}, []
    for tech in order_techniques(art):
        cands, grids = sweep_candidates(df, task, tech), sweeps_of(df, tech)
        default = art[art.technique == tech].value.iloc[0]
        bad = cands[cands.status != "ok"].value.unique()
        usable = ok(cands[~cands.value.isin(bad)])
        if not usable.grid.isin(grids).any():
            note = "no sweep rows: default" if grids else "no sweep: default"
            chosen[tech] = (default, default, 1, "fixed epoch budget" if tech == BASELINE else note)
            picked.append(art[art.technique == tech])
            continue
        value, n = choose_on_validation(usable[["value", "seed", "val_metric"]], metric(task).higher, default)
        note = f"skipped (non-ok seeds): {', '.join(fmt(v) for v in bad)}" if len(bad) else ""
        chosen[tech] = (value, default, n, note)
        picked.append(usable[usable.value == value])
    return (pd.concat(picked) if picked else art.iloc[:0]), chosen
