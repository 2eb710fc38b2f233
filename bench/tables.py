"""Markdown tables: each technique vs none, the article's table, sweeps, L1, early stopping, depth, train size."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import metric, tasks_of
from bench.claim_tables import depth_table, es_table, sparsity_table, train_size_table
from bench.claims import EPOCHS_SAVED, NOT_TESTED, SPARSE
from bench.comparisons import band_verdict, cost_word
from bench.measures import STOPS_LEARNING
from bench.selection import DEFAULT_GRIDS, default_cells, default_grid, main_config, ok, sweep_grids, sweep_words
from bench.stats import EQUIVALENCE, fmt, mean_ci
from bench.techniques import BASELINE

ARTICLE = {  # technique -> (cost word, best for), the article's table
    "l2": ("Negligible", "most problems; start here"), "adamw": ("Negligible", "(decoupled L2; not in the article)"),
    "l1": ("Low", "feature selection, sparse models"), "l1_prox": ("Low", "(proximal L1; not in the article)"),
    "dropout": ("Low", "large fully connected layers"), "batchnorm": ("Low", "deep networks (10+ layers)"),
    "augment": ("Medium-High", "images, small data sets"), "early_stopping": ("Negligible", "every problem"),
    "lr_plateau": ("Negligible", "long training runs"),
}


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def value_text(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt(v)


def ci(lo: float, hi: float) -> str:
    return "n/a" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{fmt(lo)}, {fmt(hi)}]"


def flags(r, task: str) -> str:
    out = []
    if r.underfits:
        out.append("**underfits**")
    out += list(r.never_acted)
    if r.not_ok:
        out.append(f"{r.not_ok} seed(s) not ok, excluded")
    if r.chosen[3] and r.technique != BASELINE:
        out.append(r.chosen[3])
    return "; ".join(out)


def time_text(tt: dict) -> str:
    if not tt["n"]:
        return "n/a"
    if not tt["reached"]:
        return f"never (0/{tt['n']})"
    return f"{tt['epochs']} ep · {tt['seconds']} s ({tt['reached']}/{tt['n']})"


def effect_table(table: pd.DataFrame, task: str, tuned: bool) -> str:
    """Each technique's test metric and paired difference to none, with its verdict (the full detail, bootstrap
    CIs included, is in techniques.csv)."""
    m = metric(task)
    head = ["technique"] + (["chosen (default)"] if tuned else []) + [
        "n", m.words, "Δ vs none [95% CI]", "Holm p", "verdict"]
    rows = []
    for r in table.itertuples():
        line = [f"`{r.technique}`"]
        if tuned:
            line.append(f"{value_text(r.chosen[0])} ({value_text(r.chosen[1])}) of {r.chosen[2]}")
        d = r.d
        line += [r.n, r.test, f"{fmt(d.mean)} {ci(d.lo, d.hi)}" if d.n else "", fmt(r.p_holm, 2) if d.n else "",
                 r.verdict]
        rows.append(line)
    return md_table(head, rows)


def fit_table(table: pd.DataFrame, task: str) -> str:
    """How well each technique fits its training set, its generalization gap, and flags."""
    m = metric(task)
    head = ["technique", f"train {m.words.split()[1]}", "loss gap (test−train)"]
    head += ["acc gap (train−test)"] if m.higher else []
    rows = [[f"`{r.technique}`", r.train, r.gap] + ([r.acc_gap] if m.higher else []) + [flags(r, task)]
            for r in table.itertuples()]
    return md_table(head + ["flags"], rows)


def cost_table(table: pd.DataFrame, costs: pd.DataFrame, task: str) -> str:
    """Cost from the rows (time to none's best validation metric, seconds to result, per-epoch step time) beside
    the cost probe's interleaved step-time and FLOP ratios (results/cost.csv)."""
    probe = costs[costs.task == task].set_index("technique") if len(costs) else pd.DataFrame()
    rows = []
    for r in table.itertuples():
        c = r.cost
        per_epoch = f"{fmt(c['epoch_ratio'])}× (±{fmt(100 * c['epoch_noise'], 2)}%, n={c['epoch_runs']})"
        if r.technique in probe.index:
            p = probe.loc[r.technique]
            step = f"{fmt(p.step_time_ratio)}× [{fmt(p.ci_low)}, {fmt(p.ci_high)}]"
            flops = f"{fmt(p.flop_ratio)}× · {fmt(p.op_ratio)}×" if "op_ratio" in p else f"{fmt(p.flop_ratio)}×"
        else:
            step, flops = "not probed", "not probed"
        rows.append([f"`{r.technique}`", time_text(r.tt), r.result_s, per_epoch, step, flops])
    return md_table(["technique", "time to none's best val", "s to result", "per-epoch ×none (rows: noise, runs)",
                     "step time ×none (probe, 95% CI)", "FLOPs · ops ×none (probe)"], rows)


def side_by_side(default: pd.DataFrame, tuned: pd.DataFrame, task: str) -> str:
    t = tuned.set_index("technique")
    rows = []
    for r in default.itertuples():
        u = t.loc[r.technique] if r.technique in t.index else None
        cell = lambda x: f"{fmt(x.d.mean)} (p={fmt(x.p_holm, 2)})" if x.d.n else "—"  # noqa: E731
        rows.append([f"`{r.technique}`", r.test, cell(r), r.verdict,
                     f"{fmt(u.chosen[0])} of {u.chosen[2]}" if u is not None and u.chosen[2] > 1 else
                     ("fixed budget" if r.technique == BASELINE else "default (no sweep)"),
                     *([u.test, cell(u), u.verdict] if u is not None else ["", "", ""])])
    w = metric(task).words
    return md_table(["technique", f"default: {w}", "default: Δ vs none (Holm p)", "default: effect",
                     "tuned: value (of candidates)", f"tuned: {w}", "tuned: Δ vs none (Holm p)", "tuned: effect"],
                    rows)


def probe_text(costs: pd.DataFrame, task: str, tech: str, word: str) -> str:
    """The cost probe's numbers for one technique on one task, with the word they earn and the claim's verdict."""
    probe = costs[(costs.task == task) & (costs.technique == tech)] if len(costs) else costs
    if probe.empty:
        return f"{task}: not probed"
    p = probe.iloc[0]
    return (f"{task}: {fmt(p.step_time_ratio)}× time [{fmt(p.ci_low)}, {fmt(p.ci_high)}], {fmt(p.flop_ratio)}× FLOPs "
            f"→ {cost_word(p.step_time_ratio)} ({band_verdict(p.ci_low, p.ci_high, word)})")


def article_table(df: pd.DataFrame, tables: dict, costs: pd.DataFrame) -> str:
    rows = []
    for tech, (word, best_for) in ARTICLE.items():
        cost, gaps, underfit, settings = [], {}, [], ""
        for task in tasks_of(df):
            t = tables[task, "default"]
            if t.empty or tech not in set(t.technique):
                continue
            r, none = t.set_index("technique").loc[tech], t.set_index("technique").loc[BASELINE]
            cost.append(probe_text(costs, task, tech, word))
            if r.underfits:
                underfit.append(task)
            elif none.gap.mean > 0:  # shrink, and whether its paired 95% CI lies beyond the margin
                margin = EQUIVALENCE * none.gap.mean
                gaps[task] = (1 - r.gap.mean / none.gap.mean, np.isfinite(r.gap_d.p) and r.gap_d.hi < -margin)
            art = default_cells(df, task)
            settings = art[art.technique == tech].settings.iloc[0]
        if not cost:
            rows.append([f"`{tech}`", word, NOT_TESTED, best_for, NOT_TESTED, "-"])
            continue
        rows.append([f"`{tech}`", word, "; ".join(cost), best_for, gap_credit(gaps, underfit), settings])
    header = ["technique", "cost: article", "cost: measured (probe: step time and FLOPs ×none → word, verdict)",
              "best for: article",
              "measured: loss gap vs none's (bold: a credited shrink)", "settings"]
    tested = any(len(tables[task, "default"]) for task in tasks_of(df))
    return md_table(header, rows) if tested else "_No article rows._"


def gap_credit(gaps: dict[str, tuple[float, bool]], underfit: list[str]) -> str:
    """Each task's change of the loss gap vs none's, in bold where it is credited (see article_table)."""
    change = lambda shrink: f"{round(-100 * shrink, 1) + 0.0:+.1f}%"  # noqa: E731  (+ 0.0: no "-0.0%")
    parts = [f"**{t} {change(s)}**" if credited else f"{t} {change(s)}" for t, (s, credited) in gaps.items()]
    return ", ".join(parts + [f"{t} underfits: not credited" for t in underfit])


def sweep_section(df: pd.DataFrame, tables: dict, img) -> list[str]:
    metrics = ", ".join(f"{metric(t).words.split()[1]} for {t}" for t in tasks_of(df) if (df.task == t).any())
    out = ["## Strength sweeps", "", "Each sweep with its article default; chosen = best mean validation metric "
           f"(metric: {metrics}). "
           f"'stops learning' = final train loss ≥ {STOPS_LEARNING}× the untrained model's validation loss.", ""]
    for grid, techs in sweep_grids(df).items():
        rows = []
        for task in tasks_of(df):
            tuned = tables.get((task, "tuned"), pd.DataFrame())
            chosen = dict(zip(tuned.technique, tuned.chosen)) if len(tuned) else {}
            cfg = main_config(df, task, grid)
            for tech in techs:
                c = ok(df[(df.task == task) & (df.technique == tech) & (df.task_cfg == cfg)
                          & df.grid.isin([default_grid(df, task, tech), grid])])
                if not (c.grid == grid).any():
                    continue
                for value, v in c.groupby("value"):
                    mark = [s for s, ok_ in (("default", v.grid.isin(DEFAULT_GRIDS).any()),
                                             ("**chosen**", chosen.get(tech, (None,))[0] == value)) if ok_]
                    ratio = v.train_loss / v.initial_val_loss
                    rows.append([task, f"`{tech}`", " ".join([fmt(value)] + mark), len(v), mean_ci(v.val_metric),
                                 mean_ci(v.test_metric), mean_ci(v.train_metric),
                                 f"{mean_ci(ratio)} ({(ratio >= STOPS_LEARNING).mean():.0%} of seeds stop)"])
        if rows:
            header = ["task", "technique", "value", "n", "validation", "test", "train",
                      "train loss / untrained (stops learning)"]
            out += [f"### {sweep_words(df, grid)}", "", md_table(header, rows), ""]
            out += img(f"sweep_{grid}")
    return out


def other_sections(df: pd.DataFrame, img) -> list[str]:
    out = ["## L1: exact zeros", "", f"Claim threshold: ≥ {SPARSE:.0%} of weights exactly 0. `l1` = subgradient "
           "penalty, `l1_prox` = proximal soft-threshold update.", ""]
    sp = sparsity_table(df)
    out += [md_table(["task", "variant", "strength", "n", "exactly 0", "|w| < 1e-3", "test metric"],
                     [[r.task, f"`{r.technique}`", fmt(r.value), r.n, r.zero, r.small, r.test]
                      for r in sp.itertuples()])
            if len(sp) else "_No L1 rows._", ""]
    es = es_table(df)
    out += ["## Early stopping and the LR plateau", "", f"'Saves epochs' = ≥ {EPOCHS_SAVED:.0%} of the budget.", ""]
    out += [md_table(["task", "technique (grid, value)", "n", "stopped early", "epochs run / budget",
                      "epochs saved (fraction)", "LR lowered (mean reductions)"],
                     [[r.task, f"`{r.technique}` ({r.grid}, {value_text(r.value)})", r.n,
                       "—" if np.isnan(r.stopped) else f"{r.stopped:.0%}", f"{r.epochs_run} / {fmt(r.budget)}",
                       r.saved if r.has_es else "—",
                       "—" if np.isnan(r.lr_reduced) else f"{r.lr_reduced:.0%} ({fmt(r.reductions)})"]
                      for r in es.itertuples()]) if len(es) else "_No rows._", ""]
    dt = depth_table(df)
    out += ["## Batch norm and depth (MLP, fixed epoch budget)", "", "Trainability = final train loss; Δ = none − "
            "batchnorm (positive: BN trains further), paired by seed, Holm across depths.", ""]
    out += [md_table(["depth", "train loss: none", "train loss: BN", "Δ [95% CI]", "Holm p", "BN trains better?",
                      "test MSE: none", "test MSE: BN"],
                     [[int(r.depth), r.none_train, r.bn_train, f"{fmt(r.d.mean)} {ci(r.d.lo, r.d.hi)}",
                       fmt(r.p_holm, 2), r.verdict, r.none_test, r.bn_test] for r in dt.itertuples()])
            if len(dt) else "_No depth rows._", ""] + img("depth")
    ts = train_size_table(df)
    out += ["## Augmentation and training-set size (CIFAR, equal optimizer steps)", ""]
    out += [md_table(["examples per class", "epochs", "test acc: none", "test acc: augment", "Δ [95% CI]", "Holm p",
                      "augment helps?"],
                     [[int(r.n_train) // 10, int(r.epochs), r.none, r.augment, f"{fmt(r.d.mean)} {ci(r.d.lo, r.d.hi)}",
                       fmt(r.p_holm, 2), r.verdict] for r in ts.itertuples()]) if len(ts) else "_No rows._", ""]
    return out + img("train_size")
