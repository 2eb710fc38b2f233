"""Tables behind the claims that are not a comparison with none: early stopping, L1 zeros, BN by depth, train size."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import tasks_of
from bench.selection import FACTORIAL_PREFIX, DEFAULT_GRIDS, default_cells, ok, sweeps_of
from bench.stats import EQUIVALENCE, holm, judge, mean_ci, paired, practical_margin, with_reason
from bench.techniques import BASELINE

L1_PIECE = "l1"  # the sparsity claim is about the techniques whose one piece is this


def grid_cells(df: pd.DataFrame, grid: str) -> pd.DataFrame:
    """ok rows of a grid, of the first task (in task order) that has some: a grid's claim is about one task."""
    rows = ok(df[df.grid == grid])
    task = next((t for t in tasks_of(df) if (rows.task == t).any()), None)
    return rows[rows.task == task]


def es_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell with early stopping or an LR plateau: how often it acted and the epochs it saved."""
    cells = ok(df[(df.has_es | df.has_plateau) & ~df.grid.astype(str).str.startswith(FACTORIAL_PREFIX)])
    lines = []
    for (task, grid, tech, settings), c in cells.groupby(["task", "grid", "technique", "settings"], sort=False):
        saved = (c.max_epochs - c.epochs_run) / c.max_epochs
        lines.append({"task": task, "grid": grid, "technique": tech, "value": c.value.iloc[0], "n": len(c),
                      "has_es": c.has_es.all(), "stopped": c.stopped_early.mean() if c.has_es.all() else np.nan,
                      "saved": mean_ci(saved), "budget": c.max_epochs.mean(), "epochs_run": mean_ci(c.epochs_run),
                      "lr_reduced": (c.lr_reductions > 0).mean() if c.has_plateau.all() else np.nan,
                      "reductions": c.lr_reductions.mean() if c.has_plateau.all() else np.nan})
    return pd.DataFrame(lines)


def sparsity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Exact-zero and |w| < 1e-3 fractions of every L1-only technique over the default grids and its sweeps."""
    l1 = df[df.pieces == L1_PIECE]
    grids = {*DEFAULT_GRIDS, *(g for t in l1.technique.unique() for g in sweeps_of(df, t))}
    cells = ok(l1[l1.grid.isin(grids)])
    lines = [{"task": task, "technique": tech, "value": value, "n": len(c), "zero": mean_ci(c.frac_weights_zero),
              "small": mean_ci(c["frac_weights_below_1e-3"]), "test": mean_ci(c.test_metric)}
             for (task, tech, value), c in cells.groupby(["task", "technique", "value"], dropna=False)]
    return pd.DataFrame(lines)


def holm_verdicts(lines: list[dict]) -> pd.DataFrame:
    """One line per comparison (its paired difference `d` and equivalence `margin`), plus Holm-adjusted p across
    the lines and the verdict each gets."""
    out = pd.DataFrame(lines)
    if len(out):
        out["p_holm"] = holm([d.p for d in out.d])
        out["verdict"] = [with_reason(*judge(r.d, r.p_holm, r.margin)) for r in out.itertuples()]
    return out


def depth_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per depth: trainability (final train loss, none − batchnorm, paired by seed; Holm across depths) and the
    test MSE beside it."""
    cells = grid_cells(df, "depth")
    lines = []
    for depth, c in cells.groupby("depth"):
        none, bn = c[c.technique == BASELINE], c[c.technique == "batchnorm"]
        if none.empty or bn.empty:
            continue
        lines.append({"depth": depth, "none_train": mean_ci(none.train_loss), "bn_train": mean_ci(bn.train_loss),
                      "d": paired(none.set_index("seed").train_loss, bn.set_index("seed").train_loss),
                      "margin": EQUIVALENCE * abs(none.train_loss.mean()),
                      "none_test": mean_ci(none.test_loss), "bn_test": mean_ci(bn.test_loss)})
    return holm_verdicts(lines)


def train_size_cells(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The equal-steps train_size grid plus the default none/augment CIFAR cells when their steps match."""
    ts = grid_cells(df, "train_size")
    if ts.empty:
        return ts, "no train_size rows"
    art = default_cells(df, ts.task.iloc[0])
    art = art[art.technique.isin([BASELINE, "augment"])]
    art = art[art.task_base == ts.task_base.iloc[0]]
    steps = ts.steps.dropna().unique()
    art_steps = (art.epochs * np.ceil(art.n_train / art.batch_size)).unique()
    if len(art) and len(steps) == 1 and len(art_steps) == 1 and art_steps[0] == steps[0]:
        return pd.concat([ts, art]), f"equal optimizer steps ({int(steps[0])}) at every size"
    return ts, "article cells left out (their optimizer steps differ from the train_size grid's)"


def train_size_table(df: pd.DataFrame) -> pd.DataFrame:
    cells, _ = train_size_cells(df)
    lines = []
    for n_train, c in cells.groupby("n_train"):
        none, aug = c[c.technique == BASELINE], c[c.technique == "augment"]
        if len(none) and len(aug):
            lines.append({"n_train": n_train, "epochs": none.epochs.iloc[0], "none": mean_ci(none.test_metric),
                          "augment": mean_ci(aug.test_metric), "margin": practical_margin(True, none.test_metric.mean()),
                          "d": paired(aug.set_index("seed").test_metric, none.set_index("seed").test_metric)})
    return holm_verdicts(lines)
