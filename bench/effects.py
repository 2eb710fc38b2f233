"""Interactions: main effects and two-factor interactions of the factorial grids, fitted by OLS (statsmodels).

Per task, the factorial grid's ok rows (bench/conf/grid/factorial*.yaml) code each factor -1 (piece off) / +1
(on) and fit `response ~ (l2 + dropout + batchnorm + augment + early_stopping)**2 + C(seed)`: seeds are paired
across cells, so each seed is a block. A term's effect is 2 x its coefficient: for a factor, the change from
switching it on, averaged over the other factors; for a pair a:b, half the difference between a's effect with b on
and with b off (the pair together departs from the sum of its two single effects by twice that). Responses: the
task's test metric and its generalization gap; p-values are Holm-adjusted over the 15 terms of a task and response.
"""
from __future__ import annotations

from itertools import combinations, product
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from bench.analysis import ACCURACY, metric, tasks_of
from bench.selection import FACTORIAL_PREFIX, default_cells, ok, tuned_cells
from bench.stats import VERDICTS, fmt, holm, practical_margin, practical_verdict

FACTORS = ("l2", "dropout", "batchnorm", "augment", "early_stopping")  # bench.config's piece order
PAIRS = tuple(f"{a}:{b}" for a, b in combinations(FACTORS, 2))
TERMS = FACTORS + PAIRS
FORMULA = f"y ~ ({' + '.join(FACTORS)})**2 + C(seed)"
KNOBS = {"l2": ("weight_decay",), "dropout": ("p", "p_conv"), "batchnorm": ("momentum",), "augment": ("strength",),
         "early_stopping": ("patience_frac",)}  # the fields a level is shown by
COLUMNS = ["task", "response", "term", "estimate", "ci_low", "ci_high", "p", "p_holm", "verdict", "n_cells", "n_seeds"]
ADDITIVITY = {"helps": "super-additive", "hurts": "sub-additive", "no practical difference": "additive",
              "inconclusive": "inconclusive"}  # an interaction's verdict, said of how the pair stacks


class DesignError(ValueError):
    """Factorial rows that do not make a complete full or half-fraction design."""


def factorial_rows(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """ok rows of the task's factorial grids."""
    return ok(df[(df.task == task) & df.grid.astype(str).str.startswith(FACTORIAL_PREFIX)])


def gap_column(task: str) -> str:
    """The generalization gap: train - test accuracy (classification) or test - train loss."""
    return "acc_gap" if metric(task) is ACCURACY else "gap"


def coded(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per row: each factor -1 (off) / +1 (on), read from the row's switched-on pieces, beside seed,
    technique and the test metric and gap."""
    pieces = rows.pieces.fillna("").str.split("+")
    out = pd.DataFrame({f: pieces.map(lambda p, f=f: 1 if f in p else -1) for f in FACTORS}, index=rows.index)
    task = rows.task.iloc[0]
    return out.assign(seed=rows.seed, technique=rows.technique, test=rows.test_metric, gap=rows[gap_column(task)])


def cell_name(levels) -> str:
    return "+".join(f for f, x in zip(FACTORS, levels) if x > 0) or "none"


def design(data: pd.DataFrame, task: str) -> str:
    """'full' or 'half' (I = ± the product of all factors); DesignError naming the missing cells otherwise."""
    cells = set(map(tuple, data[list(FACTORS)].drop_duplicates().to_numpy()))
    full = set(product((-1, 1), repeat=len(FACTORS)))
    if cells == full:
        return "full"
    signs = {int(np.prod(c)) for c in cells}
    expected = {c for c in full if np.prod(c) in signs} if len(signs) == 1 else full
    if cells == expected:
        return "half"
    missing = sorted(cell_name(c) for c in expected - cells)
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    raise DesignError(f"task {task}: the factorial design is incomplete: {len(cells)} of {len(expected)} cells have "
                      f"ok rows; missing {shown} (run its grid again)")


def fit(data: pd.DataFrame, response: str, task: str):
    """The OLS fit of one response; DesignError when the model matrix is not of full rank or leaves no
    residual degrees of freedom (e.g. a half fraction with one seed)."""
    d = data.rename(columns={response: "y"}).dropna(subset=["y"])
    result = smf.ols(FORMULA, d).fit()
    exog = result.model.exog
    if np.linalg.matrix_rank(exog) < exog.shape[1] or result.df_resid < 1:
        raise DesignError(f"task {task}: the factorial rows do not identify every main effect and two-factor "
                          f"interaction of {response} ({len(d)} rows, {exog.shape[1]} parameters)")
    return result


def baseline(data: pd.DataFrame, result, response: str) -> float:
    """The all-off cell's mean response; in a fraction without it, the model's prediction there (mean over seeds)."""
    off = data[(data[list(FACTORS)] < 0).all(axis=1)]
    if len(off):
        return float(off[response].mean())
    at = pd.DataFrame({**{f: -1 for f in FACTORS}, "seed": sorted(data.seed.unique())})
    return float(result.predict(at).mean())


def response_effects(data: pd.DataFrame, task: str, response: str) -> pd.DataFrame:
    """Every term's effect on one response with its 95% CI, raw and Holm p, and verdict (bench.stats)."""
    result = fit(data, response, task)
    ci = result.conf_int().loc[list(TERMS)]
    p = result.pvalues.loc[list(TERMS)].to_numpy()
    out = pd.DataFrame({"task": task, "response": response, "term": TERMS,
                        "estimate": 2 * result.params.loc[list(TERMS)].to_numpy(),
                        "ci_low": 2 * ci[0].to_numpy(), "ci_high": 2 * ci[1].to_numpy(), "p": p, "p_holm": holm(p),
                        "t": result.tvalues.loc[list(TERMS)].to_numpy()})
    higher = metric(task).higher if response == "test" else False  # a smaller gap is the better one
    margin = practical_margin(metric(task).higher, baseline(data, result, response))
    out["verdict"] = [practical_verdict(r.estimate, r.ci_low, r.ci_high, r.p_holm, margin, higher)
                      for r in out.itertuples()]
    return out


def task_effects(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """The effects on the task's test metric and gap (response named by its row column), or an empty frame
    when the task has no factorial rows; DesignError for an incomplete design."""
    rows = factorial_rows(df, task)
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS + ["t"])
    data = coded(rows)
    kind = design(data, task)
    names = {"test": metric(task).test, "gap": gap_column(task)}
    out = pd.concat([response_effects(data, task, r) for r in names]).assign(
        n_cells=data[list(FACTORS)].drop_duplicates().shape[0], n_seeds=data.seed.nunique(), design=kind)
    out["response"] = out.response.map(names)
    return out


def all_effects(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Effects of every task with a complete design, and {task: why not} for the incomplete ones."""
    frames, problems = [], {}
    for task in tasks_of(df):
        try:
            frames.append(task_effects(df, task))
        except DesignError as e:
            problems[task] = str(e)
    frames = [f for f in frames if len(f)]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)), problems


def write_effects_csv(df: pd.DataFrame, out: str | Path, suffix: str = "", effects: pd.DataFrame | None = None) -> Path:
    """effects<suffix>.csv in the folder out (columns COLUMNS); header only when no task has factorial rows."""
    effects = all_effects(df)[0] if effects is None else effects
    path = Path(out) / f"effects{suffix}.csv"
    effects.reindex(columns=COLUMNS).to_csv(path, index=False)
    return path


# --- the report's section ---


def level_text(rows: pd.DataFrame, factor: str) -> str:
    """How a factor was set when on, from its rows' fields, e.g. 'weight_decay=0.1'."""
    fields = rows[rows.pieces.fillna("").str.split("+").map(lambda p: factor in p)].fields
    seen = {tuple((k, f.get(f"{factor}.{k}")) for k in KNOBS[factor] if f"{factor}.{k}" in f) for f in fields}
    return " / ".join(", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in s) for s in sorted(seen))


def level_source(chosen: tuple | None, factor: str, rows: pd.DataFrame) -> str:
    """Where a factor's level comes from, checked against this report's choice on validation (chosen: the factor's
    entry of selection.tuned_cells, None without article-grid rows)."""
    if chosen is None:
        return "no article-grid rows here to check it against"
    value, default, n = chosen[:3]
    if n < 2:
        return "no sweep: the article default"
    key = f"{factor}.{KNOBS[factor][0]}"
    if {f[key] for f in rows.fields if key in f} != {value}:
        return f"differs from this report's choice on validation, {fmt(value)}"
    return "this report's choice on validation" + (", = the article default" if value == default else "")


def levels_line(df: pd.DataFrame, task: str) -> str:
    """The factors' 'on' levels of a task, and where they come from."""
    rows = factorial_rows(df, task)
    chosen = tuned_cells(df, task)[1] if len(default_cells(df, task)) else {}
    parts = [f"`{f}` {level_text(rows, f)} ({level_source(chosen.get(f), f, rows)})" for f in FACTORS]
    return f"- `{task}` levels (on; off = the piece absent): " + "; ".join(parts) + "."


def design_line(effects: pd.DataFrame, task: str) -> str:
    e = effects[effects.task == task].iloc[0]
    words = ("full 2^5" if e.design == "full" else
             "2^(5-1) half fraction, I = " + "·".join(FACTORS) + " (resolution V: main effects and two-factor "
             "interactions aliased only with four- and three-factor ones)")
    return f"- `{task}` design: {words}; {e.n_cells} cells × {e.n_seeds} seeds (paired across cells)."


def effect_text(r) -> str:
    return f"{r.estimate:+.3g} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]"


def effects_table(effects: pd.DataFrame, task: str) -> list[str]:
    """term | effect on test [CI] | Holm p | verdict | effect on gap [CI] | Holm p | gap verdict"""
    from bench.tables import md_table

    e = effects[effects.task == task]
    test, gap = (e[e.response == r].set_index("term") for r in (metric(task).test, gap_column(task)))
    rows = [[f"`{term}`", effect_text(test.loc[term]), fmt(test.p_holm[term], 2), test.verdict[term],
             effect_text(gap.loc[term]), fmt(gap.p_holm[term], 2), gap.verdict[term]] for term in TERMS]
    header = ["term", f"effect on {metric(task).words} [95% CI]", "Holm p", "verdict",
              f"effect on the gap ({gap_column(task)}) [95% CI]", "Holm p", "gap verdict"]
    return [md_table(header, rows), ""]


def strongest_pairs(effects: pd.DataFrame, task: str, n: int = 3) -> list[str]:
    """The n two-factor interactions on the test metric with the largest |t|, plus dropout:batchnorm."""
    e = effects[(effects.task == task) & (effects.response == metric(task).test) & effects.term.isin(PAIRS)]
    top = list(e.assign(size=e.t.abs()).sort_values("size", ascending=False).term[:n])
    return top + ([] if "dropout:batchnorm" in top else ["dropout:batchnorm"])


def claims_lines(effects: pd.DataFrame, task: str) -> list[str]:
    """'Regularizers stack' and 'dropout and batch norm conflict', judged from the interaction terms."""
    e = effects[(effects.task == task) & (effects.response == metric(task).test)].set_index("term")
    by = {v: [f"`{t}`" for t in PAIRS if e.verdict[t] == v] for v in VERDICTS}
    stack = "; ".join(f"{ADDITIVITY[v]} ({v}): {', '.join(by[v])}" for v in VERDICTS if by[v])
    db = e.loc["dropout:batchnorm"]
    conflict = {"hurts": "supported", "helps": "not supported (they help each other)",
                "no practical difference": "not supported (no practical interaction)"}.get(db.verdict, "inconclusive")
    return [f"- `{task}`, **regularizers stack**, judged per pair from its interaction on the test metric (additive = "
            "no practical difference: the pair stacks; sub-additive = hurts: together worse than the sum of their "
            f"single effects; super-additive = helps: better): {stack}.",
            f"- `{task}`, **dropout and batch norm conflict**: **{conflict}** — `dropout:batchnorm` "
            f"{effect_text(db)}, Holm p {fmt(db.p_holm, 2)}: {db.verdict}.", ""]


def interactions_section(df: pd.DataFrame, out: Path, suffix: str = "", colours: dict | None = None,
                         found: tuple[pd.DataFrame, dict] | None = None) -> list[str]:
    """The report's 'Interactions' section; writes effects<suffix>.csv and interactions_<task><suffix>.png to out.
    found: all_effects(df), when the caller has it already."""
    import matplotlib.pyplot as plt

    from bench.figures import plot_interactions

    effects, problems = found if found is not None else all_effects(df)
    write_effects_csv(df, out, suffix, effects)
    lines = ["## Interactions (factorial design)", "",
             "A two-level factorial over L2, dropout, batch norm, augmentation and early stopping (off = the piece "
             "absent): OLS of each response on the factors coded ±1 with every two-factor interaction and the seed "
             "as a block (`bench/effects.py`, statsmodels). Effect = 2 × coefficient: for a factor, the change from "
             "switching it on, averaged over the others; for a pair a:b, half the difference between a's effect with "
             "b on and with b off. 95% t CIs; p Holm-adjusted over the 15 terms of a task and response; verdicts by "
             "the summary's rule (95% CI within the practical margin = no practical difference, else Holm p < 0.05 "
             "= helps/hurts); a smaller gap 'helps' on the gap. Numbers: `effects.csv`.", ""]
    for task in tasks_of(df):
        if task in problems:
            lines += [f"- `{task}`: no effects: {problems[task]}.", ""]
            continue
        if not (effects.task == task).any():
            lines += [f"- `{task}`: no factorial rows (run `regbench -m +grid=factorial*` for it).", ""]
            continue
        lines += [f"### `{task}`", "", levels_line(df, task), design_line(effects, task), ""]
        lines += effects_table(effects, task) + claims_lines(effects, task)
        fig = plot_interactions(coded(factorial_rows(df, task)), task, strongest_pairs(effects, task), colours or {})
        name = f"interactions_{task}{suffix}.png"
        fig.savefig(Path(out) / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
        lines += [f"![{name}]({name})", ""]
    return lines


def factorial_claims(effects: pd.DataFrame, tasks: list[str]) -> list:
    """The two interaction claims as the summary's Verdicts, every task with factorial rows as a part (claims.combine):
    'regularizers stack' (no pair sub-additive on the test metric: supported; a pair that hurts: not supported) and
    'dropout and batch norm conflict' (the dropout:batchnorm term hurts: supported)."""
    from bench.claims import NOT_TESTED, Verdict, combine

    stack, conflict, stack_short, conflict_short = [], [], [], []
    for task in tasks:
        e = effects[(effects.task == task) & (effects.response == metric(task).test)].set_index("term")
        if e.empty:
            continue
        words = [e.verdict[t] for t in PAIRS]
        sub = [t for t in PAIRS if e.verdict[t] == "hurts"]
        stack.append("not supported" if sub else "supported" if "inconclusive" not in words else "inconclusive")
        stack_short.append(f"{task}: sub-additive {', '.join(sub) or 'none'} of {len(PAIRS)} pairs, "
                           f"n={int(e.n_seeds.iloc[0])} seeds")
        db = e.loc["dropout:batchnorm"]
        conflict.append({"hurts": "supported", "inconclusive": "inconclusive"}.get(db.verdict, "not supported"))
        conflict_short.append(f"{task} dropout:batchnorm {effect_text(db)} → {db.verdict}, n={int(db.n_seeds)} seeds")
    absent = f"{NOT_TESTED} (no factorial rows)"
    measure = "two-factor interactions of the factorial (OLS, Holm over 15 terms)"
    return [Verdict("Regularizers stack (factorial: no pair sub-additive on the test metric)",
                    combine(stack) if stack else absent, measure, "; ".join(stack_short) or "no rows",
                    "; ".join(stack_short) or "no rows"),
            Verdict("Dropout and batch norm conflict (factorial: their interaction hurts)",
                    combine(conflict) if conflict else absent, measure, "; ".join(conflict_short) or "no rows",
                    "; ".join(conflict_short) or "no rows")]
