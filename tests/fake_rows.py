"""Synthetic result rows of the current schema: both tasks, every grid, several seeds, per-epoch histories.

`make_row` builds one row from a few knobs; `result_set` writes a whole `make bench`-like run into a folder.
Effects follow one "regularization level" L per cell (0 = none, about 1 = best, >= 5 = stops learning), with a
per-seed offset shared by every technique so paired comparisons behave like real ones.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import zlib
from pathlib import Path

import numpy as np

from bench.results import SCHEMA_VERSION

TASK_CFG = {
    "mlp": dict(name="mlp", epochs=300, steps=None, batch_size=25, lr=1e-3, n_train=100, n_val=100, n_test=2000,
                width=100, depth=2, in_dim=10, targets="teacher", noise_std=0.5, data_seed=0, source="auto",
                data_path=None, cache_dir=".cache", curve_every=10),
    "cifar": dict(name="cifar", epochs=20, steps=None, batch_size=128, lr=2e-3, n_train=2000, n_val=1000,
                  n_test=2000, width=16, depth=2, in_dim=10, targets="teacher", noise_std=0.5, data_seed=0,
                  source="folder", data_path="/data/cifar.tar.gz", cache_dir=".cache", curve_every=2),
}
PIECES = {
    "l2": {"weight_decay": 1e-4, "decoupled": False}, "l1": {"strength": 1e-3, "proximal": False},
    "dropout": {"p": 0.5, "p_conv": 0.2}, "batchnorm": {"momentum": 0.1},
    "augment": {"strength": 1.0, "input_noise": 0.1, "crop_pad": 4, "flip": True, "rotate_deg": 10.0, "jitter": 0.2},
    "early_stopping": {"patience_frac": 0.1, "min_delta": 1e-3}, "lr_plateau": {"patience_frac": 0.05, "factor": 0.5},
}
TECHNIQUES = {  # name -> pieces (adamw and l1_prox patch their piece below)
    "none": (), "l2": ("l2",), "adamw": ("l2",), "l1": ("l1",), "l1_prox": ("l1",), "dropout": ("dropout",),
    "batchnorm": ("batchnorm",), "augment": ("augment",), "early_stopping": ("early_stopping",),
    "lr_plateau": ("lr_plateau",), "l2_es": ("l2", "early_stopping"),
    "l2_es_dropout": ("l2", "early_stopping", "dropout"), "dropout_bn": ("dropout", "batchnorm"),
    "recommended": ("l2", "early_stopping", "dropout", "augment", "lr_plateau"),
    "all": tuple(PIECES),
}
# Regularization level at the default strength, per-epoch cost factor (mlp, cifar), convergence slowness.
LEVEL = {"none": 0, "l2": 0.3, "adamw": 0.4, "l1": 0.5, "l1_prox": 0.5, "dropout": 0.7, "batchnorm": 0.3,
         "augment": 0.8, "early_stopping": 0.6, "lr_plateau": 0.1}
COST = {"none": (1, 1), "l2": (1, 1), "adamw": (1, 1), "l1": (1.18, 1.02), "l1_prox": (1.05, 1.02),
        "dropout": (1.35, 1.03), "batchnorm": (2.27, 1.19), "augment": (1.03, 1.7), "early_stopping": (1.01, 1),
        "lr_plateau": (1, 1)}
SLOW = {"augment": 1.6, "dropout": 1.2, "batchnorm": 0.8}
SWEEP_VALUES = {"l2": [1e-3, 1e-2, 1e-1, 1.0], "adamw": [1e-1, 1.0], "l1": [1e-4, 1e-2, 1e-1],
                "dropout": [0.25, 0.75], "augment": [0.5, 2.0], "patience": [0.05, 0.2]}
SWEEP_TECHNIQUES = {"l2": ("l2",), "adamw": ("adamw",), "l1": ("l1", "l1_prox"), "dropout": ("dropout",),
                    "augment": ("augment",), "patience": ("early_stopping",)}
SWEEP_TASKS = {"l1": ("mlp",)}
TASKS = tuple(TASK_CFG)


def technique_config(name: str, value: float | None = None) -> dict:
    cfg = {"name": name, **{p: None for p in PIECES}}
    for piece in TECHNIQUES[name]:
        cfg[piece] = dict(PIECES[piece])
    if name == "adamw":
        cfg["l2"] = {"weight_decay": 1e-2, "decoupled": True}
    if name == "l1_prox":
        cfg["l1"]["proximal"] = True
    if value is not None:
        piece, field = {"l2": ("l2", "weight_decay"), "adamw": ("l2", "weight_decay"), "l1": ("l1", "strength"),
                        "l1_prox": ("l1", "strength"), "dropout": ("dropout", "p"), "augment": ("augment", "strength"),
                        "early_stopping": ("early_stopping", "patience_frac")}[name]
        cfg[piece][field] = value
    return cfg


def level(cfg: dict) -> float:
    """Regularization level of a technique config from its pieces, scaled by strength."""
    levels = []
    for piece in TECHNIQUES[cfg["name"]]:
        p = cfg[piece]
        if piece == "l2":
            base, default = (LEVEL["adamw"], 1e-2) if p["decoupled"] else (LEVEL["l2"], 1e-4)
            levels.append(base * math.sqrt(p["weight_decay"] / default))
        elif piece == "l1":
            levels.append(LEVEL["l1"] * math.sqrt(p["strength"] / 1e-3))
        elif piece == "dropout":
            levels.append(LEVEL["dropout"] * p["p"] / 0.5)
        elif piece == "augment":
            levels.append(LEVEL["augment"] * p["strength"])
        else:
            levels.append(LEVEL[piece])
    if len(levels) < 2:
        return sum(levels)
    # pieces overlap: combined like independent chances, plus whatever goes past 0.95 alone
    overlap = 1 - math.prod(1 - min(x, 0.95) for x in levels) + sum(max(0.0, x - 0.95) for x in levels)
    return overlap


def history(task: str, epochs: int, tau: float, best_epoch: int, start: float, best: float, overfit: float,
            final_train: float, acc: tuple[float, float] | None, epoch_s: float, curve_every: int,
            lr_drops: int = 0) -> list[dict]:
    """Per-epoch dicts as the trainer writes them: val every epoch, train/test every `curve_every` and the last."""
    rows = []
    for e in range(1, epochs + 1):
        decay = math.exp(-e / tau)
        val = best + (start - best) * decay + overfit * max(0, e - best_epoch) / epochs
        train = final_train + (start - final_train) * decay
        h = {"epoch": e, "lr": 1e-3 * (0.5 if lr_drops and e > epochs // 2 else 1.0), "train_s": epoch_s,
             "train_loss_running": train * 1.1, "val_loss": val, "val_acc": None}
        if acc is not None:
            h["val_acc"] = acc[1] - (acc[1] - 0.1) * decay - 0.2 * overfit * max(0, e - best_epoch) / epochs
        if e % curve_every == 0 or e == epochs:
            h.update(train_loss=train, test_loss=val * 1.02)
            if acc is not None:
                h.update(train_acc=acc[0] - (acc[0] - 0.1) * decay, test_acc=h["val_acc"] - 0.01)
        rows.append(h)
    return rows


def make_row(task: str, technique: str, seed: int, *, grid: str = "article", value: float | None = None,
             task_overrides: dict | None = None, preset: str = "quick", commit: str = "abc1234",
             device: str = "cpu (x86_64)", epochs: int | None = None, slowdown: float = 1.0,
             **final_overrides) -> dict:
    """One realistic row; `final_overrides` replace final metrics (train_acc=..., test_loss=...) or top-level
    fields (stopped_early=..., history=...). `slowdown`: how much slower the machine ran this cell (every time
    in the row, its yardstick included)."""
    tcfg = {**TASK_CFG[task], **(task_overrides or {})}
    if epochs is not None:
        tcfg["epochs"] = epochs
    if tcfg.get("steps"):
        tcfg["epochs"] = math.ceil(tcfg["steps"] / math.ceil(tcfg["n_train"] / tcfg["batch_size"]))
    E, cfg = tcfg["epochs"], technique_config(technique, value)
    rng = np.random.default_rng([seed, zlib.crc32(technique.encode()) % 1000, int(1e6 * (value or 0)) % 1000,
                                 tcfg["depth"]])
    shared = np.random.default_rng(seed).normal()  # the seed's luck, shared by every technique
    L = level(cfg)
    depth_pen = 0.0 if cfg["batchnorm"] else max(0.0, (tcfg["depth"] - 10) / 8)  # deep nets without BN train badly
    size_pen = {500: 0.17, 1000: 0.10}.get(tcfg["n_train"], 0.0) * (1 - 0.35 * min(L, 1) * bool(cfg["augment"]))
    stall = min(1.0, max(0.0, (L - 4) / 2) + depth_pen)  # 1: the model stopped learning
    pieces = TECHNIQUES[technique]
    cost = math.prod(COST[p if p != "l2" or not cfg["l2"]["decoupled"] else "adamw"][task == "cifar"] for p in pieces)
    stacked = 10 if task == "mlp" else 1
    base_epoch_s = (0.004 if task == "mlp" else 1.8) * slowdown  # none's epoch on the machine of this cell
    epoch_s = base_epoch_s * cost * (1 + 0.02 * rng.normal())
    reference_step_s = base_epoch_s / math.ceil(tcfg["n_train"] / tcfg["batch_size"])
    tau = E / 8 * math.prod(SLOW.get(p, 1.0) for p in pieces) * (1 + 0.2 * stall)
    best_epoch = max(2, int(E * (0.55 + 0.3 * min(L, 1))) + int(rng.integers(-2, 3)))
    if task == "mlp":
        initial, floor = 1.6 + 0.05 * shared, tcfg["noise_std"] ** 2
        test = floor + 0.05 + 0.15 * (min(L, 3) - 1) ** 2 + 0.02 * shared + 0.01 * rng.normal()
        train = 0.05 + 0.2 * min(L, 2) + 0.01 * rng.normal()
        test, train = test + stall * (initial - test), train + stall * (0.9 * initial - train)
        acc = None
    else:
        initial, floor = 2.31, None
        test_acc = 0.56 - 0.06 * (min(L, 3) - 1) ** 2 - size_pen + 0.01 * shared + 0.005 * rng.normal()
        train_acc = 0.99 - 0.08 * min(L, 3) + 0.005 * rng.normal()
        test_acc, train_acc = test_acc + stall * (0.1 - test_acc), train_acc + stall * (0.1 - train_acc)
        test, train = -math.log(max(test_acc, 0.05)) * 1.3, -math.log(max(train_acc, 0.05))
        acc = (train_acc, test_acc)
    if cfg["dropout"] and cfg["batchnorm"]:  # the article's dropout/BN conflict
        test, acc = (test + 0.06, None) if task == "mlp" else (test + 0.1, (acc[0], acc[1] - 0.04))
    overfit = 0.0 if stall else max(0.0, 0.6 - 0.5 * L)
    es, plateau = cfg["early_stopping"], cfg["lr_plateau"]
    epochs_run, stopped = E, False
    if es:
        patience = max(1, round(es["patience_frac"] * E))
        if best_epoch + patience < E and overfit > 0:
            epochs_run, stopped = best_epoch + patience, True
    lr_drops = int(bool(plateau) and rng.random() < 0.7)
    hist = history(task, epochs_run, tau, best_epoch, initial, test * 0.98, overfit, train, acc, epoch_s / stacked,
                   tcfg["curve_every"], lr_drops)
    vals = [h["val_loss"] for h in hist]
    best = int(np.argmin(vals)) + 1
    report_epoch = best if es else epochs_run
    late = overfit * max(0, report_epoch - best_epoch) / E  # what overfitting past the best epoch costs on test
    final = {"train_loss": train, "val_loss": vals[report_epoch - 1], "test_loss": test + late,
             "gap": test + late - train}
    if acc is not None:
        test_acc = acc[1] - 0.2 * late
        final.update(train_acc=acc[0], val_acc=hist[report_epoch - 1]["val_acc"], test_acc=test_acc,
                     acc_gap=acc[0] - test_acc, test_loss=test + late, gap=test + late - train)
    uses_val = bool(es or plateau)
    val_s, hook_s = (0.0004, 0.00005) if task == "mlp" else (0.25, 0.001)
    train_seconds = sum(h["train_s"] for h in hist)
    l1 = cfg["l1"]
    frac_zero = 0.0
    if l1 and l1["proximal"]:
        frac_zero = min(0.9, 0.25 * math.sqrt(l1["strength"] / 1e-3))
    run_id = f"{task}-{grid}-{technique}-{value}-{tcfg['depth']}-{tcfg['n_train']}"
    run_id += "" if task == "mlp" else f"-{seed}"  # stacked MLP seeds share one timed run
    row = {
        "schema_version": SCHEMA_VERSION, "key": f"{run_id}-s{seed}",
        "config": {"task": tcfg, "technique": cfg, "preset": preset, "grid": grid, "device_type": "cpu"},
        "task": task, "technique": technique, "preset": preset, "grid": grid,
        "training_mode": "vectorized" if task == "mlp" else "sequential",
        "env": {"torch": "2.14.1", "device": device, "cuda": None, "cpu_count": 2, "torch_threads": 2,
                "git_commit": commit, "python": "3.11.7"},
        "seed": seed, "status": "ok", "diverged_epoch": None, "final": final,
        "best_epoch": best, "epochs_run": epochs_run, "max_epochs": E, "stopped_early": stopped,
        "lr_reductions": lr_drops, "uses_validation": uses_val, "history": hist,
        "train_seconds": train_seconds, "val_seconds_per_epoch": val_s, "hook_seconds_per_epoch": hook_s,
        "seconds_to_result": train_seconds + epochs_run * (hook_s + (val_s if uses_val else 0)),
        "cell_run_id": run_id, "n_seeds_stacked": stacked, "epoch_seconds_median": epoch_s,
        "epoch_seconds_iqr": 0.03 * epoch_s, "reference_step_seconds": reference_step_s, "reference_step_iqr": 0.03,
        "samples_per_s": tcfg["n_train"] * stacked / epoch_s,
        "initial_val_loss": initial, "noise_floor": floor, "n_params": 11301 if task == "mlp" else 70000,
        "weight_l2_norm": 8.0 / (1 + L), "frac_weights_zero": frac_zero,
        "frac_weights_below_1e-3": max(frac_zero, 0.01 + 0.05 * bool(l1)), "peak_memory_mb": 500.0,
        "peak_memory_kind": "process_max_rss", "data_source": "synthetic" if task == "mlp" else "folder",
        "data_resampled": task == "mlp",
    }
    for k, v in final_overrides.items():
        (row["final"] if k in final else row)[k] = v
    return row


def new_technique_row(task: str, technique: str, seed: int, pieces: dict, *, like: str = "l2",
                      grid: str = "extended", **kw) -> dict:
    """A row of a technique this fixture does not simulate (label_smoothing, or a piece no checkout knows): the
    metrics of `like`'s row, the config switching on only `pieces` ({piece: {field: value}})."""
    row = make_row(task, like, seed, grid=grid, **kw)
    row["config"] = {**row["config"], "grid": grid, "technique": {"name": technique, **{p: None for p in PIECES},
                                                                  **pieces}}
    row.update(technique=technique, key=row["key"].replace(f"-{like}-", f"-{technique}-"),
               cell_run_id=row["cell_run_id"].replace(f"-{like}-", f"-{technique}-"))
    return row


def write_rows(folder: str | Path, rows: list[dict]) -> Path:
    """One JSON file per row under folder/<task>/<technique>/; returns folder."""
    folder = Path(folder)
    for i, r in enumerate(rows):
        path = folder / r["task"] / r["technique"] / f"{i:05d}-{r['grid']}-{r['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    return folder


def result_set(seeds: dict | None = None, tasks=("mlp", "cifar"), grids=None, epochs: dict | None = None,
               **kw) -> list[dict]:
    """Rows of every grid of these rows (article, the sweeps, depth, train_size) for the given tasks."""
    seeds = seeds or {"mlp": 10, "cifar": 3}
    epochs = epochs or {}
    grids = grids or ("article", *SWEEP_VALUES, "depth", "train_size")
    rows = []
    for task in tasks:
        n, e = seeds[task], epochs.get(task)
        if "article" in grids:
            rows += [make_row(task, t, s, epochs=e, **kw) for t in TECHNIQUES for s in range(n)]
        for grid, values in SWEEP_VALUES.items():
            if grid in grids and task in SWEEP_TASKS.get(grid, TASKS):
                rows += [make_row(task, t, s, grid=grid, value=v, epochs=e, **kw)
                         for t in SWEEP_TECHNIQUES[grid] for v in values for s in range(n)]
        if "depth" in grids and task == "mlp":
            rows += [make_row(task, t, s, grid="depth", task_overrides={"depth": d}, epochs=e, **kw)
                     for t in ("none", "batchnorm") for d in (2, 8, 16, 32) for s in range(n)]
        if "train_size" in grids and task == "cifar":
            steps = (e or TASK_CFG["cifar"]["epochs"]) * math.ceil(2000 / 128)
            rows += [make_row(task, t, s, grid="train_size", task_overrides={"n_train": m, "steps": steps}, **kw)
                     for t in ("none", "augment") for m in (500, 1000) for s in range(n)]
    return rows


@functools.cache
def _small_rows() -> tuple:
    return tuple(result_set(seeds={"mlp": 4, "cifar": 3}, epochs={"mlp": 20, "cifar": 6}))


def small_rows() -> list[dict]:
    """Every grid at test size (MLP 4 seeds x 20 epochs, CIFAR 3 seeds x 6 epochs); a fresh copy each call."""
    return copy.deepcopy(list(_small_rows()))
