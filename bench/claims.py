"""Claims: comparisons with `none`, measured cost words and the verdict on each of the article's claims."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis import (COMBOS, EQUIVALENCE, METRICS, SINGLES, STOPS_LEARNING, SWEEPS, TASKS, Paired,
                            article_cells, epoch_overhead, fmt, holm, judge, mean_ci, not_testable, never_acted, ok,
                            order_techniques, paired, target, tt_summary, tuned_cells, underfits)

COST_WORDS = ((1.10, "Negligible"), (1.50, "Low"), (math.inf, "Medium-High"))  # upper bounds of the cost ratio
SPARSE = 0.10  # "many weights exactly zero": at least this fraction
EPOCHS_SAVED = 0.10  # early stopping "saves epochs": at least this fraction of the budget


@dataclass
class Verdict:
    claim: str
    verdict: str  # supported / not supported / inconclusive / not testable here (+ reason)
    measure: str
    evidence: str


def combine(verdicts: list[str]) -> str:
    """One verdict from several parts (tasks, techniques): all supported -> supported; any not supported ->
    not supported; untestable parts are dropped; otherwise inconclusive."""
    words = [v.split(" (")[0] for v in verdicts if not v.startswith("not testable")]
    if not words:
        return "not testable here"
    if "not supported" in words:
        return "not supported" + (" (in part)" if "supported" in words or "inconclusive" in words else "")
    return "supported" if set(words) == {"supported"} else "inconclusive"


def with_reason(verdict: str, reason: str) -> str:
    return f"{verdict} ({reason})" if reason else verdict


# --------------------------------------------------------------------------- technique vs none


def versus_none(df: pd.DataFrame, task: str, tuned: bool = False) -> pd.DataFrame:
    """One line per technique of the article grid (at its default, or at the strength chosen on validation):
    test metric, paired difference to none with CIs, Holm p, verdict, cost, gap, train metric and flags."""
    art = article_cells(df, task)
    none = art[art.technique == "none"]
    if art.empty or none.empty:
        return pd.DataFrame()
    cells, chosen = tuned_cells(df, task) if tuned else (art, {})
    goal, m = target(none, task), METRICS[task]
    margin = EQUIVALENCE * abs(none.test_metric.mean())
    tt_none = tt_summary(none, goal, task)
    lines = []
    for tech in order_techniques(cells.technique.unique()):
        c = cells[cells.technique == tech]
        d = paired(c.set_index("seed").test_metric, none.set_index("seed").test_metric) if tech != "none" \
            else Paired(np.array([]))
        acted = never_acted(c, none)
        skip = not_testable(c, none, acted) if tech != "none" else ""
        cost = measured_cost(c, none, task, goal, tt_none)
        all_seeds = df[(df.task == task) & (df.grid == "article") & (df.technique == tech)
                       & (df.task_cfg == art.task_cfg.iloc[0])]
        lines.append({
            "technique": tech, "n": len(c), "test": mean_ci(c.test_metric), "d": d, "p": d.p if not skip else np.nan,
            "train": mean_ci(c.train_metric), "gap": mean_ci(c.gap), "acc_gap": mean_ci(c.acc_gap),
            "tt": cost["tt"], "cost": cost, "result_s": mean_ci(c.seconds_to_result),
            "underfits": tech != "none" and underfits(c, none, task), "never_acted": acted,
            "skip": skip, "not_ok": 0 if tuned else int((all_seeds.status != "ok").sum()),
            "chosen": chosen.get(tech, (None, None, 1, ""))})
    out = pd.DataFrame(lines)
    out["p_holm"] = holm(out.p)
    out["verdict"] = [effect_words(r, margin, m.higher) for r in out.itertuples()]
    return out


def effect_words(r, margin: float, higher: bool) -> str:
    if r.technique == "none":
        return "baseline (fixed epoch budget)"
    if r.skip:
        return f"not testable here ({r.skip})"
    verdict, reason = judge(r.d, r.p_holm, margin, 1 if higher else -1)
    if verdict == "supported":
        return "better than none"
    if reason == "significant effect the other way":
        return "worse than none"
    return "equivalent to none" if verdict == "not supported" else with_reason("inconclusive", reason)


# --------------------------------------------------------------------------- cost


def cost_word(ratio: float) -> str:
    return "n/a" if not np.isfinite(ratio) else next(w for bound, w in COST_WORDS if ratio < bound)


def measured_cost(cell: pd.DataFrame, none: pd.DataFrame, task: str, goal: dict, tt_none: dict) -> dict:
    """Cost ratio vs none. Measure: time to none's best validation metric (wall seconds, mean over the seeds that
    reached it) when at least half the seeds and one of none's reached it; else per-epoch step time."""
    tt = tt_summary(cell, goal, task)
    ratio_e, runs, noise_e = epoch_overhead(cell, none)
    if tt["reached"] and tt["reached"] >= tt["n"] / 2 and tt_none["reached"]:
        rel = [s.half / s.mean for s in (tt["seconds"], tt_none["seconds"]) if s.n >= 2 and s.mean > 0]
        ratio = tt["seconds"].mean / tt_none["seconds"].mean
        noise = math.sqrt(sum(r * r for r in rel)) if rel else float("nan")
        measure = "time to none's best val"
    else:
        ratio, noise = ratio_e, noise_e
        measure = "per-epoch step time (target not reached)" if tt["n"] else "per-epoch step time"
    return {"ratio": ratio, "noise": noise, "measure": measure, "word": cost_word(ratio), "tt": tt,
            "epoch_ratio": ratio_e, "epoch_runs": runs, "epoch_noise": noise_e}


def cost_verdict(cost: dict, claimed: str) -> str:
    """Supported when the ratio ± its noise stays inside the claimed band, not supported when it stays outside,
    inconclusive when a band edge lies within the noise (or there is no noise estimate). Negligible and Low are
    read as upper bounds ("at most Low"), Medium-High as a lower bound."""
    bounds = [0.0] + [b for b, _ in COST_WORDS]
    k = [w for _, w in COST_WORDS].index(claimed)
    lo_band, hi_band = (bounds[k] if claimed == COST_WORDS[-1][1] else 0.0), bounds[k + 1]
    r, noise = cost["ratio"], cost["noise"]
    if not np.isfinite(r):
        return "not testable here (no timing)"
    if not np.isfinite(noise):
        return "inconclusive (one measurement: no noise estimate)"
    lo, hi = r * (1 - noise), r * (1 + noise)
    if lo_band <= lo and hi < hi_band:
        return "supported"
    if hi < lo_band or lo >= hi_band:
        return "not supported"
    return "inconclusive (within timing noise)"


def tables_vs_none(df: pd.DataFrame) -> dict:
    """{(task, "default" | "tuned"): versus_none table}, computed once for the report."""
    return {(task, kind): versus_none(df, task, kind == "tuned") for task in TASKS for kind in ("default", "tuned")}


def claim_cost(tables: dict, techniques: tuple[str, ...], word: str) -> Verdict:
    parts, verdicts = [], []
    for task in TASKS:
        table = tables[task, "default"]
        for tech in techniques:
            if table.empty or tech not in set(table.technique):
                parts.append(f"{task}/{tech}: no rows")
                continue
            row = table[table.technique == tech].iloc[0]
            cost = row.cost
            v = f"not testable here ({row.skip})" if row.skip else cost_verdict(cost, word)
            verdicts.append(v)
            parts.append(f"{task}/{tech}: {fmt(cost['ratio'])}× ± {fmt(100 * cost['noise'], 2)}% by "
                         f"{cost['measure']} → {cost['word']}: {v}")
    return Verdict(f"{' and '.join(techniques)}: {word.lower()} cost", combine(verdicts) if verdicts else
                   "not testable here (no rows)", "cost ratio vs none", "; ".join(parts) or "no rows")


# --------------------------------------------------------------------------- claims from the article grid


def _pick_on_val(cells: pd.DataFrame, names, task: str) -> str | None:
    means = cells[cells.technique.isin(names)].groupby("technique").val_metric.mean()
    if means.empty:
        return None
    return means.idxmax() if METRICS[task].higher else means.idxmin()


def _paired_claim(claim: str, pairs: dict, direction: int) -> Verdict:
    """pairs: task -> (a cells, b cells, label, margin, skip reason); difference a - b in the test metric, claimed
    sign = direction x the metric's better direction; Holm across tasks."""
    names = list(pairs)
    ds = {t: paired(a.set_index("seed").test_metric, b.set_index("seed").test_metric)
          for t, (a, b, *_) in pairs.items()}
    adj = dict(zip(names, holm([np.nan if pairs[t][4] else ds[t].p for t in names])))
    parts, verdicts = [], []
    for t in names:
        a, b, label, margin, skip = pairs[t]
        sign = direction * (1 if METRICS[t].higher else -1)
        v = f"not testable here ({skip})" if skip else with_reason(*judge(ds[t], adj[t], margin, sign))
        verdicts.append(v)
        d = ds[t]
        parts.append(f"{t}: {label}: Δ {METRICS[t].words} = {fmt(d.mean)} [{fmt(d.lo)}, {fmt(d.hi)}], "
                     f"Holm p={fmt(adj[t], 2)}, n={d.n} → {v}")
    return Verdict(claim, combine(verdicts) if verdicts else "not testable here (no rows)",
                   "paired t-test on test metric, Holm across tasks", "; ".join(parts) or "no rows")


def claim_combination(df: pd.DataFrame) -> Verdict:
    pairs = {}
    for task in TASKS:
        cells = article_cells(df, task)
        single, combo = _pick_on_val(cells, SINGLES, task), _pick_on_val(cells, COMBOS, task)
        if single and combo:
            none = cells[cells.technique == "none"]
            pairs[task] = (cells[cells.technique == combo], cells[cells.technique == single],
                           f"best combination on val `{combo}` − best single on val `{single}`",
                           EQUIVALENCE * abs(none.test_metric.mean()), "")
    return _paired_claim("Combining techniques beats any single one (article defaults, picked on validation)",
                         pairs, +1)


def claim_l2_es(df: pd.DataFrame) -> Verdict:
    pairs = {}
    for task in TASKS:
        cells = article_cells(df, task)
        a, none = cells[cells.technique == "l2_es"], cells[cells.technique == "none"]
        if len(a) and len(none):
            pairs[task] = (a, none, "`l2_es` − `none`", EQUIVALENCE * abs(none.test_metric.mean()),
                           "; ".join(never_acted(a, none)))
    return _paired_claim("L2 + early stopping is a good start (beats no regularization)", pairs, +1)


def claim_dropout_bn(df: pd.DataFrame) -> Verdict:
    pairs = {}
    for task in TASKS:
        cells = article_cells(df, task)
        alone = _pick_on_val(cells, ("dropout", "batchnorm"), task)
        both = cells[cells.technique == "dropout_bn"]
        if alone and len(both):
            none = cells[cells.technique == "none"]
            pairs[task] = (both, cells[cells.technique == alone], f"`dropout_bn` − better alone on val `{alone}`",
                           EQUIVALENCE * abs(none.test_metric.mean()), "")
    return _paired_claim("Dropout and batch norm in the same layer conflict (worse than the better one alone)",
                         pairs, -1)


def es_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell with early stopping or an LR plateau: how often it acted and the epochs it saved."""
    cells = ok(df[df.has_es | df.has_plateau])
    lines = []
    for (task, grid, tech, settings), c in cells.groupby(["task", "grid", "technique", "settings"], sort=False):
        saved = (c.max_epochs - c.epochs_run) / c.max_epochs
        lines.append({"task": task, "grid": grid, "technique": tech, "value": c.value.iloc[0], "n": len(c),
                      "has_es": c.has_es.all(), "stopped": c.stopped_early.mean() if c.has_es.all() else np.nan,
                      "saved": mean_ci(saved), "budget": c.max_epochs.mean(), "epochs_run": mean_ci(c.epochs_run),
                      "lr_reduced": (c.lr_reductions > 0).mean() if c.has_plateau.all() else np.nan,
                      "reductions": c.lr_reductions.mean() if c.has_plateau.all() else np.nan})
    return pd.DataFrame(lines)


def claim_early_stopping(df: pd.DataFrame) -> Verdict:
    parts, verdicts = [], []
    table = es_table(df)
    for line in table[(table.grid == "article") & (table.technique == "early_stopping")].itertuples() \
            if len(table) else []:
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
    return Verdict("Early stopping saves epochs", combine(verdicts) if verdicts else "not testable here (no rows)",
                   f"epochs saved ≥ {EPOCHS_SAVED:.0%} of the budget, CI above 0", "; ".join(parts) or "no rows")


# --------------------------------------------------------------------------- claims from the other grids


def sparsity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Exact-zero and |w| < 1e-3 fractions of both L1 variants over the article grid and the l1 sweep."""
    cells = ok(df[df.technique.isin(["l1", "l1_prox"]) & df.grid.isin(["article", "l1"])])
    lines = [{"task": task, "technique": tech, "value": value, "n": len(c), "zero": mean_ci(c.frac_weights_zero),
              "small": mean_ci(c["frac_weights_below_1e-3"]), "test": mean_ci(c.test_metric)}
             for (task, tech, value), c in cells.groupby(["task", "technique", "value"])]
    return pd.DataFrame(lines)


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
        verdict = "inconclusive" if below else "not testable here (no rows)"
    return Verdict(f"L1 gives exact zeros (≥ {SPARSE:.0%} of weights)", verdict,
                   "exact-zero fraction, 95% CI lower bound", "; ".join(parts) or "no rows")


def claim_over_regularizing(df: pd.DataFrame) -> Verdict:
    parts, stops, learns = [], [], []
    for grid, (techs, _, words) in SWEEPS.items():
        for task in TASKS:
            art = article_cells(df, task)
            none = art[art.technique == "none"]
            for tech in techs if grid != "patience" else ():
                c = ok(df[(df.grid == grid) & (df.task == task) & (df.technique == tech)])
                if c.empty:
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
        verdict = "inconclusive" if parts else "not testable here (no sweep rows)"
    return Verdict("Over-regularizing stops learning", verdict,
                   f"strongest value's final train loss ≥ {STOPS_LEARNING}× the untrained loss (CI) while none's "
                   f"is below", "; ".join(parts) or "no rows")


def holm_verdicts(lines: list[dict]) -> pd.DataFrame:
    """One line per comparison (its paired difference `d` and equivalence `margin`), plus Holm-adjusted p across
    the lines and the verdict each gets."""
    out = pd.DataFrame(lines)
    if len(out):
        out["p_holm"] = holm([d.p for d in out.d])
        out["verdict"] = [with_reason(*judge(r.d, r.p_holm, r.margin)) for r in out.itertuples()]
    return out


def depth_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per depth: trainability (final train loss, none − batchnorm, paired by seed; Holm across depths) and the
    test MSE beside it."""
    cells = ok(df[(df.grid == "depth") & (df.task == "mlp")])
    lines = []
    for depth, c in cells.groupby("depth"):
        none, bn = c[c.technique == "none"], c[c.technique == "batchnorm"]
        if none.empty or bn.empty:
            continue
        lines.append({"depth": depth, "none_train": mean_ci(none.train_loss), "bn_train": mean_ci(bn.train_loss),
                      "d": paired(none.set_index("seed").train_loss, bn.set_index("seed").train_loss),
                      "margin": EQUIVALENCE * abs(none.train_loss.mean()),
                      "none_test": mean_ci(none.test_loss), "bn_test": mean_ci(bn.test_loss)})
    return holm_verdicts(lines)


def claim_bn_depth(df: pd.DataFrame) -> Verdict:
    table = depth_table(df)
    claim = "Batch norm is for deep networks: its trainability advantage appears only at depth ≥ 10"
    if table.empty:
        return Verdict(claim, "not testable here (no depth rows)", "final train loss", "no rows")
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
    return Verdict(claim, verdict, "final train loss after the fixed budget, paired by seed, Holm across depths",
                   "; ".join(parts))


def train_size_cells(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The equal-steps train_size grid plus the article grid's none/augment CIFAR cells when their steps match."""
    ts = ok(df[(df.grid == "train_size") & (df.task == "cifar")])
    if ts.empty:
        return ts, "no train_size rows"
    art = article_cells(df, "cifar")
    art = art[art.technique.isin(["none", "augment"])]
    art = art[art.task_base == ts.task_base.iloc[0]]
    steps = ts.steps.dropna().unique()
    art_steps = (art.epochs * np.ceil(art.n_train / art.batch_size)).unique()
    if len(art) and len(steps) == 1 and len(art_steps) == 1 and art_steps[0] == steps[0]:
        return pd.concat([ts, art]), f"equal optimizer steps ({int(steps[0])}) at every size"
    return ts, "article cells left out (their optimizer steps differ from the train_size grid's)"


def train_size_table(df: pd.DataFrame) -> pd.DataFrame:
    cells, _ = train_size_cells(df)
    lines = []
    for n_train, c in cells.groupby("n_train"):
        none, aug = c[c.technique == "none"], c[c.technique == "augment"]
        if len(none) and len(aug):
            lines.append({"n_train": n_train, "epochs": none.epochs.iloc[0], "none": mean_ci(none.test_acc),
                          "augment": mean_ci(aug.test_acc), "margin": EQUIVALENCE * abs(none.test_acc.mean()),
                          "d": paired(aug.set_index("seed").test_acc, none.set_index("seed").test_acc)})
    return holm_verdicts(lines)


def claim_augment_small_data(df: pd.DataFrame) -> Verdict:
    table, (_, note) = train_size_table(df), train_size_cells(df)
    claim = "Augmentation matters below 10,000 examples per class"
    if table.empty:
        return Verdict(claim, f"not testable here ({note})", "CIFAR test accuracy", "no rows")
    parts = [f"{int(r.n_train) // 10}/class: augment − none = {fmt(r.d.mean)} [{fmt(r.d.lo)}, {fmt(r.d.hi)}], "
             f"Holm p={fmt(r.p_holm, 2)} → {r.verdict}" for r in table.itertuples()]
    return Verdict(claim, combine(list(table.verdict)), "paired t-test per size, Holm across sizes",
                   "; ".join(parts) + f"; {note}; every size here is below 10k/class, so only that half is tested")


def all_claims(df: pd.DataFrame, tables: dict | None = None) -> list[Verdict]:
    tables = tables if tables is not None else tables_vs_none(df)
    return [claim_cost(tables, ("l2", "early_stopping"), "Negligible"),
            claim_cost(tables, ("dropout", "batchnorm"), "Low"),
            claim_cost(tables, ("augment",), "Medium-High"),
            claim_l1_sparsity(df), claim_combination(df), claim_over_regularizing(df), claim_bn_depth(df),
            claim_dropout_bn(df), claim_augment_small_data(df), claim_early_stopping(df), claim_l2_es(df)]
