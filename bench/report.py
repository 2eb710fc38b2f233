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
from bench.comparisons import COST_WORDS, tables_vs_none
from bench.figures import save_figures, technique_colours
from bench.measures import UNDERFIT_ACC, UNDERFIT_FLOOR, never_acted
from bench.provenance import failed_rows_section, provenance_section, provenance_warning
from bench.selection import DEFAULT_GRIDS, default_cells, fixed_grids, main_config, ok, sweep_grids
from bench.stats import ALPHA, BOOTSTRAP, EQUIVALENCE, POWER, fmt
from bench.tables import article_table, headline, md_table, other_sections, side_by_side, sweep_section
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
        f"- Effect words: better/worse = Holm p < {ALPHA} in that direction; equivalent = the 90% CI lies within "
        f"±{EQUIVALENCE:.0%} of none's mean (two one-sided tests); otherwise inconclusive, with the minimal "
        f"detectable difference at {POWER:.0%} power (two-sided α={ALPHA}, sd of the paired differences) when "
        "the effect seen is below it (underpowered).",
        "- Tuned: each technique with a sweep grid is set to the strength with the best mean validation metric "
        "among its sweep values and its article default, then reported on test; test values never enter the "
        "choice. Techniques without a sweep stay at their default; `none` trains for the fixed epoch budget.",
        f"- Underfits: CIFAR train accuracy more than {UNDERFIT_ACC:.2f} below none's; MLP train MSE above "
        f"{UNDERFIT_FLOOR}× the noise floor and above none's (a model that learned the teacher sits near the floor "
        "on its own training set). An underfitting technique is never credited with a smaller gap; the article "
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
        "claimed = at most Low, 'Medium-High' = at least Medium-High); a claim "
        "uses the time-to-target ratio (its noise: the relative 95% CIs of both means) when at least half of the "
        "technique's seeds and one of none's reached the target, else the per-epoch ratio, and "
        "is supported/not supported only when ratio ± noise stays inside/outside the claimed band.",
        "- Not testable here: the regularizer never acted (early stopping never stopped, the LR never changed, or "
        "rows identical to none's), or the rows are missing.", ""]




def render_preset(df: pd.DataFrame, curves: pd.DataFrame, out: Path, suffix: str = "", nested: bool = False,
                  colours: dict | None = None) -> list[str]:
    """The report body for rows of one preset (headings one level down when nested under a preset heading)."""
    tables = tables_vs_none(df)
    figures = save_figures(df, tables, curves[curves.key.isin(set(df.key))], out, suffix, colours)

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
    for task in tasks_of(df):
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


def search_note(df: pd.DataFrame) -> list[str]:
    search = df[~df.index.isin(fixed_grids(df).index)]
    if search.empty:
        return []
    return [f"_{len(search)} rows of hyperparameter-search grids ({', '.join(sorted(search.grid.unique()))}) are "
            "left out below: search trials are never pooled with the fixed grids._", ""]


def render(df: pd.DataFrame, curves: pd.DataFrame, out: Path) -> str:
    lines = ["# regbench report", ""] + provenance_warning(df) + [
             f"Built by `make report` from {len(df)} result rows alone (nothing retrained). Commit(s) "
             f"{', '.join(sorted(df.commit.dropna().astype(str).unique()))}; device(s) "
             f"{', '.join(sorted(df.device.dropna().astype(str).unique()))}; torch "
             f"{', '.join(sorted(df.torch.dropna().astype(str).unique()))}; preset(s) "
             f"{', '.join(sorted(df.preset.dropna().astype(str).unique()))}. Data: `rows.csv` (one line per row) and "
             "`curves.csv` (every history, long form) beside this file.", ""]
    lines += provenance_section(df) + failed_rows_section(df) + search_note(df)
    colours = technique_colours(df)  # one colour per technique in every figure, whatever the preset
    df = fixed_grids(df)
    presets = sorted(df.preset.dropna().astype(str).unique()) or [None]
    for preset in presets:  # never pooled: each preset gets its own tables, claims and figures
        sub = df if preset is None else df[df.preset == preset]
        if len(presets) > 1:
            lines += [f"# Preset `{preset}`", ""]
        one = len(presets) == 1
        lines += render_preset(sub, curves, out, "" if one else f"_{preset}", not one, colours)
    return "\n".join(lines)


def write_csvs(df: pd.DataFrame, curves: pd.DataFrame, out: Path) -> None:
    df.drop(columns=INTERNAL).to_csv(out / "rows.csv", index=False)
    curves.to_csv(out / "curves.csv", index=False)


def build_report(results_dir: str | Path, out_dir: str | Path) -> Path:
    df = to_frame(read_rows_or_fail(results_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = curves_frame(df)
    write_csvs(df, curves, out)
    report = out / "REPORT.md"
    report.write_text(render(df, curves, out))
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
