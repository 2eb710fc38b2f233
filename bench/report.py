"""Report: REPORT.md, figures, rows.csv and curves.csv rebuilt from stored result rows alone (never retrains).

    python -m bench.report [--results results/runs] [--out results]
    python -m bench.report compare A_DIR B_DIR      # per-cell differences between two result folders

Every number comes from the rows (schema v2); see bench/analysis.py for the statistics and bench/claims.py
for the verdicts.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis import (ALPHA, BOOTSTRAP, EQUIVALENCE, METRICS, POWER, STOPS_LEARNING, SWEEPS, TASKS,
                            UNDERFIT_ACC, UNDERFIT_FLOOR, NoRows, SchemaError, article_cells, curves_frame, fmt,
                            main_config, mean_ci, never_acted, ok, read_rows, to_frame)
from bench.claims import (COST_WORDS, EPOCHS_SAVED, SPARSE, all_claims, cost_verdict, depth_table,
                          es_table, sparsity_table, tables_vs_none, train_size_table)
from bench.figures import save_figures

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


# --------------------------------------------------------------------------- provenance and warnings


def groups_table(df: pd.DataFrame) -> str:
    g = df.groupby(["commit", "device", "preset"], dropna=False)
    rows = [[f"`{c}`", d, p, len(x), ", ".join(sorted(x.task.unique())), ", ".join(sorted(x.grid.unique()))]
            for (c, d, p), x in g]
    return md_table(["commit", "device", "preset", "rows", "tasks", "grids"], rows)


def warnings_section(df: pd.DataFrame) -> list[str]:
    notes = []
    for col, words in (("commit", "commits"), ("device", "devices"), ("preset", "presets")):
        values = sorted(df[col].dropna().astype(str).unique())
        if len(values) > 1:
            notes.append(f"rows come from {len(values)} {words} ({', '.join(values)}): see the groups below"
                         + ("; each preset is reported on its own" if col == "preset" else "")
                         + ("; timings from different devices are not comparable" if col == "device" else ""))
    for r in df[df.status != "ok"].itertuples():
        when = f" at epoch {int(r.diverged_epoch)}" if pd.notna(r.diverged_epoch) else ""
        err = f": {r.error}" if isinstance(r.error, str) else ""
        notes.append(f"`{r.task}/{r.technique}` seed {r.seed} ({r.grid} grid): **{r.status}**{when}{err} (excluded)")
    out = ["## Warnings", ""] + [f"- {n}" for n in notes] if notes else []
    if len(notes) and any(df[c].nunique() > 1 for c in ("commit", "device", "preset")):
        out += ["", groups_table(df)]
    return out + ([""] if out else [])


def missing_parts(df: pd.DataFrame, tables: dict) -> list[str]:
    notes = [f"no article-grid rows for task `{t}`: its tables and claims are not testable here"
             for t in TASKS if article_cells(df, t).empty]
    notes += [f"no rows for the `{g}` grid" for g in (*SWEEPS, "depth", "train_size") if not (df.grid == g).any()]
    for task in TASKS:
        cfg = main_config(df, task)
        off = df[(df.task == task) & (df.grid.isin(SWEEPS)) & (df.task_cfg != cfg) & (cfg is not None)]
        for grid in sorted(off.grid.unique()):
            notes.append(f"`{task}` `{grid}` sweep rows whose task config differs from the article grid's: left out")
        for r in tables.get((task, "default"), pd.DataFrame()).itertuples():
            if r.never_acted:
                notes.append(f"`{task}/{r.technique}` (article default): {'; '.join(r.never_acted)} — "
                             + ("no conclusion drawn" if r.skip else "shown, flagged"))
    for (task, grid, tech, value), c in ok(df[df.grid.isin(SWEEPS)]).groupby(["task", "grid", "technique", "value"]):
        art = article_cells(df, task)
        for why in never_acted(c, art[art.technique == "none"]):
            notes.append(f"`{task}/{tech}` {grid} sweep at {fmt(value)}: {why}")
    single = ok(df[df.grid == "article"]).groupby(["task", "technique"]).seed.nunique()
    if len(single) and single.min() < 2:
        notes.append("some cells have a single seed: no confidence interval or paired test for them")
    return notes


def method_text(df: pd.DataFrame) -> list[str]:
    var = {(True,): "weight init, data order and the training/validation set drawn from the fixed teacher "
                    "(test set shared)",
           (False,): "weight init, data order and dropout/augmentation draws on a fixed data subset"}
    resampled = {t: var.get(tuple(set(ok(df[df.task == t]).data_resampled.dropna().astype(bool))),
                            "mixed or not stated in the rows") for t in TASKS if (df.task == t).any()}
    floor = df[df.task == "mlp"].noise_floor.dropna()
    return [
        "## How to read this", "",
        f"- Metric: MLP test MSE (lower is better; noise floor {fmt(floor.mean()) if len(floor) else 'n/a'} = the "
        "best possible), CIFAR test accuracy (higher is better). Validation metric: val MSE / val accuracy.",
        "- Variance the CIs include: " + "; ".join(f"{t}: {words}" for t, words in resampled.items()) + ".",
        "- Cells: mean ± 95% CI over seeds (t distribution). Δ vs none: paired by seed, 95% t CI and a 95% "
        f"bootstrap percentile CI ({BOOTSTRAP['n_resamples']} resamples, random_state={BOOTSTRAP['random_state']}; "
        "too narrow at n = 3); p: paired t-test, Holm-adjusted across all comparisons with none in that task and "
        "table.",
        f"- Effect words: better/worse = Holm p < {ALPHA} in that direction; equivalent = the 90% CI lies within "
        f"±{EQUIVALENCE:.0%} of none's mean (two one-sided tests); otherwise inconclusive, with the minimal "
        f"detectable difference at {POWER:.0%} power (two-sided α={ALPHA}, sd of the paired differences) when "
        "the effect seen is below it (underpowered).",
        "- Tuned: each technique with a sweep grid is set to the strength with the best mean validation metric "
        "among its sweep values and its article default, then reported on test; test values never enter the "
        "choice. Techniques without a sweep stay at their default; `none` trains for the fixed epoch budget.",
        f"- Underfits: CIFAR train accuracy more than {UNDERFIT_ACC:.2f} below none's; MLP train MSE above "
        f"{UNDERFIT_FLOOR}× the noise floor and above none's (a model that learned the teacher sits near the floor "
        "on its own training set). An underfitting technique is never credited with a smaller gap.",
        "- Cost: time to target = epochs and wall seconds (cumulative train time, plus per epoch the hook and, "
        "for techniques that read it, the validation pass) until the validation metric first reaches none's best "
        "on the same seed (same init and, for the MLP, the same data draw); mean over the seeds that reached it (k/n). Seconds to "
        "result = wall time to the reported checkpoint. Per-epoch ×none = median epoch step time per seed, one "
        "measurement per timed run (stacked MLP seeds share one: n=1), noise = its IQR/median.",
        f"- Cost words: ratio < {COST_WORDS[0][0]} Negligible, < {COST_WORDS[1][0]} Low, else Medium-High ('Low' "
        "claimed = at most Low, 'Medium-High' = at least Medium-High); a claim "
        "uses the time-to-target ratio (its noise: the relative 95% CIs of both means) when at least half of the "
        "technique's seeds and one of none's reached the target, else the per-epoch ratio (noise: IQR/median), and "
        "is supported/not supported only when ratio ± noise stays inside/outside the claimed band.",
        "- Not testable here: the regularizer never acted (early stopping never stopped, the LR never changed, or "
        "rows identical to none's), or the rows are missing.", ""]


# --------------------------------------------------------------------------- per-task tables


def flags(r, task: str) -> str:
    out = []
    if r.underfits:
        out.append("**underfits**")
    out += list(r.never_acted)
    if r.not_ok:
        out.append(f"{r.not_ok} seed(s) not ok, excluded")
    if r.chosen[3] and r.technique != "none":
        out.append(r.chosen[3])
    return "; ".join(out)


def time_text(tt: dict) -> str:
    if not tt["n"]:
        return "n/a"
    if not tt["reached"]:
        return f"never (0/{tt['n']})"
    return f"{tt['epochs']} ep · {tt['seconds']} s ({tt['reached']}/{tt['n']})"


def headline(table: pd.DataFrame, task: str, tuned: bool) -> str:
    m = METRICS[task]
    head = ["technique"] + (["chosen (default)", "candidates"] if tuned else []) + [
        "n", m.words, "Δ vs none [95% t CI]", "bootstrap 95% CI", "Holm p", "effect", "time to none's best val",
        "s to result", "per-epoch ×none (noise, runs)", f"train {m.words.split()[1]}", "loss gap (test−train)"]
    head += ["acc gap (train−test)"] if task == "cifar" else []
    rows = []
    for r in table.itertuples():
        d, c = r.d, r.cost
        line = [f"`{r.technique}`"]
        if tuned:
            line += [f"{value_text(r.chosen[0])} ({value_text(r.chosen[1])})", r.chosen[2]]
        gap = f"{r.gap}" + (" (underfits: not credited)" if r.underfits else "")
        versus = [f"{fmt(d.mean)} {ci(d.lo, d.hi)}", ci(d.boot_lo, d.boot_hi), fmt(r.p_holm, 2)] if d.n else [""] * 3
        per_epoch = f"{fmt(c['epoch_ratio'])}× (±{fmt(100 * c['epoch_noise'], 2)}%, n={c['epoch_runs']})"
        line += [r.n, r.test, *versus, r.verdict, time_text(r.tt), r.result_s, per_epoch, r.train, gap]
        line += [r.acc_gap] if task == "cifar" else []
        rows.append(line + [flags(r, task)])
    return md_table(head + ["flags"], rows)


def side_by_side(default: pd.DataFrame, tuned: pd.DataFrame, task: str) -> str:
    t = tuned.set_index("technique")
    rows = []
    for r in default.itertuples():
        u = t.loc[r.technique] if r.technique in t.index else None
        cell = lambda x: f"{fmt(x.d.mean)} (p={fmt(x.p_holm, 2)})" if x.d.n else "—"  # noqa: E731
        rows.append([f"`{r.technique}`", r.test, cell(r), r.verdict,
                     f"{fmt(u.chosen[0])} of {u.chosen[2]}" if u is not None and u.chosen[2] > 1 else
                     ("fixed budget" if r.technique == "none" else "default (no sweep)"),
                     *([u.test, cell(u), u.verdict] if u is not None else ["", "", ""])])
    w = METRICS[task].words
    return md_table(["technique", f"default: {w}", "default: Δ vs none (Holm p)", "default: effect",
                     "tuned: value (of candidates)", f"tuned: {w}", "tuned: Δ vs none (Holm p)", "tuned: effect"],
                    rows)


def article_table(df: pd.DataFrame, tables: dict) -> str:
    rows = []
    for tech, (word, best_for) in ARTICLE.items():
        cost, gaps, settings = [], {}, ""
        for task in TASKS:
            t = tables[task, "default"]
            if t.empty or tech not in set(t.technique):
                continue
            r, none = t.set_index("technique").loc[tech], t.set_index("technique").loc["none"]
            c = r.cost
            cost.append(f"{task}: {fmt(c['ratio'])}× by {c['measure']} → {c['word']} ({cost_verdict(c, word)})")
            if not r.underfits and none.gap.mean:
                gaps[task] = 1 - r.gap.mean / none.gap.mean
            art = article_cells(df, task)
            settings = art[art.technique == tech].settings.iloc[0]
        if not cost:
            continue
        best = max(gaps, key=gaps.get) if gaps else None
        measured = f"{best} (loss gap {-gaps[best]:+.0%} vs none's)" if best else "underfits everywhere: not credited"
        rows.append([f"`{tech}`", word, "; ".join(cost), best_for, measured, settings])
    header = ["technique", "cost: article", "cost: measured (ratio vs none → word, verdict)", "best for: article",
              "measured: task where the gap shrank most", "settings"]
    return md_table(header, rows) if rows else "_No article rows._"


def sweep_section(df: pd.DataFrame, tables: dict, img) -> list[str]:
    out = ["## Strength sweeps", "", "Each sweep with its article default; chosen = best mean validation metric "
           "(metric: MSE for mlp, accuracy for cifar). "
           f"'stops learning' = final train loss ≥ {STOPS_LEARNING}× the untrained model's validation loss.", ""]
    for grid, (techs, _, words) in SWEEPS.items():
        rows = []
        for task in TASKS:
            tuned = tables.get((task, "tuned"), pd.DataFrame())
            chosen = dict(zip(tuned.technique, tuned.chosen)) if len(tuned) else {}
            cfg = main_config(df, task, grid)
            for tech in techs:
                c = ok(df[(df.task == task) & (df.technique == tech) & (df.task_cfg == cfg)
                          & df.grid.isin(["article", grid])])
                if not (c.grid == grid).any():
                    continue
                for value, v in c.groupby("value"):
                    mark = [s for s, ok_ in (("default", v.grid.eq("article").any()),
                                             ("**chosen**", chosen.get(tech, (None,))[0] == value)) if ok_]
                    ratio = v.train_loss / v.initial_val_loss
                    rows.append([task, f"`{tech}`", " ".join([fmt(value)] + mark), len(v), mean_ci(v.val_metric),
                                 mean_ci(v.test_metric), mean_ci(v.train_metric), mean_ci(ratio),
                                 f"{(ratio >= STOPS_LEARNING).mean():.0%} of seeds"])
        if rows:
            out += [f"### {words}", "", md_table(["task", "technique", "value", "n", "validation", "test",
                                                   "train", "train loss / untrained", "stops learning"], rows), ""]
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
    out += [md_table(["task", "grid", "technique", "value", "n", "stopped early", "epochs run / budget",
                      "epochs saved (fraction)", "LR lowered", "reductions (mean)"],
                     [[r.task, r.grid, f"`{r.technique}`", value_text(r.value), r.n, "—" if np.isnan(r.stopped) else
                       f"{r.stopped:.0%}", f"{r.epochs_run} / {fmt(r.budget)}", r.saved if r.has_es else "—",
                       "—" if np.isnan(r.lr_reduced) else f"{r.lr_reduced:.0%}",
                       "—" if np.isnan(r.reductions) else fmt(r.reductions)]
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


# --------------------------------------------------------------------------- REPORT.md, CSVs, CLI


def render_preset(df: pd.DataFrame, curves: pd.DataFrame, out: Path, suffix: str = "",
                  nested: bool = False) -> list[str]:
    """The report body for rows of one preset (headings one level down when nested under a preset heading)."""
    tables = tables_vs_none(df)
    figures = save_figures(df, tables, curves[curves.key.isin(set(df.key))], out, suffix)

    def img(stem: str) -> list[str]:
        name = f"{stem}{suffix}.png"
        return [f"![{name}]({name})", ""] if name in figures else []

    lines = []
    notes = missing_parts(df, tables)
    if notes:
        lines += ["## What is missing or was flagged", ""] + [f"- {n}" for n in notes] + [""]
    lines += method_text(df)
    lines += ["## Claims", "", md_table(["claim", "verdict", "measure", "numbers"],
                                        [[v.claim, f"**{v.verdict}**", v.measure, v.evidence]
                                         for v in all_claims(df, tables)]), ""]
    lines += ["## The article's table, measured", "", article_table(df, tables), ""]
    lines += ["## Improvement over none at a glance", ""] + img("delta_heatmap") if img("delta_heatmap") else []
    for task in TASKS:
        default, tuned = tables[task, "default"], tables[task, "tuned"]
        if default.empty:
            continue
        lines += [f"## Task `{task}`: each technique vs none", "", "### At the article's default and tuned on "
                  "validation, side by side", "", side_by_side(default, tuned, task), "",
                  "### At the article's default", "", headline(default, task, False), "",
                  "### Tuned on validation", "", headline(tuned, task, True), ""]
        lines += img(f"pareto_{task}") + img(f"curves_{task}")
    lines += other_sections(df, img) + sweep_section(df, tables, img)
    return ["#" + ln if nested and ln.startswith("#") else ln for ln in lines]


def render(df: pd.DataFrame, curves: pd.DataFrame, out: Path) -> str:
    lines = ["# regbench report", "",
             f"Built by `make report` from {len(df)} result rows alone (nothing retrained). Commit(s) "
             f"{', '.join(sorted(df.commit.dropna().astype(str).unique()))}; device(s) "
             f"{', '.join(sorted(df.device.dropna().astype(str).unique()))}; torch "
             f"{', '.join(sorted(df.torch.dropna().astype(str).unique()))}; preset(s) "
             f"{', '.join(sorted(df.preset.dropna().astype(str).unique()))}. Data: `rows.csv` (one line per row) and "
             "`curves.csv` (every history, long form) beside this file.", ""]
    lines += warnings_section(df)
    presets = sorted(df.preset.dropna().astype(str).unique()) or [None]
    for preset in presets:
        sub = df if preset is None else df[df.preset == preset]
        if len(presets) > 1:
            lines += [f"# Preset `{preset}`", ""]
        one = len(presets) == 1
        lines += render_preset(sub, curves, out, "" if one else f"_{preset}", nested=not one)
    return "\n".join(lines)


def write_csvs(df: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    df.drop(columns=["history", "task_cfg", "task_base"]).to_csv(out / "rows.csv", index=False)
    curves.to_csv(out / "curves.csv", index=False)


def load(results_dir: str | Path) -> pd.DataFrame:
    """Rows of a folder as a frame; skipped files are named on stderr; NoRows when none is left."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = read_rows(results_dir) if Path(results_dir).is_dir() else []
    for w in caught:
        print(f"regbench: warning: {w.message}", file=sys.stderr)
    if not rows:
        raise NoRows(f"no result rows under {results_dir}")
    return to_frame(rows)


def build_report(results_dir: str | Path, out_dir: str | Path) -> Path:
    df = load(results_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = curves_frame(df)
    write_csvs(df, curves, out)
    report = out / "REPORT.md"
    report.write_text(render(df, curves, out))
    return report


def welch(a, b) -> tuple[float, float, float, float]:
    """Mean of b - a, its 95% Welch CI and p (two independent runs)."""
    a, b = (pd.to_numeric(pd.Series(x, dtype=object), errors="coerce").dropna().to_numpy(float) for x in (a, b))
    diff = b.mean() - a.mean() if len(a) and len(b) else float("nan")
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):
        return diff, float("nan"), float("nan"), float("nan")
    res = stats.ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(0.95)
    return float(diff), float(ci.low), float(ci.high), float(res.pvalue)


def compare(a_dir: str | Path, b_dir: str | Path) -> str:
    """Per cell (task, technique, grid, swept values): test metric B − A with a Welch 95% CI, and the
    seconds-to-result ratio B / A."""
    a, b = load(a_dir), load(b_dir)
    lines = []
    for col in ("commit", "device", "preset"):
        va, vb = sorted(a[col].dropna().astype(str).unique()), sorted(b[col].dropna().astype(str).unique())
        if len(va) > 1 or len(vb) > 1 or va != vb:
            lines.append(f"warning: {col}s differ or are mixed: A {va}, B {vb}")
    key = ["task", "technique", "grid", "swept"]
    for f in (a, b):
        f["number"] = f.value.fillna(f.depth.where(f.grid == "depth")).fillna(f.n_train.where(f.grid == "train_size"))
        f["swept"] = [fmt(v) if pd.notna(v) else f"depth={d}" if g == "depth" else f"n_train={n}"
                      if g == "train_size" else "-" for v, g, d, n in zip(f.value, f.grid, f.depth, f.n_train)]
    ga, gb = dict(list(ok(a).groupby(key))), dict(list(ok(b).groupby(key)))
    number = dict(zip(map(tuple, pd.concat([a, b])[key].values), pd.concat([a, b]).number.fillna(-1)))
    rows = []
    for k in sorted(set(ga) | set(gb), key=lambda k: (*k[:3], number[k])):
        ca, cb = ga.get(k, a.iloc[:0]), gb.get(k, b.iloc[:0])
        if ca.empty or cb.empty:
            rows.append([*k, len(ca), len(cb), mean_ci(ca.test_metric), mean_ci(cb.test_metric), "", "", "",
                         "only in A" if cb.empty else "only in B"])
            continue
        diff, lo, hi, p = welch(ca.test_metric, cb.test_metric)
        ratio = cb.seconds_to_result.mean() / ca.seconds_to_result.mean()
        note = "task config differs" if set(ca.task_cfg) != set(cb.task_cfg) else ""
        rows.append([*k, len(ca), len(cb), mean_ci(ca.test_metric), mean_ci(cb.test_metric),
                     f"{fmt(diff)} {ci(lo, hi)}", fmt(p, 2), f"{fmt(ratio)}×", note])
    lines.append(md_table(["task", "technique", "grid", "swept", "n A", "n B", "test A", "test B",
                           "B − A [95% Welch CI]", "p", "s to result B/A", "note"], rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["compare"]:
            parser = argparse.ArgumentParser(prog="regbench-report compare", description=compare.__doc__)
            parser.add_argument("a", help="first result folder (rows)")
            parser.add_argument("b", help="second result folder (rows)")
            args = parser.parse_args(argv[1:])
            print(compare(args.a, args.b))
            return
        parser = argparse.ArgumentParser(prog="regbench-report", description=__doc__.splitlines()[0])
        parser.add_argument("--results", default="results/runs", help="folder of result rows")
        parser.add_argument("--out", default="results", help="where REPORT.md, figures and CSVs go")
        args = parser.parse_args(argv)
        print(f"wrote {build_report(args.results, args.out)}")
    except (NoRows, SchemaError) as e:
        print(f"regbench: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
