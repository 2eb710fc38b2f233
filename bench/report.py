"""Report: REPORT.md, figures, rows.csv and curves.csv rebuilt from stored result rows alone (never retrains).

    regbench-report [--results results/runs] [--out results]
    regbench-report compare A_DIR B_DIR      # per-cell differences between two result folders

Every number comes from the rows (schema v2): bench/analysis.py reads them, techniques.py tells singles from
combinations, stats.py, selection.py, measures.py and comparisons.py compute, claims.py and claim_tables.py
judge, tables.py, provenance.py and figures.py show.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from bench.analysis import (INTERNAL, NoRows, SchemaError, curves_frame, metric, read_rows_or_fail, tasks_of,
                            to_frame)
from bench.claims import all_claims
from bench.compare import compare
from bench.comparisons import COST_WORDS, comparisons_frame, tables_vs_none
from bench.effects import all_effects, factorial_claims, interactions_section
from bench.figures import save_figures, technique_colours
from bench.measures import UNDERFIT_ACC, UNDERFIT_FLOOR, never_acted
from bench.provenance import failed_rows_section, provenance_section, provenance_warning
from bench.selection import DEFAULT_GRIDS, FACTORIAL_PREFIX, default_cells, fixed_grids, main_config, ok, sweep_grids
from bench.stats import ALPHA, BOOTSTRAP, EQUIVALENCE, POWER, PRACTICAL_ACC, fmt
from bench.summary import summary_section
from bench.tables import (article_table, cost_table, effect_table, fit_table, md_table, other_sections, side_by_side,
                          sweep_section)
from bench.techniques import BASELINE

def missing_parts(df: pd.DataFrame, tables: dict) -> list[str]:
    sweeps = sweep_grids(df)
    notes = [f"no article-grid rows for task `{t}`: its tables and claims are not testable here"
             for t in tasks_of(df) if default_cells(df, t).empty]
    for task in tasks_of(df):
        cfg = main_config(df, task)
        off = df[(df.task == task) & df.grid.isin([*DEFAULT_GRIDS, *sweeps]) & (df.task_cfg != cfg) & (cfg is not None)]
        for grid in sorted(off.grid.unique()):
            rows = "sweep rows" if grid in sweeps else "rows"
            notes.append(f"`{task}` `{grid}` {rows} whose task config differs from the article grid's: left out")
        for r in tables.get((task, "default"), pd.DataFrame()).itertuples():
            if r.never_acted:
                notes.append(f"`{task}/{r.technique}` (article default): {'; '.join(r.never_acted)} — "
                             + ("no conclusion drawn" if r.skip else "shown, flagged"))
    for (task, grid, tech, value), c in ok(df[df.grid.isin(sweeps)]).groupby(["task", "grid", "technique", "value"]):
        art = default_cells(df, task)
        for why in never_acted(c, art[art.technique == BASELINE]):
            notes.append(f"`{task}/{tech}` {grid} sweep at {fmt(value)}: {why}")
    single = ok(df[df.grid.isin(DEFAULT_GRIDS)]).groupby(["task", "technique"]).seed.nunique()
    if len(single) and single.min() < 2:
        notes.append("some cells have a single seed: no confidence interval or paired test for them")
    return notes


def metric_text(df: pd.DataFrame, task: str) -> str:
    """e.g. 'MLP test MSE (lower is better; noise floor 0.25 = the best possible)'."""
    m, floor = metric(task), df[df.task == task].noise_floor.dropna()
    best = "" if m.higher else f"; noise floor {fmt(floor.mean()) if len(floor) else 'n/a'} = the best possible"
    return f"{task.upper()} {m.words} ({'higher' if m.higher else 'lower'} is better{best})"


def method_text(df: pd.DataFrame) -> list[str]:
    var = {(True,): "weight init, data order and the training/validation set drawn from the fixed teacher "
                    "(test set shared)",
           (False,): "weight init, data order and dropout/augmentation draws on a fixed data subset"}
    resampled = {t: var.get(tuple(set(ok(df[df.task == t]).data_resampled.dropna().astype(bool))),
                            "mixed or not stated in the rows") for t in tasks_of(df) if (df.task == t).any()}
    tasks = [t for t in tasks_of(df) if (df.task == t).any()]
    val_words = dict.fromkeys(metric(t).words.replace("test", "val") for t in tasks)
    return [
        "## How to read this", "",
        f"- Metric: {', '.join(metric_text(df, t) for t in tasks)}. Validation metric: {' / '.join(val_words)}.",
        "- Variance the CIs include: " + "; ".join(f"{t}: {words}" for t, words in resampled.items()) + ".",
        "- Cells: mean ± 95% CI over seeds (t distribution). Δ vs none: paired by seed, 95% t CI and a 95% "
        f"bootstrap percentile CI ({BOOTSTRAP['n_resamples']} resamples, random_state={BOOTSTRAP['random_state']}; "
        "too narrow at n = 3); p: paired t-test, Holm-adjusted across all comparisons with none in that task and "
        "table.",
        f"- Verdict words: **no practical difference** = the 95% t CI of the paired difference lies inside the "
        f"practical margin, ±{PRACTICAL_ACC * 100:.0f} accuracy point (CIFAR) or ±{EQUIVALENCE:.0%} of none's mean "
        "(MLP MSE) — CI inclusion, which at this level is two one-sided tests at α=0.025 each, significant or not "
        f"(an effect smaller than the margin does not matter in practice); else **helps**/**hurts** = Holm p < "
        f"{ALPHA} in that direction; else **inconclusive** (the CI is wider than the margin), with the minimal "
        f"detectable difference (MDD) at {POWER:.0%} power (two-sided α={ALPHA}, noncentral t, sd of the paired "
        "differences). Claims read the same rule as supported / not supported (no practical difference, or a "
        "significant effect the other way) / inconclusive.",
        "- Tuned: each technique with a sweep grid is set to the strength with the best mean validation metric "
        "among its sweep values and its article default, then reported on test; test values never enter the "
        "choice. Techniques without a sweep stay at their default; `none` trains for the fixed epoch budget.",
        f"- Underfits (fits the task less): the train metric is worse than none's (CIFAR: train accuracy more than "
        f"{UNDERFIT_ACC:.2f} below; MLP: train MSE above {UNDERFIT_FLOOR}× the noise floor and above none's) AND the "
        "test metric is worse than none's (paired mean). A technique that fits its training set less but tests "
        "better (augmentation, dropout) is not flagged: that is regularization working; train fit is shown in its "
        "own column without a judgement. An underfitting technique is never credited with a smaller gap; the article "
        "table credits a smaller loss gap only where the 95% t CI of technique − none, paired by seed and not "
        f"adjusted for multiplicity, lies below −{EQUIVALENCE:.0%} of none's gap (the equivalence margin).",
        "- Cost: time to target = epochs and wall seconds (cumulative train time, plus per epoch the hook and, "
        "for techniques that read it, the validation pass) until the validation metric first reaches none's best "
        "on the same seed (same init and, for the MLP, the same data draw); mean over the seeds that reached it "
        "(k/n). Seconds to result = wall time to the reported checkpoint. Per-epoch ×none = median epoch step "
        "time, one measurement per timed run (stacked MLP seeds share one: n=1); noise, per cell and combined in "
        "quadrature: with one run its epochs' and yardstick's IQR/median, with several the 95% CI across runs. Cost ratios (time to target, per-epoch) count time in units of "
        "a yardstick timed just before each run: a step of the plain network (none) on the same data and machine "
        "(cells run minutes apart, and a shared machine's speed drifts: on the 2-core dev VM, cells adding no work "
        "per step timed up to 1.5× none in raw seconds). Raw seconds are shown but not compared across cells; the "
        "CI across a cell's runs (CIFAR: 3) shows drift the yardstick missed; a cell with one timed run (the "
        "MLP's) cannot show it, so its noise is a lower bound (README, 'Cost, as the report measures it': how "
        "far off it can be).",
        f"- Cost words: ratio < {COST_WORDS[0][0]} Negligible, < {COST_WORDS[1][0]} Low, else Medium-High ('Low' "
        "claimed = at most Low, 'Medium-High' = at least Medium-High). The cost claims are judged from the cost "
        "probe (`make cost`, `cost.csv`): in one process, blocks of the technique's training steps and of none's "
        "on the same whole batches, timed in turn (A/B/B/A) after a warm-up, seeds stacked as `make bench` stacks "
        "them; the ratio is the geometric mean of the pairs' ratios with a 95% t CI on their logs, and pairs go on "
        "until that CI is within ±5% or a time cap; FLOPs per step from `torch.utils.flop_counter`. A claim is "
        "supported / not supported when the CI lies inside / outside the claimed band, else inconclusive. The "
        "rows' time-to-target and per-epoch ratios (below) are shown beside it.",
        "- Not testable here: the regularizer never acted (early stopping never stopped, the LR never changed, or "
        "rows identical to none's), or the rows are missing.", ""]




def render_preset(df: pd.DataFrame, curves: pd.DataFrame, out: Path, costs: pd.DataFrame, suffix: str = "",
                  nested: bool = False, colours: dict | None = None) -> tuple[list[str], list[str], dict]:
    """The verdict summary, the report body and the tables vs none for rows of one preset group (headings one level
    down when nested under a preset heading)."""
    tables = tables_vs_none(df)
    figures = save_figures(df, tables, curves[curves.key.isin(set(df.key))], out, suffix, colours)

    def img(stem: str) -> list[str]:
        name = f"{stem}{suffix}.png"
        return [f"![{name}]({name})", ""] if name in figures else []

    effects = all_effects(df)
    verdicts = all_claims(df, tables, costs) + factorial_claims(effects[0], tasks_of(df))
    summary = summary_section(tables, verdicts, tasks_of(df))
    lines = []
    notes = missing_parts(df, tables)
    if notes:
        lines += ["## What is missing or was flagged", ""] + [f"- {n}" for n in notes] + [""]
    lines += method_text(df)
    lines += ["## Claims in full", "", md_table(["claim", "verdict", "measure", "numbers"],
                                                [[v.claim, f"**{v.verdict}**", v.measure, v.evidence]
                                                 for v in verdicts]), ""]
    lines += ["## The article's table, measured", "", article_table(df, tables, costs), ""]
    lines += ["## Improvement over none at a glance", ""] + img("delta_heatmap") if img("delta_heatmap") else []
    for task in tasks_of(df):
        default, tuned = tables[task, "default"], tables[task, "tuned"]
        if default.empty:
            continue
        lines += [f"## Task `{task}`: each technique vs none", "", "### At the article's default and tuned on "
                  "validation, side by side", "", side_by_side(default, tuned, task), "",
                  "### At the article's default", "", effect_table(default, task, False), "",
                  fit_table(default, task), "", "### Tuned on validation", "", effect_table(tuned, task, True), "",
                  fit_table(tuned, task), "", "### Cost (article defaults)", "", cost_table(default, costs, task), ""]
        lines += img(f"pareto_{task}") + img(f"curves_{task}")
    lines += other_sections(df, img) + sweep_section(df, tables, img)
    lines += interactions_section(df, out, suffix, colours, effects)
    nest = lambda block: ["#" + ln if nested and ln.startswith("#") else ln for ln in block]  # noqa: E731
    return nest(summary), nest(lines), tables


def search_note(df: pd.DataFrame) -> list[str]:
    search = df[~df.index.isin(fixed_grids(df).index)]
    if search.empty:
        return []
    return [f"_{len(search)} rows of hyperparameter-search grids ({', '.join(sorted(search.grid.unique()))}) are "
            "left out below: search trials are never pooled with the fixed grids._", ""]


def render(df: pd.DataFrame, curves: pd.DataFrame, out: Path, costs: pd.DataFrame | None = None
           ) -> tuple[str, pd.DataFrame]:
    """REPORT.md's text and every comparison with none (techniques.csv). With one preset group its verdict summary
    comes first, then where the rows come from and the rest; with several, where the rows come from, then each
    group with its own summary."""
    costs = costs if costs is not None else pd.DataFrame()
    about = [f"Built by `make report` from {len(df)} result rows alone (nothing retrained) and the cost probe's "
             f"`cost.csv` ({'present' if len(costs) else 'absent: run make cost'}). Commit(s) "
             f"{', '.join(sorted(df.commit.dropna().astype(str).unique()))}; device(s) "
             f"{', '.join(sorted(df.device.dropna().astype(str).unique()))}; torch "
             f"{', '.join(sorted(df.torch.dropna().astype(str).unique()))}; preset(s) "
             f"{', '.join(sorted(df.preset.dropna().astype(str).unique()))}. Data: `rows.csv` (one line per row), "
             "`curves.csv` (every history, long form), `techniques.csv` (every comparison with none, all columns) "
             "beside this file.", ""]
    about = provenance_warning(df) + about + provenance_section(df) + failed_rows_section(df) + search_note(df)
    # one colour per technique in every figure, whatever the preset; the factorial's cells are not techniques of
    # their own (bench/effects.py draws them in their factors' colours)
    colours = technique_colours(df[~df.grid.astype(str).str.startswith(FACTORIAL_PREFIX)])
    df = fixed_grids(df)
    groups = preset_groups(df) or [[None]]
    if len(groups) == 1:
        summary, body, tables = render_preset(df, curves, out, costs, colours=colours)
        return "\n".join(["# regbench report"] + summary + about + body), comparisons_frame(tables)
    lines, frames = ["# regbench report", ""] + about, []
    for group in groups:  # never pooled across experiments: each group gets its own tables, claims and figures
        summary, body, tables = render_preset(df[df.preset.isin(group)], curves, out, costs,
                                              f"_{'_'.join(group)}", True, colours)
        lines += [f"# Preset `{' + '.join(group)}`", ""] + summary + body
        frames.append(comparisons_frame(tables).assign(presets="+".join(group)))
    return "\n".join(lines), pd.concat(frames, ignore_index=True)


def preset_groups(df: pd.DataFrame) -> list[list[str]]:
    """Presets whose rows ran the same experiment on some task (the same task config: e.g. `standard` is `quick`
    at more seeds, and a row's key does not hold the preset) are one group, reported together; presets of
    different sizes (quick, full) stay apart. Groups in order of their first preset's name."""
    configs = {p: set(zip(g.task, g.task_cfg)) for p, g in df.groupby(df.preset.astype(str))} if len(df) else {}
    groups: list[list[str]] = []
    for p in sorted(configs):
        joined = [g for g in groups if any(configs[p] & configs[q] for q in g)]
        merged = sorted({p, *(q for g in joined for q in g)})
        groups = [g for g in groups if g not in joined] + [merged]
    return sorted(groups)


def write_csvs(df: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    df.drop(columns=INTERNAL).to_csv(out / "rows.csv", index=False)
    curves.to_csv(out / "curves.csv", index=False)


def read_costs(out: Path) -> pd.DataFrame:
    """The cost probe's table (`make cost` writes <out>/cost.csv), or an empty frame when there is none."""
    path = out / "cost.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def build_report(results_dir: str | Path, out_dir: str | Path) -> Path:
    df = to_frame(read_rows_or_fail(results_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = curves_frame(df)
    write_csvs(df, curves, out)
    report = out / "REPORT.md"
    text, comparisons = render(df, curves, out, read_costs(out))
    comparisons.to_csv(out / "techniques.csv", index=False)
    report.write_text(text)
    return report


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
