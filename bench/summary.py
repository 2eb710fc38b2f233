"""The verdict summary at the top of REPORT.md: one line per claim, and one per technique with its effect on each task."""
from __future__ import annotations

import pandas as pd

from bench.analysis import metric
from bench.claims import Verdict, ci_text
from bench.stats import ALPHA, EQUIVALENCE, POWER, PRACTICAL_ACC, fmt
from bench.tables import md_table
from bench.techniques import BASELINE

POWER_GOAL = 0.015  # accuracy: the difference each CIFAR comparison should be able to detect (1.5 points)

LEGEND = (f"**helps / hurts**: Holm p < {ALPHA} against `none`, paired by seed · **no practical difference**: the 95% "
          f"CI lies inside ±{PRACTICAL_ACC * 100:.0f} accuracy point or ±{EQUIVALENCE:.0%} of none's test MSE (CI "
          f"inclusion) · **inconclusive**: the CI is wider than that. n = paired seeds; MDD = the difference a paired "
          f"t-test finds with {POWER:.0%} power at that n. Techniques at the strength chosen on validation (shown "
          "where it is not the article's default). Method, article defaults and every number: below.")


def technique_cell(r) -> str:
    """One technique on one task: Δ vs none [95% CI], n, MDD → verdict word (and the strength chosen on validation
    when it is not the default)."""
    if r is None:
        return "—"
    if r.word == "not testable here":
        return f"not testable here ({r.skip})"
    d = r.d
    value, default, candidates, _ = r.chosen
    at = f" at {fmt(value)}" if candidates > 1 and value != default else ""
    return f"{fmt(d.mean)} {ci_text(d.lo, d.hi)} n={d.n}, MDD {fmt(d.mdd)} → **{r.word}**{at}"


def techniques_table(tables: dict, tasks: list[str]) -> str:
    tuned = {t: tables[t, "tuned"].set_index("technique", drop=False) for t in tasks}
    names = list(dict.fromkeys(n for t in tasks for n in tuned[t].technique if n != BASELINE))
    header = ["technique"] + [f"{t}: Δ {metric(t).words} vs none [95% CI]" for t in tasks]
    rows = [[f"`{n}`"] + [technique_cell(tuned[t].loc[n] if n in tuned[t].index else None) for t in tasks]
            for n in names]
    return md_table(header, rows)


def claims_table(verdicts: list[Verdict]) -> str:
    return md_table(["claim", "verdict", "effect [95% CI], n"],
                    [[v.claim, f"**{v.verdict}**", v.short or v.evidence] for v in verdicts])


def power_line(tables: dict, tasks: list[str]) -> str:
    """How many techniques of each task could have shown an effect of the practical margin's size (accuracy:
    POWER_GOAL points; MSE: the margin, EQUIVALENCE of none's mean): their MDD at that n is at most that."""
    parts = []
    for task in tasks:
        for kind in ("default", "tuned"):
            t = tables[task, kind]
            t = t[t.technique != BASELINE]
            mdd = pd.Series([r.d.mdd for r in t.itertuples()], dtype=float).dropna()
            n = sorted({r.d.n for r in t.itertuples() if r.d.n})
            goal = POWER_GOAL if metric(task).higher else float(t.margin.iloc[0]) if len(t) else float("nan")
            if len(mdd):
                parts.append(f"{task} ({kind}, n={'/'.join(map(str, n))}): MDD ≤ {fmt(goal)} for "
                             f"{int((mdd <= goal).sum())} of {len(mdd)} techniques (median {fmt(mdd.median())})")
    return "Power: " + "; ".join(parts) + "." if parts else ""


def summary_section(tables: dict, verdicts: list[Verdict], tasks: list[str]) -> list[str]:
    """'Verdicts at a glance': the legend, the claims, each technique on each task with rows, and the power."""
    tasks = [t for t in tasks if (t, "tuned") in tables and not tables[t, "tuned"].empty]
    lines = ["## Verdicts at a glance", LEGEND, "", claims_table(verdicts), ""]
    if not tasks:
        return lines + ["_No article-grid rows._", ""]
    return lines + [techniques_table(tables, tasks), "", power_line(tables, tasks), ""]
