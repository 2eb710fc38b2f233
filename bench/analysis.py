"""Analysis: schema-v2 result rows -> tidy frames, statistics, validation-only selection, time-to-target, flags."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bench.results import SchemaError, load_rows  # noqa: F401 (SchemaError: for the report's callers)

TASKS = ("mlp", "cifar")
SINGLES = ("l2", "adamw", "l1", "l1_prox", "dropout", "batchnorm", "augment", "early_stopping", "lr_plateau")
COMBOS = ("l2_es", "l2_es_dropout", "dropout_bn", "recommended", "all")
ALPHA, POWER = 0.05, 0.80  # two-sided test level; power behind the minimal detectable difference
EQUIVALENCE = 0.02  # "equivalent to none": the 90% CI of the difference lies within ±2% of none's mean
UNDERFIT_ACC = 0.10  # CIFAR: train accuracy more than this below none's
UNDERFIT_FLOOR = 1.5  # MLP: train MSE above this x the noise floor (and above none's)
STOPS_LEARNING = 0.8  # final train loss >= this x the untrained model's validation loss
BOOTSTRAP = dict(n_resamples=2000, method="percentile", random_state=0)
SWEEPS = {  # grid -> (techniques, strength column, words)
    "l2": (("l2",), "weight_decay", "L2 weight decay (coupled)"),
    "adamw": (("adamw",), "weight_decay", "AdamW weight decay (decoupled)"),
    "l1": (("l1", "l1_prox"), "l1_strength", "L1 strength"),
    "dropout": (("dropout",), "dropout_p", "dropout probability"),
    "augment": (("augment",), "augment_strength", "augmentation strength"),
    "patience": (("early_stopping",), "patience_frac", "early-stopping patience (fraction of the budget)"),
}
TUNED_BY = {tech: grid for grid, (techs, _, _) in SWEEPS.items() for tech in techs}
PATH_FIELDS = ("data_path", "cache_dir")  # where data lie, not what is learned
SIZE_FIELDS = ("depth", "n_train", "epochs", "steps")  # swept by the depth and train_size grids


@dataclass(frozen=True)
class Metric:
    test: str
    val: str
    train: str
    higher: bool
    words: str


METRICS = {"mlp": Metric("test_loss", "val_loss", "train_loss", False, "test MSE"),
           "cifar": Metric("test_acc", "val_acc", "train_acc", True, "test accuracy")}


class NoRows(RuntimeError):
    """The results folder holds no readable row."""


# --------------------------------------------------------------------------- reading


def read_rows(results_dir: str | Path) -> list[dict]:
    """Every current-schema row under results_dir (bench.results.load_rows: broken, foreign and older rows are
    skipped with a warning, a newer schema raises SchemaError)."""
    return load_rows(results_dir)


def _get(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def settings_text(technique: dict) -> str:
    parts = [f"{piece}(" + ", ".join(f"{k}={v}" for k, v in values.items()) + ")"
             for piece, values in technique.items() if piece != "name" and isinstance(values, dict)]
    return "; ".join(parts) or "-"


def _signature(task_cfg: dict, drop: tuple) -> str:
    return json.dumps({k: v for k, v in task_cfg.items() if k not in drop}, sort_keys=True, default=str)


FINAL = ("train_loss", "val_loss", "test_loss", "gap", "train_acc", "val_acc", "test_acc", "acc_gap")
TOP = ("key", "task", "technique", "grid", "preset", "seed", "status", "diverged_epoch", "error", "training_mode",
       "best_epoch", "epochs_run", "max_epochs", "stopped_early", "lr_reductions", "uses_validation",
       "train_seconds", "val_seconds_per_epoch", "hook_seconds_per_epoch", "seconds_to_result", "cell_run_id",
       "n_seeds_stacked", "epoch_seconds_median", "epoch_seconds_iqr", "samples_per_s", "initial_val_loss",
       "noise_floor", "n_params", "weight_l2_norm", "frac_weights_zero", "frac_weights_below_1e-3",
       "peak_memory_mb", "peak_memory_kind", "data_source", "data_resampled")


def row_record(r: dict) -> dict:
    """The flat fields of one row (history kept as a list under 'history')."""
    cfg, final = r.get("config") or {}, r.get("final") or {}
    task_cfg, tech = cfg.get("task") or {}, cfg.get("technique") or {}
    rec = {k: r.get(k) for k in TOP}
    rec["grid"] = rec["grid"] or cfg.get("grid") or "adhoc"
    rec.update({k: final.get(k) for k in FINAL})
    rec.update(commit=_get(r, "env", "git_commit"), device=_get(r, "env", "device"), torch=_get(r, "env", "torch"),
               device_type=cfg.get("device_type"), depth=task_cfg.get("depth"), n_train=task_cfg.get("n_train"),
               epochs=task_cfg.get("epochs"), steps=task_cfg.get("steps"), batch_size=task_cfg.get("batch_size"),
               weight_decay=_get(tech, "l2", "weight_decay"), l1_strength=_get(tech, "l1", "strength"),
               dropout_p=_get(tech, "dropout", "p"), augment_strength=_get(tech, "augment", "strength"),
               patience_frac=_get(tech, "early_stopping", "patience_frac"),
               has_es=tech.get("early_stopping") is not None, has_plateau=tech.get("lr_plateau") is not None,
               settings=settings_text(tech), task_cfg=_signature(task_cfg, PATH_FIELDS),
               task_base=_signature(task_cfg, PATH_FIELDS + SIZE_FIELDS))
    grid = TUNED_BY.get(rec["technique"])
    rec["value"] = rec[SWEEPS[grid][1]] if grid else None
    m = METRICS.get(rec["task"])
    for kind in ("test", "val", "train"):
        rec[f"{kind}_metric"] = final.get(getattr(m, kind)) if m else None
    rec["history"] = r.get("history") or []
    return rec


COLUMNS = list(row_record({}).keys())


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """One line per (cell, seed)."""
    df = pd.DataFrame.from_records([row_record(r) for r in rows], columns=COLUMNS)
    for col in ("stopped_early", "uses_validation", "has_es", "has_plateau"):
        df[col] = df[col].astype("boolean").fillna(False).astype(bool)
    return df


def curves_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Long form of every history: key, task, technique, grid, value, depth, n_train, seed, epoch, split, loss, acc.
    Splits: val and train_running every epoch; train and test at the curve epochs only."""
    recs = []
    for row in df.itertuples():
        ident = (row.key, row.task, row.technique, row.grid, row.value, row.depth, row.n_train, row.seed)
        for h in row.history:
            e = h.get("epoch")
            recs.append((*ident, e, "val", h.get("val_loss"), h.get("val_acc")))
            recs.append((*ident, e, "train_running", h.get("train_loss_running"), None))
            for split in ("train", "test"):
                if f"{split}_loss" in h:
                    recs.append((*ident, e, split, h.get(f"{split}_loss"), h.get(f"{split}_acc")))
    cols = ["key", "task", "technique", "grid", "value", "depth", "n_train", "seed", "epoch", "split", "loss", "acc"]
    return pd.DataFrame.from_records(recs, columns=cols)


# --------------------------------------------------------------------------- cells


def ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.status == "ok"]


def main_config(df: pd.DataFrame, task: str, grid: str = "article") -> str | None:
    """The article grid's task config for a task (the one with most rows when several); without article rows,
    the given grid's."""
    for g in ("article", grid):
        rows = df[(df.grid == g) & (df.task == task)]
        if len(rows):
            return rows.task_cfg.value_counts().index[0]
    return None


def article_cells(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """ok rows of the article grid for a task, at its main task config."""
    cfg = main_config(df, task)
    return ok(df[(df.grid == "article") & (df.task == task) & (df.task_cfg == cfg)])


def order_techniques(names) -> list[str]:
    known = ("none",) + SINGLES + COMBOS
    return [t for t in known if t in set(names)] + sorted(set(names) - set(known))


# --------------------------------------------------------------------------- statistics


def fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


@dataclass
class Stat:
    mean: float
    half: float  # half width of the 95% t CI; nan when n < 2
    n: int

    def __str__(self) -> str:
        if self.n == 0 or not np.isfinite(self.mean):
            return "n/a"
        return f"{fmt(self.mean)} (n=1)" if self.n < 2 else f"{fmt(self.mean)} ± {fmt(self.half, 2)}"


def mean_ci(values) -> Stat:
    v = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna().to_numpy(dtype=float)
    if len(v) < 2:
        return Stat(float(v[0]) if len(v) else float("nan"), float("nan"), len(v))
    return Stat(float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))), len(v))


def min_detectable(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true mean difference a two-sided paired t-test at `alpha` detects with `power` (noncentral t)."""
    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return float("nan")
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def shortfall(d):
        ncp = d * math.sqrt(n)
        return stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp) - power

    hi = 1.0
    while shortfall(hi) < 0 and hi < 1e3:  # bracket the root (nct is NaN far out)
        hi *= 2
    approx = (crit + stats.t.ppf(power, df)) / math.sqrt(n)  # the usual closed-form approximation
    found = shortfall(hi) >= 0 and np.isfinite(shortfall(hi))
    return (optimize.brentq(shortfall, 1e-6, hi) if found else approx) * sd


@dataclass
class Paired:
    """Paired differences a - b over the seeds both have."""
    diffs: np.ndarray
    mean: float = float("nan")
    lo: float = float("nan")  # 95% t CI
    hi: float = float("nan")
    lo90: float = float("nan")  # 90% t CI (equivalence test)
    hi90: float = float("nan")
    boot_lo: float = float("nan")  # 95% bootstrap percentile CI
    boot_hi: float = float("nan")
    p: float = float("nan")  # paired t-test
    sd: float = float("nan")
    mdd: float = float("nan")

    @property
    def n(self) -> int:
        return len(self.diffs)


def paired(a: pd.Series, b: pd.Series) -> Paired:
    """a and b are indexed by seed."""
    both = pd.concat([a.groupby(level=0).mean(), b.groupby(level=0).mean()], axis=1, keys=["a", "b"]).dropna()
    d = (both.a - both.b).to_numpy(dtype=float)
    out = Paired(d, mean=float(d.mean()) if len(d) else float("nan"))
    if len(d) < 2:
        return out
    out.sd = float(d.std(ddof=1))
    if out.sd <= 1e-12 * max(1.0, abs(out.mean)):
        out.lo = out.hi = out.lo90 = out.hi90 = out.boot_lo = out.boot_hi = out.mean
        return out
    se, df = out.sd / math.sqrt(len(d)), len(d) - 1
    out.lo, out.hi = out.mean - stats.t.ppf(0.975, df) * se, out.mean + stats.t.ppf(0.975, df) * se
    out.lo90, out.hi90 = out.mean - stats.t.ppf(0.95, df) * se, out.mean + stats.t.ppf(0.95, df) * se
    out.p = float(2 * stats.t.sf(abs(out.mean / se), df))
    boot = stats.bootstrap((d,), np.mean, confidence_level=0.95, **BOOTSTRAP).confidence_interval
    out.boot_lo, out.boot_hi = float(boot.low), float(boot.high)
    out.mdd = min_detectable(out.sd, len(d))
    return out


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (nan stays nan and is not counted in the family)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (len(idx) - rank) * p[i]))
        out[i] = running
    return out


def judge(d: Paired, p_adj: float, margin: float, direction: int = 1) -> tuple[str, str]:
    """Does the difference have the claimed sign (direction +1: positive)? -> (verdict, reason). 'not supported'
    needs a test too: a significant effect the other way, or equivalence (90% CI within ±margin)."""
    if d.n < 2 or not np.isfinite(d.sd):
        return "inconclusive", f"n={d.n}: no paired test"
    if not np.isfinite(d.p):
        return "inconclusive", "identical differences in every seed: no t-test"
    if p_adj < ALPHA:
        return ("supported", "") if d.mean * direction > 0 else ("not supported", "significant effect the other way")
    if np.isfinite(margin) and -margin < d.lo90 and d.hi90 < margin:
        return "not supported", f"equivalent: 90% CI within ±{fmt(margin)}"
    if abs(d.mean) < d.mdd:
        return "inconclusive", f"underpowered: minimal detectable difference {fmt(d.mdd)} at n={d.n}"
    return "inconclusive", "not significant after Holm"


def improvement(task: str, delta: float) -> float:
    """A difference in the task's test metric, signed so that positive = better."""
    return delta if METRICS[task].higher else -delta


# --------------------------------------------------------------------------- selection on validation


def choose_on_validation(candidates: pd.DataFrame, higher_better: bool, default=None):
    """candidates: columns value, seed, val_metric ONLY. Returns (chosen value, number of candidates): the best
    mean validation metric; on a tie the default stays, else the smallest value."""
    means = candidates.groupby("value", dropna=False)["val_metric"].mean()
    tied = means[means == (means.max() if higher_better else means.min())].index
    return (default if default in tied else tied[0]), len(means)


def sweep_candidates(df: pd.DataFrame, task: str, technique: str) -> pd.DataFrame:
    """The technique's article cell (its default) plus its sweep cells at the same task config (all statuses)."""
    grid = TUNED_BY.get(technique)
    cfg = main_config(df, task, grid)
    keep = (df.task == task) & (df.technique == technique) & (df.task_cfg == cfg) & df.grid.isin(["article", grid])
    return df[keep]


def tuned_cells(df: pd.DataFrame, task: str) -> tuple[pd.DataFrame, dict]:
    """Per technique, the rows at the strength chosen on validation (mean over seeds), and what was chosen:
    {technique: (chosen value, default value, n candidates, note)}. Candidates with a non-ok seed are skipped."""
    art = article_cells(df, task)
    chosen, picked = {}, []
    for tech in order_techniques(art.technique.unique()):
        cands = sweep_candidates(df, task, tech)
        default = art[art.technique == tech].value.iloc[0]
        bad = cands[cands.status != "ok"].value.unique()
        usable = ok(cands[~cands.value.isin(bad)])
        if tech not in TUNED_BY or not (usable.grid == TUNED_BY[tech]).any():
            note = "no sweep: default" if tech not in TUNED_BY else "no sweep rows: default"
            chosen[tech] = (default, default, 1, "fixed epoch budget" if tech == "none" else note)
            picked.append(art[art.technique == tech])
            continue
        value, n = choose_on_validation(usable[["value", "seed", "val_metric"]], METRICS[task].higher, default)
        note = f"skipped (non-ok seeds): {', '.join(fmt(v) for v in bad)}" if len(bad) else ""
        chosen[tech] = (value, default, n, note)
        picked.append(usable[usable.value == value])
    return (pd.concat(picked) if picked else art.iloc[:0]), chosen


# --------------------------------------------------------------------------- time to target, flags, cost


def best_val(history: list, task: str) -> float:
    key, higher = METRICS[task].val, METRICS[task].higher
    vals = [h.get(key) for h in history if h.get(key) is not None]
    return (max(vals) if higher else min(vals)) if vals else float("nan")


def target(none_rows: pd.DataFrame, task: str) -> dict:
    """none's best validation metric per seed (the same seed: same init and, for the MLP, the same data draw),
    with the mean over its seeds under key None for seeds none does not have."""
    goals = {r.seed: best_val(r.history, task) for r in none_rows.itertuples()}
    goals[None] = float(np.nanmean(list(goals.values()))) if goals else float("nan")
    return goals


def time_to_target(row, goal: float, task: str) -> tuple[int | None, float | None]:
    """(epochs, wall seconds) until the validation metric first reaches goal, or (None, None) for never.
    Seconds = cumulative train_s + per epoch the hook time, plus the validation pass when the technique uses it."""
    key, higher = METRICS[task].val, METRICS[task].higher
    extra = (row.hook_seconds_per_epoch or 0) + ((row.val_seconds_per_epoch or 0) if row.uses_validation else 0)
    seconds = 0.0
    for i, h in enumerate(row.history, 1):
        seconds += h.get("train_s") or 0.0
        v = h.get(key)
        if v is not None and np.isfinite(goal) and (v >= goal if higher else v <= goal):
            return i, seconds + i * extra
    return None, None


def tt_summary(cell: pd.DataFrame, goal: float, task: str) -> dict:
    """Per cell: fraction of seeds reaching the goal, epochs and seconds (mean ± CI over those that did)."""
    hits = [time_to_target(r, goal.get(r.seed, goal[None]) if isinstance(goal, dict) else goal, task)
            for r in cell.itertuples()]
    reached = [(e, s) for e, s in hits if e is not None]
    return {"reached": len(reached), "n": len(hits), "epochs": mean_ci([e for e, _ in reached]),
            "seconds": mean_ci([s for _, s in reached])}


def underfits(cell: pd.DataFrame, none: pd.DataFrame, task: str) -> bool:
    """CIFAR: train accuracy > UNDERFIT_ACC below none's. MLP: train MSE > UNDERFIT_FLOOR x noise floor and above
    none's (a model that learned the teacher sits near the floor on its own training set)."""
    if cell.empty or none.empty:
        return False
    if task == "cifar":
        return cell.train_acc.mean() < none.train_acc.mean() - UNDERFIT_ACC
    floor = cell.noise_floor.dropna().mean()
    limit = UNDERFIT_FLOOR * floor if np.isfinite(floor) else 0.5 * cell.initial_val_loss.mean()
    return cell.train_loss.mean() > max(limit, none.train_loss.mean())


def never_acted(cell: pd.DataFrame, none: pd.DataFrame) -> list[str]:
    """Why a cell's regularizer cannot have done anything here (empty: it acted, as far as rows tell)."""
    why = []
    if len(cell) and cell.has_es.all() and not cell.stopped_early.any():
        why.append("early stopping never stopped")
    if len(cell) and cell.has_plateau.all() and (cell.lr_reductions.fillna(0) == 0).all():
        why.append("LR never lowered")
    cols = ["train_loss", "val_loss", "test_loss"]
    both = cell.set_index("seed")[cols].join(none.set_index("seed")[cols], rsuffix="_none", how="inner")
    if len(both) and (cell.technique != "none").all() and all(
            np.allclose(both[c], both[c + "_none"], rtol=1e-9, atol=1e-12) for c in cols):
        why.append("rows identical to none")
    return why


def not_testable(cell: pd.DataFrame, none: pd.DataFrame, why: list[str] | None = None) -> str:
    """Non-empty when the cell's comparison with none says nothing: identical rows, or its only pieces never acted."""
    why = never_acted(cell, none) if why is None else why
    only_epoch_end = set(cell.technique) <= {"early_stopping", "lr_plateau"}
    if "rows identical to none" in why or (why and only_epoch_end):
        return "; ".join(why)
    return ""


def epoch_overhead(cell: pd.DataFrame, none: pd.DataFrame) -> tuple[float, int, float]:
    """(per-epoch step time / none's, number of timed runs of the cell, relative noise) with ONE measurement per
    cell_run_id (stacked seeds share one). Noise: the larger median of epoch_seconds_iqr / median of both cells."""
    def runs(c):
        r = c.drop_duplicates("cell_run_id")
        return r.epoch_seconds_median / r.n_seeds_stacked.fillna(1), r.epoch_seconds_iqr / r.epoch_seconds_median

    (t, tn), (b, bn) = runs(cell), runs(none)
    if t.dropna().empty or b.dropna().empty:
        return float("nan"), 0, float("nan")
    return float(t.mean() / b.mean()), int(t.notna().sum()), float(max(tn.median(), bn.median()))
