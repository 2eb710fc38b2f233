"""Rows -> tidy frames: one line per row (config flattened, pieces, swept value) and every history in long form."""
from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.results import SchemaError, load_rows  # noqa: F401 (SchemaError: for the report's callers)
from bench.tasks import task_names
from bench.techniques import pieces_on

PATH_FIELDS = ("data_path", "cache_dir")  # where data lie, not what is learned
SIZE_FIELDS = ("depth", "n_train", "epochs", "steps")  # swept by the depth and train_size grids


@dataclass(frozen=True)
class Metric:
    test: str
    val: str
    train: str
    higher: bool
    words: str  # the test metric in a table header
    axis: str  # the test metric on a figure axis
    loss: str  # the training loss' name


ACCURACY = Metric("test_acc", "val_acc", "train_acc", True, "test accuracy", "test accuracy (higher is better)",
                  "cross-entropy")
MSE = Metric("test_loss", "val_loss", "train_loss", False, "test MSE", "test MSE (lower is better)", "MSE")
ACCURACY_TASKS: set[str] = set()  # classification tasks, learned from their rows by to_frame


class NoRows(RuntimeError):
    """The results folder holds no readable row."""


def metric(task: str) -> Metric:
    """A task's metric: accuracy for a classification task (its rows carry an accuracy), else MSE."""
    return ACCURACY if task in ACCURACY_TASKS else MSE


def learn_metrics(rows: list[dict]) -> None:
    """A task whose rows' final metrics carry an accuracy is a classification task (the trainer writes
    accuracies only for those)."""
    for r in rows:
        final = r.get("final") or {}
        if any(final.get(k) is not None for k in (ACCURACY.test, ACCURACY.val, ACCURACY.train)):
            ACCURACY_TASKS.add(r.get("task"))


def tasks_of(df: pd.DataFrame) -> list[str]:
    """The tasks of the rows, then the other tasks this checkout has (bench/tasks): regression before
    classification, each by name."""
    seen = set(df.task.dropna())
    return sorted(seen | set(task_names()), key=lambda t: (t not in seen, metric(t).higher, t))


def improvement(task: str, delta: float) -> float:
    """A difference in the task's test metric, signed so that positive = better."""
    return delta if metric(task).higher else -delta


def read_rows(results_dir: str | Path) -> list[dict]:
    """Every current-schema row under results_dir (bench.results.load_rows: broken, foreign and older rows are
    skipped with a warning, a newer schema raises SchemaError)."""
    return load_rows(results_dir)


def _get(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def settings_text(technique: dict) -> str:
    parts = [f"{piece}(" + ", ".join(f"{k}={v}" for k, v in technique[piece].items()) + ")"
             for piece in pieces_on(technique)]
    return "; ".join(parts) or "-"


def technique_fields(technique: dict) -> dict:
    """Every setting of the switched-on pieces as 'piece.field' -> value."""
    return {f"{piece}.{k}": v for piece in pieces_on(technique) for k, v in technique[piece].items()}


def _signature(task_cfg: dict, drop: tuple) -> str:
    return json.dumps({k: v for k, v in task_cfg.items() if k not in drop}, sort_keys=True, default=str)


FINAL = ("train_loss", "val_loss", "test_loss", "gap", "train_acc", "val_acc", "test_acc", "acc_gap")
TOP = ("key", "task", "technique", "grid", "preset", "seed", "status", "diverged_epoch", "error", "training_mode",
       "best_epoch", "epochs_run", "max_epochs", "stopped_early", "lr_reductions", "uses_validation",
       "train_seconds", "val_seconds_per_epoch", "hook_seconds_per_epoch", "seconds_to_result", "cell_run_id",
       "n_seeds_stacked", "epoch_seconds_median", "epoch_seconds_iqr", "reference_step_seconds",
       "reference_step_iqr", "samples_per_s", "initial_val_loss",
       "noise_floor", "n_params", "weight_l2_norm", "frac_weights_zero", "frac_weights_below_1e-3",
       "peak_memory_mb", "peak_memory_kind", "data_source", "data_resampled")


def row_record(r: dict) -> dict:
    """The flat fields of one row (history kept as a list under 'history'; the swept value is set by to_frame)."""
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
    rec["value"] = None
    m = metric(rec["task"]) if rec["task"] else None
    for kind in ("test", "val", "train"):
        rec[f"{kind}_metric"] = final.get(getattr(m, kind)) if m else None
    rec.update(pieces="+".join(pieces_on(tech)), n_pieces=len(pieces_on(tech)), swept_field=None,
               fields=technique_fields(tech), history=r.get("history") or [])
    return rec


COLUMNS = list(row_record({}).keys())
INTERNAL = ["history", "task_cfg", "task_base", "fields"]  # kept out of rows.csv


def swept_field(fields: pd.Series) -> str | None:
    """Of one technique's rows (their 'piece.field' dicts): the setting that takes the most distinct values,
    when any takes more than one (the strength its sweeps vary); else None."""
    seen: dict[str, set] = {}
    for f in fields:
        for k, v in f.items():
            seen.setdefault(k, set()).add(json.dumps(v))
    counts = {k: len(v) for k, v in seen.items() if len(v) > 1}
    return max(counts, key=counts.get) if counts else None


def set_swept_values(df: pd.DataFrame) -> None:
    """value = each row's setting of its technique's swept field (None for techniques no row varies)."""
    field = df.groupby("technique").fields.agg(swept_field) if len(df) else pd.Series(dtype=object)
    df["swept_field"] = df.technique.map(field)
    df["value"] = pd.Series([f.get(k) if isinstance(k, str) else None for f, k in zip(df.fields, df.swept_field)],
                            index=df.index)


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """One line per (cell, seed)."""
    learn_metrics(rows)
    df = pd.DataFrame.from_records([row_record(r) for r in rows], columns=COLUMNS)
    for col in ("stopped_early", "uses_validation", "has_es", "has_plateau"):
        df[col] = df[col].astype("boolean").fillna(False).astype(bool)
    set_swept_values(df)
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


def read_rows_or_fail(results_dir: str | Path) -> list[dict]:
    """Rows of a folder; skipped files are named on stderr; NoRows when none is left."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = read_rows(results_dir) if Path(results_dir).is_dir() else []
    for w in caught:
        print(f"regbench: warning: {w.message}", file=sys.stderr)
    if not rows:
        raise NoRows(f"no result rows under {results_dir}")
    return rows
