"""Report: tables, claim verdicts and seaborn figures rebuilt from stored result rows only (never retrains).

    python -m bench.report [--results results/runs] [--out results]

Writes REPORT.md and PNG figures into --out. Every number comes from the rows.
"""
from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from bench.results import load_rows  # noqa: E402

TASKS = ("mlp", "cifar")
SINGLES = ("l2", "adamw", "l1", "dropout", "batchnorm", "augment", "early_stopping", "lr_plateau")
COMBOS = ("l2_es", "l2_es_dropout", "dropout_bn", "recommended", "all")
# The article's comparison table: cost word and "best for", per technique.
ARTICLE = {
    "l2": ("Negligible", "most problems; start here"),
    "adamw": ("Negligible", "(decoupled L2, not in the article's table)"),
    "l1": ("Low", "feature selection, sparse models"),
    "dropout": ("Low", "large fully connected layers"),
    "batchnorm": ("Low", "deep networks (10+ layers)"),
    "augment": ("Medium-High", "images, small data sets"),
    "early_stopping": ("Negligible", "every problem"),
    "lr_plateau": ("Negligible", "long training runs"),
}
# Thresholds behind every verdict (stated in the report).
COST_WORDS = ((1.10, "Negligible"), (1.50, "Low"), (math.inf, "Medium-High"))  # upper bounds of the cost ratio
ALPHA = 0.05  # paired t-test level
STOPS_LEARNING = 0.8  # final train loss >= this x the untrained model's loss: the model did not learn
SPARSE = 0.10  # "many weights exactly zero": at least this fraction
EPOCHS_SAVED = 0.10  # early stopping "saves epochs": at least this fraction fewer than the budget
SWEEPS = {  # grid name -> (column swept, label)
    "l2": ("weight_decay", "L2 weight decay"),
    "l1": ("l1_strength", "L1 strength"),
    "dropout": ("dropout_p", "dropout p"),
    "patience": ("patience", "early-stopping patience"),
}
PALETTE = "colorblind"


# --------------------------------------------------------------------------- rows -> long-form frame


def _get(d: dict | None, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """One line per (cell, seed) with the columns the tables and plots use."""
    records = []
    for r in rows:
        cfg, final = r.get("config", {}), r.get("final") or {}
        t = cfg.get("technique", {})
        task = r.get("task")
        metric = "test_acc" if task == "cifar" else "test_loss"
        records.append({
            "task": task, "technique": r.get("technique"), "grid": r.get("grid", "adhoc"),
            "preset": r.get("preset"), "seed": r.get("seed"), "status": r.get("status"),
            "device": _get(r, "env", "device"), "torch": _get(r, "env", "torch"), "commit": _get(r, "env", "git_commit"),
            "depth": _get(cfg, "task", "depth"), "n_train": _get(cfg, "task", "n_train"),
            "max_epochs": _get(cfg, "task", "epochs"),
            "weight_decay": _get(t, "l2", "weight_decay"), "l1_strength": _get(t, "l1", "strength"),
            "dropout_p": _get(t, "dropout", "p"), "patience": _get(t, "early_stopping", "patience"),
            "metric_name": metric, "test_metric": final.get(metric), "train_metric": final.get(metric.replace("test", "train")),
            "test_loss": final.get("test_loss"), "train_loss": final.get("train_loss"), "gap": final.get("gap"),
            "initial_loss": r.get("initial_val_loss"),
            "epochs_run": r.get("epochs_run"),
            "diverged_epoch": r.get("diverged_epoch"),
            "cost_s_per_epoch": (r.get("train_seconds_per_epoch") or 0) + (r.get("hook_seconds_per_epoch") or 0)
            if r.get("train_seconds_per_epoch") is not None else None,
            "wall_s": r.get("wall_seconds"), "samples_per_s": r.get("samples_per_s"),
            "frac_zero": r.get("frac_weights_zero"), "frac_small": r.get("frac_weights_below_1e-3"),
            "noise_floor": r.get("noise_floor"),
            "settings": settings_text(t), "history": r.get("history") or [],
        })
    return pd.DataFrame.from_records(records)


def settings_text(technique: dict) -> str:
    parts = []
    for piece, values in technique.items():
        if piece != "name" and isinstance(values, dict):
            parts.append(piece + "(" + ", ".join(f"{k}={v}" for k, v in values.items()) + ")")
    return "; ".join(parts) or "-"


# --------------------------------------------------------------------------- statistics


@dataclass
class Stat:
    mean: float
    half_width: float  # of the 95% CI (t distribution); nan when n < 2
    n: int

    def __str__(self) -> str:
        if self.n == 0 or not np.isfinite(self.mean):
            return "n/a"
        if self.n < 2:
            return f"{fmt(self.mean)} (n=1)"
        half = 0.0 if self.half_width <= 1e-9 * abs(self.mean) else self.half_width
        return f"{fmt(self.mean)} ± {fmt(half)}"


def fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def mean_ci(values) -> Stat:
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
    n = len(v)
    if n == 0:
        return Stat(float("nan"), float("nan"), 0)
    if n == 1:
        return Stat(float(v[0]), float("nan"), 1)
    half = stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return Stat(float(v.mean()), float(half), n)


def paired_vs(df: pd.DataFrame, a: str, b: str, column: str) -> tuple[float, float, int]:
    """Mean of (a - b) over the seeds both have, and the paired t-test p-value (nan if n < 2)."""
    pa = df[df.technique == a].set_index("seed")[column]
    pb = df[df.technique == b].set_index("seed")[column]
    both = pd.concat([pa, pb], axis=1, keys=["a", "b"]).dropna()
    n = len(both)
    if n == 0:
        return float("nan"), float("nan"), 0
    diff = (both.a - both.b).to_numpy(dtype=float)
    if n < 2 or np.allclose(diff, diff[0]):
        return float(diff.mean()), float("nan"), n
    return float(diff.mean()), float(stats.ttest_rel(both.a, both.b).pvalue), n


def better(metric_name: str, delta: float) -> bool:
    """Is a positive difference in this metric an improvement?"""
    return delta > 0 if metric_name.endswith("acc") else delta < 0


# --------------------------------------------------------------------------- tables


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.status == "ok"]


def article_cells(df: pd.DataFrame, task: str) -> pd.DataFrame:
    return ok_rows(df[(df.grid == "article") & (df.task == task)])


def cost_ratio(cells: pd.DataFrame, technique: str) -> float:
    base = cells[cells.technique == "none"].cost_s_per_epoch.mean()
    return cells[cells.technique == technique].cost_s_per_epoch.mean() / base if base else float("nan")


def timing_noise(cells: pd.DataFrame) -> float:
    """Relative spread (interquartile range / median) of the baseline's per-epoch step times."""
    times = [h.get("train_s") for hist in cells[cells.technique == "none"].history for h in hist]
    times = np.array([t for t in times if t is not None], dtype=float)
    if len(times) < 4:
        return float("nan")
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return (q3 - q1) / med


def cost_word(ratio: float) -> str:
    if not np.isfinite(ratio):
        return "n/a"
    return next(word for bound, word in COST_WORDS if ratio < bound)


def technique_table(df: pd.DataFrame, task: str) -> str:
    cells = article_cells(df, task)
    if cells.empty:
        return f"_No rows for task `{task}` in the article grid._"
    metric = cells.metric_name.iloc[0]
    header = ["technique", "n", f"test {metric[5:]}", f"train {metric[5:]}", "gap (test−train loss)", "epochs run",
              "s/epoch", "wall s", "samples/s", "cost vs none", f"Δ test {metric[5:]} vs none (paired)", "p (paired t)"]
    rows = []
    for tech in order_techniques(cells.technique.unique()):
        c = cells[cells.technique == tech]
        delta, p, n = paired_vs(cells, tech, "none", "test_metric") if tech != "none" else (float("nan"),) * 2 + (0,)
        rows.append([f"`{tech}`", len(c), mean_ci(c.test_metric), mean_ci(c.train_metric), mean_ci(c.gap),
                     mean_ci(c.epochs_run), mean_ci(c.cost_s_per_epoch), mean_ci(c.wall_s), mean_ci(c.samples_per_s),
                     fmt(cost_ratio(cells, tech)) + "×", fmt(delta) if n else "", fmt(p) if n else ""])
    return md_table(header, rows)


def order_techniques(names) -> list[str]:
    known = ("none",) + SINGLES + COMBOS
    return [t for t in known if t in set(names)] + sorted(set(names) - set(known))


def gap_reduction(cells: pd.DataFrame, technique: str) -> float:
    """Fraction of the baseline's generalization gap removed (1 = no gap left; negative = larger gap)."""
    base = cells[cells.technique == "none"].gap.mean()
    return 1 - cells[cells.technique == technique].gap.mean() / base if base else float("nan")


def article_table(df: pd.DataFrame) -> str:
    header = ["Technique", "Computational cost: article", "measured (cost ratio vs none)", "Gap reduction vs none",
              "Best for: article", "measured (task where the gap shrank most)", "Settings used"]
    rows = []
    for tech in SINGLES:
        word, best_for = ARTICLE[tech]
        ratios, reductions = [], {}
        settings = ""
        for task in TASKS:
            cells = article_cells(df, task)
            if tech not in set(cells.technique) or "none" not in set(cells.technique):
                continue
            r = cost_ratio(cells, tech)
            ratios.append(f"{task}: {fmt(r)}× ({cost_word(r)})")
            reductions[task] = gap_reduction(cells, tech)
            settings = cells[cells.technique == tech].settings.iloc[0]
        if not ratios:
            continue
        best = max(reductions, key=lambda k: reductions[k])
        red = ", ".join(f"{k}: {v:+.0%}" for k, v in reductions.items())
        rows.append([f"`{tech}`", word, "; ".join(ratios), red, best_for, f"{best} ({reductions[best]:+.0%})", settings])
    return md_table(header, rows) if rows else "_No article-grid rows._"


def stops_learning(cells: pd.DataFrame) -> float:
    """Fraction of seeds whose final train loss stayed >= STOPS_LEARNING x the untrained model's loss."""
    return (cells.train_loss >= STOPS_LEARNING * cells.initial_loss).mean()


def sweep_table(df: pd.DataFrame, grid: str) -> str:
    column, label = SWEEPS[grid]
    cells = ok_rows(df[df.grid == grid])
    if cells.empty:
        return f"_No rows for the `{grid}` sweep._"
    rows = []
    for (task, value), c in cells.groupby(["task", column]):
        rows.append([task, f"{value:g}", len(c), mean_ci(c.test_metric), mean_ci(c.train_loss), mean_ci(c.gap),
                     mean_ci(c.epochs_run), "**yes**" if stops_learning(c) > 0.5 else "no"])
    header = ["task", label, "n", "test metric", "train loss", "gap", "epochs run", "stops learning"]
    return md_table(header, rows)


# --------------------------------------------------------------------------- claims


@dataclass
class Verdict:
    claim: str
    verdict: str  # supported / not supported / inconclusive
    evidence: str


def _verdict(yes: bool | None) -> str:
    return "inconclusive" if yes is None else ("supported" if yes else "not supported")


def _agree(results: list[bool | None]) -> bool | None:
    """True/False when every task agrees on it; None when tasks disagree, one is undecided, or there are none."""
    return results[0] if results and None not in results and len(set(results)) == 1 else None


def claim_cost(df: pd.DataFrame, techniques: tuple[str, ...], word: str) -> Verdict:
    parts, matches = [], []
    for task in TASKS:
        cells = article_cells(df, task)
        for tech in techniques:
            if {tech, "none"} <= set(cells.technique):
                r = cost_ratio(cells, tech)
                parts.append(f"{task}/{tech}: {fmt(r)}× ({cost_word(r)})")
                matches.append(cost_word(r) == word)
    return Verdict(f"{' and '.join(techniques)}: {word.lower()} cost", _verdict(_agree(matches)), "; ".join(parts) or "no rows")


def claim_l1_sparsity(df: pd.DataFrame) -> Verdict:
    parts, yes = [], []
    for task in TASKS:
        cells = article_cells(df, task)
        l1, none = cells[cells.technique == "l1"], cells[cells.technique == "none"]
        if l1.empty:
            continue
        parts.append(f"{task}: exactly 0: {fmt(100 * l1.frac_zero.mean())}% (none: {fmt(100 * none.frac_zero.mean())}%), "
                     f"|w|<1e-3: {fmt(100 * l1.frac_small.mean())}% (none: {fmt(100 * none.frac_small.mean())}%)")
        yes.append(l1.frac_zero.mean() >= SPARSE)
    return Verdict("L1 drives many weights to exactly zero", _verdict(_agree(yes)),
                   "; ".join(parts) or "no rows")


def claim_combination(df: pd.DataFrame) -> Verdict:
    parts, results = [], []
    for task in TASKS:
        cells = article_cells(df, task)
        if cells.empty:
            continue
        metric = cells.metric_name.iloc[0]
        means = cells.groupby("technique").test_metric.mean()
        singles = means[[t for t in SINGLES if t in means]]
        combos = means[[t for t in ("l2_es", "l2_es_dropout", "recommended", "all") if t in means]]
        if singles.empty or combos.empty:
            continue
        pick = (lambda s: s.idxmax()) if metric.endswith("acc") else (lambda s: s.idxmin())
        best_single, best_combo = pick(singles), pick(combos)
        delta, p, n = paired_vs(cells, best_combo, best_single, "test_metric")
        won = better(metric, delta)
        results.append(None if not (p < ALPHA) else won)
        parts.append(f"{task}: best combination `{best_combo}` vs best single `{best_single}`: "
                     f"Δ {metric} = {fmt(delta)} (paired t p={fmt(p)}, n={n})")
    return Verdict("Combining techniques beats any single one", _verdict(_agree(results)), "; ".join(parts) or "no rows")


def claim_over_regularizing(df: pd.DataFrame) -> Verdict:
    parts, any_stop = [], []
    for grid, (column, label) in SWEEPS.items():
        if grid == "patience":
            continue
        cells = ok_rows(df[df.grid == grid])
        for task, c in cells.groupby("task"):
            strongest, weakest = c[column].max(), c[column].min()
            s, w = stops_learning(c[c[column] == strongest]), stops_learning(c[c[column] == weakest])
            parts.append(f"{task} {label}={strongest}: {fmt(100 * s)}% of seeds stop learning "
                         f"(at {weakest}: {fmt(100 * w)}%)")
            any_stop.append(s > 0.5 and w <= 0.5)
    return Verdict("Over-regularizing stops learning", _verdict(any(any_stop) if any_stop else None),
                   "; ".join(parts) or "no sweep rows")


def claim_bn_depth(df: pd.DataFrame) -> Verdict:
    cells = ok_rows(df[(df.grid == "depth")])
    if cells.empty or set(cells.technique) < {"none", "batchnorm"}:
        return Verdict("Batch norm helps most for deep networks (10+ layers)", "inconclusive", "no depth-sweep rows")
    gains = {}
    for depth, c in cells.groupby("depth"):
        gains[depth] = c[c.technique == "none"].test_loss.mean() - c[c.technique == "batchnorm"].test_loss.mean()
    shallow = [g for d, g in gains.items() if d < 10]
    deep = [g for d, g in gains.items() if d >= 10]
    yes = None if not shallow or not deep else (np.mean(deep) > 0 and np.mean(deep) > np.mean(shallow))
    text = ", ".join(f"depth {d}: {fmt(g)}" for d, g in sorted(gains.items()))
    return Verdict("Batch norm helps most for deep networks (10+ layers)", _verdict(yes),
                   f"test-MSE reduction by BN (none − batchnorm) per MLP depth: {text}")


def claim_dropout_bn(df: pd.DataFrame) -> Verdict:
    parts, results = [], []
    for task in TASKS:
        cells = article_cells(df, task)
        if not {"dropout", "batchnorm", "dropout_bn"} <= set(cells.technique):
            continue
        metric = cells.metric_name.iloc[0]
        means = cells.groupby("technique").test_metric.mean()
        best_alone = "dropout" if better(metric, means["dropout"] - means["batchnorm"]) else "batchnorm"
        delta, p, n = paired_vs(cells, "dropout_bn", best_alone, "test_metric")
        worse = not better(metric, delta)
        results.append(worse if p < ALPHA else None)
        parts.append(f"{task}: dropout_bn vs {best_alone} alone: Δ {metric} = {fmt(delta)} (p={fmt(p)}, n={n})")
    return Verdict("Dropout and batch norm in the same layer conflict", _verdict(_agree(results)), "; ".join(parts) or "no rows")


def train_size_cells(df: pd.DataFrame) -> pd.DataFrame:
    """The train-size sweep plus the article grid's none/augment CIFAR cells, its largest size (same config)."""
    cells = ok_rows(df[df.grid == "train_size"])
    if cells.empty:
        return cells
    return pd.concat([cells, article_cells(df, "cifar").query("technique in ['none', 'augment']")])


def claim_augment_small_data(df: pd.DataFrame) -> Verdict:
    cells = train_size_cells(df)
    if cells.empty:
        return Verdict("Augmentation matters most below 10,000 examples per class", "inconclusive", "no train-size rows")
    gains = {}
    for n_train, c in cells.groupby("n_train"):
        gains[n_train] = c[c.technique == "augment"].test_metric.mean() - c[c.technique == "none"].test_metric.mean()
    sizes = sorted(gains)
    per_class = ", ".join(f"{n // 10}/class: {gains[n]:+.3f}" for n in sizes)
    yes = None
    if len(sizes) >= 2 and all(np.isfinite(list(gains.values()))):
        yes = gains[sizes[0]] > gains[sizes[-1]] and gains[sizes[0]] > 0
    return Verdict("Augmentation matters most below 10,000 examples per class", _verdict(yes),
                   f"CIFAR test-accuracy gain from augmentation by train size: {per_class} "
                   f"(all sizes here are below 10k/class, so this tests only 'more gain with less data')")


def claim_early_stopping(df: pd.DataFrame) -> Verdict:
    parts, results = [], []
    for task in TASKS:
        cells = article_cells(df, task)
        es = cells[cells.technique == "early_stopping"]
        if es.empty:
            continue
        budget = es.max_epochs.mean()
        saved = 1 - es.epochs_run.mean() / budget
        results.append(saved >= EPOCHS_SAVED)
        parts.append(f"{task}: ran {fmt(es.epochs_run.mean())} of {fmt(budget)} epochs ({saved:.0%} saved)")
    return Verdict("Early stopping saves epochs", _verdict(_agree(results)), "; ".join(parts) or "no rows")


def claim_l2_es_start(df: pd.DataFrame) -> Verdict:
    parts, results = [], []
    for task in TASKS:
        cells = article_cells(df, task)
        if not {"l2_es", "none"} <= set(cells.technique):
            continue
        metric = cells.metric_name.iloc[0]
        delta, p, n = paired_vs(cells, "l2_es", "none", "test_metric")
        results.append(better(metric, delta) if p < ALPHA else None)
        parts.append(f"{task}: Δ {metric} = {fmt(delta)} (p={fmt(p)}, n={n})")
    return Verdict("L2 + early stopping is a good start (beats no regularization)", _verdict(_agree(results)),
                   "; ".join(parts) or "no rows")


def all_claims(df: pd.DataFrame) -> list[Verdict]:
    return [
        claim_cost(df, ("l2", "early_stopping"), "Negligible"),
        claim_cost(df, ("dropout", "batchnorm"), "Low"),
        claim_cost(df, ("augment",), "Medium-High"),
        claim_l1_sparsity(df),
        claim_combination(df),
        claim_over_regularizing(df),
        claim_bn_depth(df),
        claim_dropout_bn(df),
        claim_augment_small_data(df),
        claim_early_stopping(df),
        claim_l2_es_start(df),
    ]


# --------------------------------------------------------------------------- plots


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(7, 4.5))[1]


def plot_gap_vs_cost(df: pd.DataFrame, ax=None):
    """Pareto view: generalization gap against cost ratio, one point per technique and task."""
    ax = _ax(ax)
    points = []
    for task in TASKS:
        cells = article_cells(df, task)
        if cells.empty or "none" not in set(cells.technique):
            continue
        for tech in order_techniques(cells.technique.unique()):
            kind = "baseline" if tech == "none" else "single" if tech in SINGLES else "combination"
            points.append({"task": task, "technique": tech, "kind": kind, "cost ratio": cost_ratio(cells, tech),
                           "gap (relative to none)": 1 - gap_reduction(cells, tech)})
    data = pd.DataFrame(points)
    if data.empty:
        return ax
    sns.scatterplot(data=data, x="cost ratio", y="gap (relative to none)", hue="kind", style="task",
                    palette=PALETTE, s=70, ax=ax)
    for _, p in data.iterrows():
        ax.annotate(p.technique, (p["cost ratio"], p["gap (relative to none)"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.axvline(1, color="grey", lw=0.8, ls="--")
    ax.set_title("Generalization gap vs cost (article grid)")
    ax.legend(fontsize=7, loc="best")
    return ax


def plot_metric_by_technique(df: pd.DataFrame, task: str, ax=None):
    """Test metric per technique, mean with 95% CI bars over seeds."""
    ax = _ax(ax)
    cells = article_cells(df, task)
    if cells.empty:
        return ax
    order = order_techniques(cells.technique.unique())
    sns.pointplot(data=cells, x="test_metric", y="technique", order=order, errorbar=("ci", 95), linestyle="none",
                  color=sns.color_palette(PALETTE)[0], ax=ax)
    ax.set_xlabel(cells.metric_name.iloc[0])
    ax.set_title(f"{task}: test metric per technique (95% CI over seeds)")
    return ax


def learning_curves(df: pd.DataFrame, task: str, techniques=("none", "l2", "dropout", "early_stopping", "recommended")):
    """Long-form per-epoch losses of the article grid: technique, seed, epoch, split, loss."""
    cells = article_cells(df, task)
    records = []
    for _, row in cells[cells.technique.isin(techniques)].iterrows():
        for h in row.history:
            for split in ("train_loss", "val_loss"):
                records.append({"technique": row.technique, "seed": row.seed, "epoch": h["epoch"],
                                "split": split.split("_")[0], "loss": h[split]})
    return pd.DataFrame.from_records(records)


def plot_learning_curves(df: pd.DataFrame, task: str, ax=None):
    """Train vs validation loss per epoch (eval mode), mean over seeds, for a few techniques."""
    ax = _ax(ax)
    data = learning_curves(df, task)
    if data.empty:
        return ax
    sns.lineplot(data=data, x="epoch", y="loss", hue="technique", style="split", errorbar=None,
                 palette=PALETTE, ax=ax)
    if task == "mlp":
        ax.set_yscale("log")
    ax.set_title(f"{task}: learning curves (solid: train, dashed: val)")
    ax.legend(fontsize=7)
    return ax


def plot_sweep(df: pd.DataFrame, grid: str, ax=None):
    """Test metric and train loss against the swept strength; x on a log scale where the values span decades."""
    ax = _ax(ax)
    column, label = SWEEPS[grid]
    cells = ok_rows(df[df.grid == grid])
    if cells.empty:
        return ax
    long = cells.melt(id_vars=[column, "task"], value_vars=["test_loss", "train_loss"], var_name="loss")
    sns.lineplot(data=long, x=column, y="value", hue="loss", style="task", marker="o", errorbar=("ci", 95),
                 palette=PALETTE, ax=ax)
    values = cells[column].dropna()
    if len(values) and values.min() > 0 and values.max() / values.min() >= 100:
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_title(f"Sweep: {label}")
    return ax


def plot_depth(df: pd.DataFrame, ax=None):
    """MLP test loss vs depth, with and without batch norm."""
    ax = _ax(ax)
    cells = ok_rows(df[df.grid == "depth"])
    if cells.empty:
        return ax
    sns.lineplot(data=cells, x="depth", y="test_loss", hue="technique", marker="o", errorbar=("ci", 95),
                 palette=PALETTE, ax=ax)
    ax.axvline(10, color="grey", lw=0.8, ls="--")
    ax.set_title("MLP depth sweep: batch norm vs none")
    return ax


def plot_train_size(df: pd.DataFrame, ax=None):
    """CIFAR test accuracy vs training examples per class, with and without augmentation."""
    ax = _ax(ax)
    cells = train_size_cells(df)
    if cells.empty:
        return ax
    cells = cells.assign(per_class=cells.n_train // 10)
    sns.lineplot(data=cells, x="per_class", y="test_metric", hue="technique", marker="o", errorbar=("ci", 95),
                 palette=PALETTE, ax=ax)
    ax.set_xlabel("training examples per class")
    ax.set_ylabel("test accuracy")
    ax.set_title("CIFAR train-size sweep: augmentation vs none")
    return ax


def plot_combination_heatmap(df: pd.DataFrame, ax=None):
    """Gap reduction vs none for every technique (rows) on every task (columns)."""
    ax = _ax(ax)
    table = {}
    for task in TASKS:
        cells = article_cells(df, task)
        if "none" in set(cells.technique):
            table[task] = {t: gap_reduction(cells, t) for t in order_techniques(cells.technique.unique()) if t != "none"}
    data = pd.DataFrame(table)
    if data.empty:
        return ax
    sns.heatmap(data.loc[order_techniques(data.index)], annot=True, fmt=".0%", cmap="vlag_r", center=0, ax=ax,
                cbar_kws={"label": "gap reduction vs none"})
    ax.set_title("Gap reduction vs none")
    return ax


FIGURES = {  # file name -> (function, extra args)
    "gap_vs_cost.png": (plot_gap_vs_cost, ()),
    "metric_mlp.png": (plot_metric_by_technique, ("mlp",)),
    "metric_cifar.png": (plot_metric_by_technique, ("cifar",)),
    "curves_mlp.png": (plot_learning_curves, ("mlp",)),
    "curves_cifar.png": (plot_learning_curves, ("cifar",)),
    "sweep_l2.png": (plot_sweep, ("l2",)),
    "sweep_l1.png": (plot_sweep, ("l1",)),
    "sweep_dropout.png": (plot_sweep, ("dropout",)),
    "sweep_patience.png": (plot_sweep, ("patience",)),
    "depth.png": (plot_depth, ()),
    "train_size.png": (plot_train_size, ()),
    "combination_heatmap.png": (plot_combination_heatmap, ()),
}


def save_figures(df: pd.DataFrame, out: Path) -> list[str]:
    """Draw every figure that has data; returns the file names written."""
    written = []
    for name, (fn, args) in FIGURES.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        fn(df, *args, ax=ax)
        if ax.has_data():
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            written.append(name)
        plt.close(fig)
    return written


# --------------------------------------------------------------------------- REPORT.md


def missing_parts(df: pd.DataFrame) -> list[str]:
    notes = []
    for task in TASKS:
        if article_cells(df, task).empty:
            notes.append(f"no article-grid rows for task `{task}`")
    for grid in list(SWEEPS) + ["depth", "train_size"]:
        if df.empty or not (df.grid == grid).any():
            notes.append(f"no rows for the `{grid}` grid")
    if not df.empty:
        seeds = df[df.grid == "article"].groupby(["task", "technique"]).seed.nunique()
        if len(seeds) and seeds.min() < 2:
            notes.append("some cells have a single seed: no confidence interval or paired test for them")
        bad = df[df.status != "ok"]
        for _, r in bad.iterrows():
            when = f" at epoch {int(r.diverged_epoch)}" if pd.notna(r.diverged_epoch) else ""
            notes.append(f"`{r.task}/{r.technique}` seed {r.seed} ({r.grid} grid): **{r.status}**{when}")
    return notes


def render(df: pd.DataFrame, figures: list[str]) -> str:
    out = ["# regbench report", ""]
    if df.empty:
        return "\n".join(out + ["No result rows found. Run `make bench` first."]) + "\n"
    devices = ", ".join(sorted(df.device.dropna().unique()))
    out += [f"Built by `make report` from {len(df)} result rows alone (nothing retrained). "
            f"Device: {devices}; torch {', '.join(sorted(df.torch.dropna().unique()))}; "
            f"commit(s) {', '.join(sorted(df.commit.dropna().unique()))}; presets {', '.join(sorted(df.preset.dropna().unique()))}.",
            "", "Cells: mean ± 95% CI over seeds (t distribution, n given). Comparisons with `none` pair the same "
            "seeds and use a paired t-test. MLP metric: test MSE (lower is better; the noise floor is "
            f"{fmt(df[df.task == 'mlp'].noise_floor.dropna().mean()) if (df.task == 'mlp').any() else 'n/a'}). "
            "CIFAR metric: test accuracy. Gap = test loss − train loss, both in eval mode without penalty. "
            "Cost = training time per epoch (steps + epoch-end regularizer work), excluding the measurement passes "
            "every technique gets; cells run minutes apart, so machine drift adds to the noise stated below "
            "(`make perf` measures the same per-technique epoch costs in repeated rounds).", ""]
    notes = missing_parts(df)
    if notes:
        out += ["## What is missing or abnormal", ""] + [f"- {n}" for n in notes] + [""]
    out += ["## The article's table, measured", "", article_table(df), "",
            f"Cost words from the measured ratio: < {COST_WORDS[0][0]}× Negligible, < {COST_WORDS[1][0]}× Low, "
            "else Medium-High. Timing noise (interquartile range / median of the baseline's per-epoch step time): "
            + ", ".join(f"{t}: {timing_noise(article_cells(df, t)):.0%}" for t in TASKS if not article_cells(df, t).empty)
            + "; ratios closer to 1 than that are not distinguishable from 1.", ""]
    out += ["## Claims", "", f"Thresholds: paired t-test at α={ALPHA}; 'stops learning' = final train loss ≥ "
            f"{STOPS_LEARNING}× the untrained model's loss; 'many weights exactly zero' = ≥ {SPARSE:.0%}; "
            f"'saves epochs' = ≥ {EPOCHS_SAVED:.0%} fewer epochs than the budget.", "",
            md_table(["claim", "verdict", "numbers"], [[v.claim, f"**{v.verdict}**", v.evidence] for v in all_claims(df)]), ""]
    for task in TASKS:
        out += [f"## Task `{task}`: every technique (article grid)", "", technique_table(df, task), ""]
    out += ["## Strength sweeps", ""]
    for grid in SWEEPS:
        out += [f"### {SWEEPS[grid][1]}", "", sweep_table(df, grid), ""]
    out += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    return "\n".join(out)


def build_report(results_dir: str | Path, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = load_rows(results_dir)
    for w in caught:
        print(f"warning: {w.message}")
    df = to_frame(rows)
    figures = save_figures(df, out) if not df.empty else []
    report = out / "REPORT.md"
    report.write_text(render(df, figures))
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/runs", help="folder of result rows")
    parser.add_argument("--out", default="results", help="where REPORT.md and figures go")
    args = parser.parse_args(argv)
    print(f"wrote {build_report(args.results, args.out)}")


if __name__ == "__main__":
    main()
