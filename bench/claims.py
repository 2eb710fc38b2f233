"""Claims: one verdict per claim of the article, from the tables vs none and the other grids' tables."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis import metric, tasks_of
from bench.claim_tables import depth_table, es_table, sparsity_table, train_size_cells, train_size_table
from bench.comparisons import band_verdict, cost_word, tables_vs_none
from bench.measures import STOPS_LEARNING, never_acted
from bench.selection import DEFAULT_GRIDS, best_on_validation, default_cells, ok, sweep_grids, sweep_words
from bench.stats import fmt, holm, judge, mean_ci, paired, practical_margin, with_reason
from bench.techniques import BASELINE, combinations, only_epoch_end, singles

SPARSE = 0.10  # "many weights exactly zero": at least this fraction
EPOCHS_SAVED = 0.10  # early stopping "saves epochs": at least this fraction of the budget
NOT_TESTED = "not tested in this preset"  # the rows a claim needs are absent


@dataclass
class Verdict:
    claim: str
    verdict: str  # supported / not supported / inconclusive / not testable here / not tested in this preset
    measure: str
    evidence: str
    short: str = ""  # the numbers in a few words, for the summary at the top of the report


def ci_text(lo: float, hi: float) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]"


def untested(verdict: str) -> bool:
    return verdict.startswith(("not testable", NOT_TESTED))


def combine(verdicts: list[str]) -> str:
    """One verdict from several parts (tasks, techniques): all supported -> supported; any not supported ->
    not supported; untestable and untested parts are dropped; otherwise inconclusive."""
    words = [v.split(" (")[0] for v in verdicts if not untested(v)]
    if not words:
        return NOT_TESTED if verdicts and all(v.startswith(NOT_TESTED) for v in verdicts) else "not testable here"
    if "not supported" in words:
        return "not supported" + (" (in part)" if "supported" in words or "inconclusive" in words else "")
    return "supported" if set(words) == {"supported"} else "inconclusive"


def claim_cost(costs: pd.DataFrame, tasks: list[str], techniques: tuple[str, ...], word: str) -> Verdict:
    """Judged from the cost probe (results/cost.csv): the interleaved step-time ratio's 95% CI against the claimed
    band; its FLOP ratio and, for techniques that read validation, the per-epoch ratio with that pass are shown."""
    parts, verdicts, short = [], [], []
    for task in tasks:
        for tech in techniques:
            probe = costs[(costs.task == task) & (costs.technique == tech)] if len(costs) else costs
            if probe.empty:
                parts.append(f"{task}/{tech}: not probed")
                verdicts.append(f"{NOT_TESTED} (not probed)")
                continue
            r = probe.iloc[0]
            v = band_verdict(r.ci_low, r.ci_high, word)
            per_epoch = (f"; per epoch with its validation pass {fmt(r.epoch_time_ratio)}×"
                         if str(r.get("uses_validation")) == "True" else "")
            verdicts.append(v)
            parts.append(f"{task}/{tech}: {fmt(r.step_time_ratio)}× the step time [{fmt(r.ci_low)}, {fmt(r.ci_high)}] "
                         f"and {fmt(r.flop_ratio)}× the FLOPs{per_epoch} → {cost_word(r.step_time_ratio)}: {v}")
            short.append(f"{task}/{tech} {fmt(r.step_time_ratio)}× [{fmt(r.ci_low)}, {fmt(r.ci_high)}]")
    tested = [v for v in verdicts if not untested(v)]
    return Verdict(f"{' and '.join(techniques)}: {word.lower()} cost",
                   combine(verdicts) if tested else f"{NOT_TESTED} (no cost probe: make cost)",
                   "cost probe: step time ×none, 95% CI vs the claimed band", "; ".join(parts) or "no rows",
                   "; ".join(short) or "not probed")


# --------------------------------------------------------------------------- paired claims on the default cells


def _margin(cells: pd.DataFrame, task: str) -> float:
    return practical_margin(metric(task).higher, cells[cells.technique == BASELINE].test_metric.mean())


def _paired_claim(claim: str, pairs: dict, direction: int, absent: str) -> Verdict:
    """pairs: task -> (a cells, b cells, label, margin, skip reason); difference a - b in the test metric, claimed
    sign = direction x the metric's better direction; Holm across tasks. absent: why there is no pair at all."""
    names = list(pairs)
    ds = {t: paired(a.set_index("seed").test_metric, b.set_index("seed").test_metric)
          for t, (a, b, *_) in pairs.items()}
    adj = dict(zip(names, holm([np.nan if pairs[t][4] else ds[t].p for t in names])))
    parts, verdicts, short = [], [], []
    for t in names:
        a, b, label, margin, skip = pairs[t]
        sign = direction * (1 if metric(t).higher else -1)
        v = f"not testable here ({skip})" if skip else with_reason(*judge(ds[t], adj[t], margin, sign))
        verdicts.append(v)
        d = ds[t]
        parts.append(f"{t}: {label}: Δ {metric(t).words} = {fmt(d.mean)} [{fmt(d.lo)}, {fmt(d.hi)}], "
                     f"Holm p={fmt(adj[t], 2)}, n={d.n} → {v}")
        short.append(f"{t} {fmt(d.mean)} {ci_text(d.lo, d.hi)} n={d.n}, MDD {fmt(d.mdd)}")
    return Verdict(claim, combine(verdicts) if verdicts else f"{NOT_TESTED} ({absent})",
                   "paired t-test on test metric, Holm across tasks", "; ".join(parts) or "no rows",
                   "; ".join(short) or "no rows")


def claim_combination(df: pd.DataFrame) -> Verdict:
    """Singles and combinations are told by the rows' pieces, so new techniques take part as they appear."""
    pairs = {}
    for task in tasks_of(df):
        cells = default_cells(df, task)
        single = best_on_validation(cells, singles(cells), task)
        combo = best_on_validation(cells, combinations(cells), task)
        if single and combo:
            pairs[task] = (cells[cells.technique == combo], cells[cells.technique == single],
                           f"best combination on val `{combo}` − best single on val `{single}`", _margin(cells, task), "")
    return _paired_claim("Combining techniques beats any single one (article defaults, picked on validation)",
                         pairs, +1, "no single technique or no combination")


def claim_l2_es(df: pd.DataFrame) -> Verdict:
    pairs = {}
    for task in tasks_of(df):
        cells = default_cells(df, task)
        a, none = cells[cells.technique == "l2_es"], cells[cells.technique == BASELINE]
        if len(a) and len(none):
            pairs[task] = (a, none, "`l2_es` − `none`", _margin(cells, task), "; ".join(never_acted(a, none)))
    return _paired_claim("L2 + early stopping is a good start (beats no regularization)", pairs, +1,
                         "no `l2_es` or `none` rows")


def claim_dropout_bn(df: pd.DataFrame) -> Verdict:
    pairs = {}
    for task in tasks_of(df):
        cells = default_cells(df, task)
        alone = best_on_validation(cells, ("dropout", "batchnorm"), task)
        both = cells[cells.technique == "dropout_bn"]
        if alone and len(both):
            pairs[task] = (both, cells[cells.technique == alone], f"`dropout_bn` − better alone on val `{alone}`",
                           _margin(cells, task), "")
    return _paired_claim("Dropout and batch norm in the same layer conflict (worse than the better one alone)",
                         pairs, -1, "no `dropout_bn` rows, or neither `dropout` nor `batchnorm`")


def claim_early_stopping(df: pd.DataFrame) -> Verdict:
    parts, verdicts = [], []
    table = es_table(df)
    lines = table[table.grid.isin(DEFAULT_GRIDS) & (table.technique == "early_stopping")] if len(table) else table
    for line in lines.itertuples():
        s = line.saved
        if line.stopped == 0:
            v = "not testable here (early stopping never stopped)"
        elif s.n < 2:
            v = "inconclusive (n=1)"
        elif s.mean - s.half > 0 and s.mean >= EPOCHS_SAVED:
            v = "supported"
        elif s.mean + s.half < EPOCHS_SAVED:
            v = "not supported"
        else:
            v = "inconclusive (CI spans the threshold)"
        verdicts.append(v)
        parts.append(f"{line.task}: stopped in {line.stopped:.0%} of seeds, ran {line.epochs_run} of "
                     f"{fmt(line.budget)} epochs, saved {fmt(100 * s.mean, 2)}% ± {fmt(100 * s.half, 2)}% → {v}")
    short = [f"{line.task} saved {fmt(100 * line.saved.mean, 2)}% ± {fmt(100 * line.saved.half, 2)}% of the budget, "
             f"n={line.saved.n}" for line in lines.itertuples()]
    return Verdict("Early stopping saves epochs",
                   combine(verdicts) if verdicts else f"{NOT_TESTED} (no `early_stopping` rows)",
                   f"epochs saved ≥ {EPOCHS_SAVED:.0%} of the budget, CI above 0", "; ".join(parts) or "no rows",
                   "; ".join(short) or "no rows")


# --------------------------------------------------------------------------- claims from the other grids


def _bounds(s) -> tuple[float, float]:
    return (s.mean, s.mean) if s.n < 2 else (s.mean - s.half, s.mean + s.half)


def claim_l1_sparsity(df: pd.DataFrame) -> Verdict:
    table, parts, reached, below = sparsity_table(df), [], [], []
    for (task, tech), t in (table.groupby(["task", "technique"]) if len(table) else []):
        hits = [r for r in t.itertuples() if _bounds(r.zero)[0] >= SPARSE]
        below += [_bounds(r.zero)[1] < SPARSE for r in t.itertuples()]
        best = t.loc[t.zero.map(lambda s: s.mean).idxmax()]
        if hits:
            reached.append(f"{tech} ({task}) from strength {fmt(hits[0].value)}")
        parts.append(f"{task}/{tech}: " + (f"≥ {SPARSE:.0%} exact zeros from strength {fmt(hits[0].value)}" if hits
                     else f"at most {fmt(100 * best.zero.mean, 2)}% exact zeros (strength {fmt(best.value)})"))
    if reached:
        verdict = f"supported ({'; '.join(reached)})"
    elif below and all(below):
        verdict = "not supported (every variant and strength below the threshold, CI included)"
    else:
        verdict = "inconclusive" if below else f"{NOT_TESTED} (no L1 rows)"
    return Verdict(f"L1 gives exact zeros (≥ {SPARSE:.0%} of weights)", verdict,
                   "exact-zero fraction, 95% CI lower bound", "; ".join(parts) or "no rows",
                   "; ".join(parts) or "no rows")


def claim_over_regularizing(df: pd.DataFrame) -> Verdict:
    """Every sweep of a strength (not of an epoch-end piece such as patience) that goes above the technique's
    default: does its strongest value stop learning while none does not? A sweep only below the default (e.g.
    shorter EMA horizons) says nothing about over-regularizing and is left out."""
    parts, stops, learns = [], [], []
    for grid, techs in sweep_grids(df).items():
        words = sweep_words(df, grid)
        for task in tasks_of(df):
            art = default_cells(df, task)
            none = art[art.technique == BASELINE]
            for tech in techs:
                c = ok(df[(df.grid == grid) & (df.task == task) & (df.technique == tech)])
                default = art[art.technique == tech].value.dropna()
                if c.empty or only_epoch_end(c) or (len(default) and c.value.max() <= default.max()):
                    continue
                top = c[c.value == c.value.max()]
                lo, hi = _bounds(mean_ci(top.train_loss / top.initial_val_loss))
                _, none_hi = _bounds(mean_ci(none.train_loss / none.initial_val_loss))
                stops.append(lo >= STOPS_LEARNING and none_hi < STOPS_LEARNING)
                learns.append(hi < STOPS_LEARNING)
                parts.append(f"{task}/{tech} at {words} {fmt(top.value.iloc[0])}: final train loss = "
                             f"{fmt((top.train_loss / top.initial_val_loss).mean())}× the untrained loss")
    if any(stops):
        verdict = "supported"
    elif learns and all(learns):
        verdict = "inconclusive (the strongest values tried still learn)"
    else:
        verdict = "inconclusive" if parts else f"{NOT_TESTED} (no sweep rows)"
    stopped = [p for p, stop in zip(parts, stops) if stop]
    return Verdict("Over-regularizing stops learning", verdict,
                   f"strongest value's final train loss ≥ {STOPS_LEARNING}× the untrained loss (CI) while none's "
                   f"is below", "; ".join(parts) or "no rows",
                   "; ".join(p.split(": final train loss = ")[0] + f" stops learning" for p in stopped)
                   or f"{len(parts)} sweeps' strongest values still learn")


def claim_bn_depth(df: pd.DataFrame) -> Verdict:
    table = depth_table(df)
    claim = "Batch norm is for deep networks: its trainability advantage appears only at depth ≥ 10"
    if table.empty:
        return Verdict(claim, f"{NOT_TESTED} (no depth rows)", "final train loss", "no rows")
    deep, shallow = table[table.depth >= 10], table[table.depth < 10]
    helps = lambda t: [int(r.depth) for r in t.itertuples() if r.verdict == "supported"]  # noqa: E731
    if helps(shallow):
        verdict = f"not supported (advantage already at depth {helps(shallow)})"
    elif helps(deep):
        verdict = f"supported (advantage at depth {helps(deep)}, none below 10)"
    elif len(deep) and all(v.startswith("not supported") for v in deep.verdict):
        verdict = "not supported (no advantage at depth ≥ 10)"
    else:
        verdict = "inconclusive" if len(deep) else "not testable here (no depth ≥ 10)"
    parts = [f"depth {int(r.depth)}: train loss none {r.none_train} vs BN {r.bn_train}, Holm p={fmt(r.p_holm, 2)} "
             f"→ {r.verdict}" for r in table.itertuples()]
    short = [f"depth {int(r.depth)}: {r.verdict.split(' (')[0]}" for r in table.itertuples()]
    return Verdict(claim, verdict, "final train loss after the fixed budget, paired by seed, Holm across depths",
                   "; ".join(parts), "BN trains better? " + ", ".join(short))


def claim_augment_small_data(df: pd.DataFrame) -> Verdict:
    table, (_, note) = train_size_table(df), train_size_cells(df)
    claim = "Augmentation matters below 10,000 examples per class"
    if table.empty:
        verdict = f"{NOT_TESTED} ({note})" if note == "no train_size rows" else f"not testable here ({note})"
        return Verdict(claim, verdict, "CIFAR test accuracy", "no rows")
    parts = [f"{int(r.n_train) // 10}/class: augment − none = {fmt(r.d.mean)} [{fmt(r.d.lo)}, {fmt(r.d.hi)}], "
             f"Holm p={fmt(r.p_holm, 2)} → {r.verdict}" for r in table.itertuples()]
    short = [f"{int(r.n_train) // 10}/class {fmt(r.d.mean)} {ci_text(r.d.lo, r.d.hi)} n={r.d.n}"
             for r in table.itertuples()]
    return Verdict(claim, combine(list(table.verdict)), "paired t-test per size, Holm across sizes",
                   "; ".join(parts) + f"; {note}; every size here is below 10k/class, so only that half is tested",
                   "; ".join(short) + " (all below 10k/class)")


def all_claims(df: pd.DataFrame, tables: dict | None = None, costs: pd.DataFrame | None = None) -> list[Verdict]:
    tables = tables if tables is not None else tables_vs_none(df)
    costs = costs if costs is not None else pd.DataFrame()
    tasks = [t for t in tasks_of(df) if (df.task == t).any()]
    return [claim_cost(costs, tasks, ("l2", "early_stopping"), "Negligible"),
            claim_cost(costs, tasks, ("dropout", "batchnorm"), "Low"),
            claim_cost(costs, tasks, ("augment",), "Medium-High"),
            claim_l1_sparsity(df), claim_combination(df), claim_over_regularizing(df), claim_bn_depth(df),
            claim_dropout_bn(df), claim_augment_small_data(df), claim_early_stopping(df), claim_l2_es(df)]
