"""`regbench-report compare A B`: per cell, the test metric B − A with a Welch CI and the time ratio B / A."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy import stats

from bench.analysis import read_rows_or_fail, to_frame
from bench.provenance import PROVENANCE, labelled
from bench.selection import ok
from bench.stats import fmt, mean_ci
from bench.tables import ci, md_table

KEY = ["task", "technique", "grid", "swept"]


def welch(a, b) -> tuple[float, float, float, float]:
    """Mean of b - a, its 95% Welch CI and p (two independent runs)."""
    a, b = (pd.to_numeric(pd.Series(x, dtype=object), errors="coerce").dropna().to_numpy(float) for x in (a, b))
    diff = b.mean() - a.mean() if len(a) and len(b) else float("nan")
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):
        return diff, float("nan"), float("nan"), float("nan")
    res = stats.ttest_ind(b, a, equal_var=False)
    interval = res.confidence_interval(0.95)
    return float(diff), float(interval.low), float(interval.high), float(res.pvalue)


def provenance_warnings(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    lines = []
    for col, _ in PROVENANCE:
        va, vb = sorted(labelled(a, col).unique()), sorted(labelled(b, col).unique())
        if len(va) > 1 or len(vb) > 1 or va != vb:
            lines.append(f"warning: {col}s differ or are mixed: A {va}, B {vb}")
    return lines


def add_swept(f: pd.DataFrame) -> None:
    """What a cell sweeps, as text (swept value, depth or n_train) and as a number to sort by."""
    f["number"] = f.value.fillna(f.depth.where(f.grid == "depth")).fillna(f.n_train.where(f.grid == "train_size"))
    f["swept"] = [fmt(v) if pd.notna(v) else f"depth={d}" if g == "depth" else f"n_train={n}"
                  if g == "train_size" else "-" for v, g, d, n in zip(f.value, f.grid, f.depth, f.n_train)]


def compare_line(k: tuple, ca: pd.DataFrame, cb: pd.DataFrame) -> list:
    if ca.empty or cb.empty:
        return [*k, len(ca), len(cb), mean_ci(ca.test_metric), mean_ci(cb.test_metric), "", "", "",
                "only in A" if cb.empty else "only in B"]
    diff, lo, hi, p = welch(ca.test_metric, cb.test_metric)
    ratio = cb.seconds_to_result.mean() / ca.seconds_to_result.mean()
    note = "task config differs" if set(ca.task_cfg) != set(cb.task_cfg) else ""
    return [*k, len(ca), len(cb), mean_ci(ca.test_metric), mean_ci(cb.test_metric), f"{fmt(diff)} {ci(lo, hi)}",
            fmt(p, 2), f"{fmt(ratio)}×", note]


def compare(a_dir: str | Path, b_dir: str | Path) -> str:
    """Per cell (task, technique, grid, swept values; and preset when a side mixes presets): test metric B − A
    with a Welch 95% CI, and the seconds-to-result ratio B / A."""
    rows_a, rows_b = read_rows_or_fail(a_dir), read_rows_or_fail(b_dir)
    both = to_frame(rows_a + rows_b)  # one frame: a value swept on either side is read the same way on both
    add_swept(both)
    a, b = both.iloc[:len(rows_a)], both.iloc[len(rows_a):]
    key = KEY + (["preset"] if a.preset.nunique() > 1 or b.preset.nunique() > 1 else [])
    ga, gb = dict(list(ok(a).groupby(key))), dict(list(ok(b).groupby(key)))
    number = dict(zip(map(tuple, both[key].values), both.number.fillna(-1)))
    rows = [compare_line(k, ga.get(k, a.iloc[:0]), gb.get(k, b.iloc[:0]))
            for k in sorted(set(ga) | set(gb), key=lambda k: (*k[:3], number[k], *k[4:]))]
    table = md_table([*key, "n A", "n B", "test A", "test B", "B − A [95% Welch CI]", "p", "s to result B/A",
                      "note"], rows)
    return "\n".join(provenance_warnings(a, b) + [table])
