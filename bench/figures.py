"""Figures: one colour per technique (from the rows); Pareto fronts, Δ heatmap, learning curves, sweeps, depth, size."""
from __future__ import annotations

import colorsys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from adjustText import adjust_text  # noqa: E402

from bench.analysis import improvement, metric, tasks_of  # noqa: E402
from bench.claim_tables import grid_cells, train_size_cells  # noqa: E402
from bench.selection import (best_on_validation, default_cells, ok, sweep_candidates, sweep_grids,  # noqa: E402
                             sweep_words)
from bench.stats import mean_ci  # noqa: E402
from bench.techniques import BASELINE, combinations, order_techniques, singles, technique_pieces  # noqa: E402


def palette(n: int) -> list[str]:
    """n distinct colours: tab10, then the light tab20 shades, tab20b, tab20c, then evenly spread hues."""
    maps = [plt.get_cmap(name) for name in ("tab10", "tab20", "tab20b", "tab20c")]
    picks = list(maps[0].colors) + list(maps[1].colors[1::2]) + list(maps[2].colors) + list(maps[3].colors)
    out = list(dict.fromkeys(to_hex(c) for c in picks))
    golden = 0.618033988749895
    for i in range(max(0, n - len(out))):
        out.append(to_hex(colorsys.hsv_to_rgb((i * golden) % 1.0, 0.65, 0.85 - 0.25 * (i // 20 % 2))))
    return out[:n]


def technique_colours(df: pd.DataFrame) -> dict[str, str]:
    """technique -> colour for every technique of df: none black, the others in technique order along the
    palette. Computed once per report so a technique has one colour in every figure."""
    names = [t for t in order_techniques(df) if t != BASELINE]
    return {BASELINE: "#000000", **dict(zip(names, palette(len(names))))}


def colour(technique: str, colours: dict) -> str:
    return colours.get(technique, "#555555")


def marker(technique: str, pieces: dict) -> str:
    return "X" if technique == BASELINE else "s" if len(pieces.get(technique, ())) > 1 else "o"


def curve_techniques(cells: pd.DataFrame, task: str) -> list[str]:
    """none, one single technique per piece (the first in order: l2 before adamw) and the best combination on
    validation: the learning curves worth showing without clutter."""
    pieces, shown, firsts = technique_pieces(cells), set(), []
    for tech in singles(cells):
        if pieces[tech] not in shown:
            shown.add(pieces[tech])
            firsts.append(tech)
    combo = best_on_validation(cells, combinations(cells), task)
    names = [BASELINE, *firsts, *([combo] if combo else [])]
    return [t for t in order_techniques(cells) if t in names]


def pareto_front(x, y, higher: bool) -> list[int]:
    """Indices of the points no other point beats on both time (lower) and metric, sorted by time."""
    order = sorted(range(len(x)), key=lambda i: (x[i], -y[i] if higher else y[i]))
    front, best = [], -np.inf
    for i in order:
        score = y[i] if higher else -y[i]
        if score > best:
            front.append(i)
            best = score
    return front


def _log_if_wide(ax, values, axis="x", span=10) -> None:
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0])
    if len(v) and v.max() / v.min() >= span:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _plain_log(axis, minor: bool = False, one_two_five: bool = False) -> None:
    """Tick labels like 0.4, 50 and 2000 on a log axis (no 4x10^-1 or 2e+03), major ticks at 1, 2 and 5 times
    powers of ten when asked (an axis spanning a decade or two); minor ticks labelled only when asked."""
    plain = FuncFormatter(lambda v, _: f"{v:g}" if v >= 1 else f"{v:.2g}")
    if one_two_five:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain if minor else NullFormatter())


def _log_y(ax, values) -> None:
    """Log y with plain labels; minor ticks labelled too when the data span less than a decade."""
    v = [x for x in values if np.isfinite(x) and x > 0]
    ax.set_yscale("log")
    _plain_log(ax.yaxis, minor=bool(v) and max(v) / min(v) < 10)


def _noise_floor(ax, df: pd.DataFrame, task: str) -> None:
    floor = df[df.task == task].noise_floor.dropna()
    if len(floor):  # loss tasks with a known floor (the MLP's label noise)
        ax.axhline(floor.mean(), color="grey", ls=":", lw=1)
        ax.annotate("noise floor (best possible MSE)", (0.01, floor.mean()), xycoords=("axes fraction", "data"),
                    fontsize=7, color="grey", va="bottom")


def plot_pareto(tables: dict, df: pd.DataFrame, task: str, colours: dict | None = None):
    t = tables.get((task, "default"))
    if t is None or t.empty:
        return None
    colours, pieces = colours or technique_colours(df), technique_pieces(df)
    fig, ax = plt.subplots(figsize=(8.5, 5))
    x = [s.mean for s in t.result_steps]  # in yardstick steps: cells timed minutes apart compare (see measures)
    y = [s.mean for s in t.test]
    for r, xi, yi in zip(t.itertuples(), x, y):
        ax.errorbar(xi, yi, xerr=np.nan_to_num(r.result_steps.half), yerr=np.nan_to_num(r.test.half),
                    fmt=marker(r.technique, pieces), color=colour(r.technique, colours), ms=7, capsize=2, lw=0.8,
                    label=r.technique, mfc="white" if r.underfits else colour(r.technique, colours))
    front = pareto_front(x, y, metric(task).higher)
    ax.plot([x[i] for i in front], [y[i] for i in front], color="grey", lw=1, ls="-", zorder=0)
    texts = [ax.text(x[i], y[i], t.technique.iloc[i], fontsize=8) for i in front]
    none_y = y[list(t.technique).index(BASELINE)] if BASELINE in set(t.technique) else None
    if none_y is not None:
        ax.axhline(none_y, color=colour(BASELINE, colours), ls="--", lw=0.8)
        ax.annotate(BASELINE, (0.99, none_y), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7)
    _noise_floor(ax, df, task)
    _log_if_wide(ax, x, "x", 5)
    if ax.get_xscale() == "log":
        _plain_log(ax.xaxis, one_two_five=True)  # the x span is at least 5x (see above), seldom 100x
    adjust_text(texts, x=x, y=y, target_x=[x[i] for i in front], target_y=[y[i] for i in front], ax=ax,
                expand=(1.3, 1.6), force_static=(0.3, 0.6), arrowprops=dict(arrowstyle="-", color="grey", lw=0.5),
                iter_lim=500)  # its default stops after 1 s of iterating: label places then vary with machine speed
    ax.set_xlabel("time to result: to the reported checkpoint, in steps of the plain network timed before each run "
                  "(mean over seeds)", fontsize=8)
    ax.set_ylabel(metric(task).axis)
    ax.set_title(f"{task}: test metric vs time, article defaults (grey line: Pareto front, labelled; "
                 f"hollow: underfits)", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="technique", title_fontsize=7)
    return fig


def _stars(p: float) -> str:
    return "" if not np.isfinite(p) else "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def plot_delta_heatmap(tables: dict):
    tasks = [t for t in dict.fromkeys(t for t, _ in tables) if len(tables[t, "default"]) > 1]  # none and one more
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 6.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        frames = {k: tables[task, k].set_index("technique") for k in ("default", "tuned")}
        names = [n for n in frames["default"].index if n != BASELINE]
        values = np.array([[improvement(task, frames[k].d[n].mean) if n in frames[k].index else np.nan
                            for k in frames] for n in names])
        vmax = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
        ax.imshow(values, cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
        for i, n in enumerate(names):
            for j, k in enumerate(frames):
                r = frames[k].loc[n] if n in frames[k].index else None
                text = "n/a" if r is None or not np.isfinite(values[i, j]) else \
                    "not testable" if r.skip else f"{values[i, j]:+.3f}{_stars(r.p_holm)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if np.isfinite(values[i, j]) and abs(values[i, j]) > 0.6 * vmax else "black")
        ax.set_xticks(range(2), ["at default", "tuned on val"])
        ax.set_yticks(range(len(names)), names, fontsize=8)
        unit = "accuracy gain" if metric(task).higher else "MSE reduction"
        ax.set_title(f"{task}: improvement over none\n({unit}; colour scale per task)", fontsize=9)
        fig.colorbar(ax.images[0], ax=ax, shrink=0.6, label=f"{unit} (test)")
    fig.subplots_adjust(wspace=0.75, bottom=0.1)
    fig.text(0.5, 0.01, "* / ** / ***: Holm-adjusted paired t-test p < 0.05 / 0.01 / 0.001 (within task and "
             "table); blue = better than none", ha="center", fontsize=8)
    return fig


def plot_curves(curves: pd.DataFrame, df: pd.DataFrame, task: str, colours: dict | None = None):
    cells, colours = default_cells(df, task), colours or technique_colours(df)
    shown = curve_techniques(cells, task)
    data = curves[curves.key.isin(set(cells.key)) & curves.technique.isin(shown)]
    if data.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, split, words in zip(axes, ("train", "val"), ("training set (eval mode, curve epochs)",
                                                         "validation set (every epoch)")):
        for tech in [t for t in shown if t in set(data.technique)]:
            d = data[(data.technique == tech) & (data.split == split)]
            per_epoch = d.groupby("epoch").loss
            mean = per_epoch.mean()[per_epoch.count() == d.seed.nunique()]  # epochs every seed ran
            ax.plot(mean.index, mean.values, color=colour(tech, colours), lw=1.4, label=tech,
                    marker="o" if split == "train" and len(mean) < 40 else None, ms=3)
        if not metric(task).higher:
            _log_y(ax, data[data.split.isin(["train", "val"])].loss)
            _noise_floor(ax, df, task)
        ax.set_xlabel("epoch (a line ends where the first of its seeds stopped)")
        ax.set_ylabel(f"{metric(task).loss} loss")
        ax.set_title(f"{task}: {words}", fontsize=9)
    axes[1].legend(fontsize=7, title="technique (mean over seeds)", title_fontsize=7)
    fig.subplots_adjust(wspace=0.08)
    return fig


def plot_sweep(df: pd.DataFrame, grid: str, tables: dict, colours: dict | None = None):
    techs, words = sweep_grids(df).get(grid, []), sweep_words(df, grid)
    tasks = [t for t in tasks_of(df) if len(ok(df[(df.grid == grid) & (df.task == t)]))]
    if not tasks or not techs:
        return None
    colours = colours or technique_colours(df)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.8 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        tuned = tables.get((task, "tuned"), pd.DataFrame())
        tuned = tuned.set_index("technique") if len(tuned) else tuned
        values, means = [], []
        for tech in techs:
            c = ok(sweep_candidates(df, task, tech))
            if c.empty:
                continue
            g = c.groupby("value")
            for col, ls, mk, name in (("test_metric", "-", "o", "test"), ("val_metric", "--", "s", "validation")):
                stat = g[col].apply(mean_ci)
                ax.errorbar(stat.index, [s.mean for s in stat], yerr=[np.nan_to_num(s.half) for s in stat], ls=ls,
                            marker=mk, ms=4, color=colour(tech, colours), capsize=2, label=f"{tech}: {name}")
                means += [s.mean for s in stat]
            values += list(stat.index)
            if tech in tuned.index:
                chosen, default = tuned.chosen[tech][:2]
                best = stat.get(chosen)  # on the validation curve, where it was chosen
                if best is not None:
                    ax.plot([chosen], [best.mean], marker="*", ms=15, color=colour(tech, colours), mec="black",
                            ls="none", label=f"{tech}: chosen on validation")
                ax.axvline(default, color=colour(tech, colours), ls=":", lw=0.8)
        _log_if_wide(ax, values, "x", 100)
        if not metric(task).higher:
            if means and min(means) > 0 and max(means) / min(means) >= 3:
                _log_y(ax, means)
        ax.set_xlabel(words)
        ax.set_ylabel(metric(task).axis.replace("test ", "test / validation "))
        ax.set_title(f"{task}: sweep (dotted line: the article's default)", fontsize=9)
        ax.legend(fontsize=7)
    fig.subplots_adjust(wspace=0.3)
    return fig


def plot_depth(df: pd.DataFrame, colours: dict | None = None):
    cells = grid_cells(df, "depth")
    if cells.empty:
        return None
    colours = colours or technique_colours(df)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, col, words in zip(axes, ("train_loss", "test_loss"), ("final training MSE (trainability)", "test MSE")):
        _log_y(ax, cells[col])
        for tech in order_techniques(cells):
            stat = cells[cells.technique == tech].groupby("depth")[col].apply(mean_ci)
            ax.errorbar(stat.index, [s.mean for s in stat], yerr=[np.nan_to_num(s.half) for s in stat], marker="o",
                        color=colour(tech, colours), capsize=3, label=tech)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(cells.depth.unique()), [str(d) for d in sorted(cells.depth.unique())])
        ax.axvline(10, color="grey", ls="--", lw=0.8)
        ax.annotate("10 layers", (10, 1), xycoords=("data", "axes fraction"), fontsize=7, va="top", ha="left")
        ax.set_xlabel("hidden layers (log scale)")
        ax.set_ylabel(words + " after the fixed epoch budget")
        ax.legend(fontsize=8, title="95% CI over seeds", title_fontsize=7)
    task = cells.task.iloc[0].upper()
    axes[0].set_title(f"{task}: can it be trained? (final train loss)", fontsize=9)
    axes[1].set_title(f"{task}: test MSE beside it", fontsize=9)
    fig.subplots_adjust(wspace=0.3)
    return fig


def plot_train_size(df: pd.DataFrame, colours: dict | None = None):
    cells, note = train_size_cells(df)
    if cells.empty:
        return None
    colours = colours or technique_colours(df)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tech in order_techniques(cells):
        stat = cells[cells.technique == tech].groupby("n_train").test_metric.apply(mean_ci)
        ax.errorbar(np.array(stat.index) / 10, [s.mean for s in stat], yerr=[np.nan_to_num(s.half) for s in stat],
                    marker="o", color=colour(tech, colours), capsize=3, label=tech)
    ax.set_xscale("log")
    sizes = sorted(cells.n_train.unique() / 10)
    ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training examples per class (log scale)")
    ax.set_ylabel(metric(cells.task.iloc[0]).axis)
    ax.set_title(f"{cells.task.iloc[0].upper()}: augmentation vs none by training-set size\n({note})", fontsize=9)
    ax.legend(fontsize=8, title="95% CI over seeds", title_fontsize=7)
    return fig


def save_figures(df: pd.DataFrame, tables: dict, curves: pd.DataFrame, out: Path, suffix: str = "",
                 colours: dict | None = None) -> list[str]:
    """Draw every figure that has data into out; returns the file names written. colours: technique -> colour
    (default: from df), the same in every figure."""
    colours = colours or technique_colours(df)
    makers = {f"pareto_{t}": (lambda t=t: plot_pareto(tables, df, t, colours)) for t in tasks_of(df)}
    makers["delta_heatmap"] = lambda: plot_delta_heatmap(tables)
    makers.update({f"curves_{t}": (lambda t=t: plot_curves(curves, df, t, colours)) for t in tasks_of(df)})
    makers.update({f"sweep_{g}": (lambda g=g: plot_sweep(df, g, tables, colours)) for g in sweep_grids(df)})
    makers.update(depth=lambda: plot_depth(df, colours), train_size=lambda: plot_train_size(df, colours))
    written = []
    for name, make in makers.items():
        fig = make()
        if fig is None:
            continue
        fig.savefig(out / f"{name}{suffix}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(f"{name}{suffix}.png")
    return written


def plot_interactions(coded: pd.DataFrame, task: str, pairs: list[str], colours: dict):
    """Interaction plots of a factorial (bench.effects.coded: factors as -1/+1, seed, test): per pair a:b, the mean
    test metric with a off/on, one line per level of b (b's technique colour on, black dashed off), 95% t CI over seeds of
    the per-seed means over the other factors."""
    import seaborn as sns

    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.6), sharey=True, squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        a, b = pair.split(":")
        per_seed = coded.groupby([a, b, "seed"]).test.mean().reset_index()
        per_seed[a], per_seed[b] = per_seed[a].map({-1: "off", 1: "on"}), per_seed[b].map({-1: "off", 1: "on"})

        def ci(v):
            s = mean_ci(v)
            return s.mean - np.nan_to_num(s.half), s.mean + np.nan_to_num(s.half)

        sns.pointplot(per_seed, x=a, y="test", hue=b, order=["off", "on"], hue_order=["off", "on"], errorbar=ci,
                      palette={"off": "#000000", "on": colour(b, colours)}, linestyles=["--", "-"], dodge=0.1,
                      capsize=0.1, ax=ax)
        ax.set_xlabel(a)
        ax.set_ylabel(metric(task).axis)
        ax.set_title(f"{task}: {pair}", fontsize=9)
        ax.legend(fontsize=7, title=b, title_fontsize=7)
    fig.suptitle("factorial: mean over the other factors, 95% CI over seeds, unpaired (parallel lines = no "
                 "interaction; the effects table's CIs, paired by seed, are narrower)", fontsize=9)
    fig.tight_layout()
    return fig
