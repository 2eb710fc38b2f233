"""Per-seed rows of a trained cell: final metrics on the full splits, best epoch, timing, weight statistics."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from bench.data import TaskData
from bench.hooks import EpochState
from bench.inputs import eval_batches
from bench.measure import evaluate, peak_memory_mb, quartiles, weight_stats

if TYPE_CHECKING:
    from bench.train import Trainer


def final_metrics(tr: Trainer, data: TaskData, val: list | None = None) -> dict[str, torch.Tensor]:
    """Eval-mode loss (and accuracy) on the full splits, the gap test - train loss (and train - test accuracy).
    `val`: the validation set's eval_batches when the run has them already (they are not prepared twice)."""
    finals = {}
    for name in ("train", "val", "test"):
        batches = val if name == "val" and val is not None else eval_batches(getattr(data, name), tr.task, tr.n_seeds)
        loss, acc = evaluate(tr.model, batches, tr.task)
        finals[f"{name}_loss"] = loss
        if acc is not None:
            finals[f"{name}_acc"] = acc
    finals["gap"] = finals["test_loss"] - finals["train_loss"]
    if "test_acc" in finals:
        finals["acc_gap"] = finals["train_acc"] - finals["test_acc"]
    return finals


def seed_history(history: list[dict], s: int, epochs: int) -> list[dict]:
    """Seed s's view of the stacked history, up to the epoch it stopped training."""
    return [{k: (v[s] if isinstance(v, list) else v) for k, v in h.items()} for h in history[:epochs]]


def per_seed_rows(tr: Trainer, data: TaskData, state: EpochState, diverged_epoch: torch.Tensor, history: list[dict],
                  initial_val: torch.Tensor, seconds: dict, seeds: list[int], reference: tuple[float, float],
                  finals: dict[str, torch.Tensor]) -> list[dict]:
    """Final (eval-mode, full splits: final_metrics) metrics, best epoch, timing and weight statistics of each seed.

    Timing is the stacked run's, shared equally by its S seeds: the report takes per-epoch cost once
    per run (cell_run_id), never once per seed."""
    S, task = tr.n_seeds, tr.cfg
    stats = weight_stats(tr.model, S)
    mem, mem_kind = peak_memory_mb(tr.device)
    n_params = sum(p.numel() for p in tr.model.parameters()) // S
    epochs_total = len(history)
    q1, median, q3 = quartiles(seconds["step"])
    val_s, hook_s = seconds["val"] / epochs_total / S, seconds["hooks"] / epochs_total / S
    uses_validation = any(r.uses_validation for r in tr.regs)
    rows = []
    for s, seed in enumerate(seeds):
        epochs = epochs_total
        if state.stop_epoch[s] > 0:
            epochs = int(state.stop_epoch[s])
        if diverged_epoch[s] > 0:
            epochs = int(diverged_epoch[s])
        per_epoch = seed_history(history, s, epochs)
        val_curve = [h["val_loss"] if math.isfinite(h["val_loss"]) else math.inf for h in per_epoch]
        lrs = [h["lr"] for h in per_epoch]
        train_seconds = sum(h["train_s"] for h in per_epoch)
        rows.append({
            "seed": seed,
            "status": "diverged" if diverged_epoch[s] > 0 else "ok",
            "diverged_epoch": int(diverged_epoch[s]) if diverged_epoch[s] > 0 else None,
            "final": {k: float(v[s]) for k, v in finals.items()},
            "best_epoch": per_epoch[val_curve.index(min(val_curve))]["epoch"],
            "epochs_run": epochs,
            "max_epochs": task.epochs,
            "stopped_early": bool(state.stop_epoch[s] > 0),
            "lr_reductions": sum(b < a for a, b in zip(lrs, lrs[1:])),
            "uses_validation": uses_validation,
            "history": per_epoch,
            "train_seconds": train_seconds,
            "val_seconds_per_epoch": val_s,
            "hook_seconds_per_epoch": hook_s,
            "curve_seconds_per_epoch": seconds["curves"] / epochs_total / S,  # measurement only, charged to none
            "seconds_to_result": train_seconds + epochs * (hook_s + (val_s if uses_validation else 0.0)),
            "n_seeds_stacked": S,
            "epoch_seconds_median": median,  # the whole stack's training steps per epoch
            "epoch_seconds_iqr": q3 - q1,
            "reference_step_seconds": reference[0],  # the whole stack's, like epoch_seconds_median
            "reference_step_iqr": reference[1],  # relative: IQR / median
            "samples_per_s": len(data.train) * S / median,
            "initial_val_loss": float(initial_val[s]),
            "peak_memory_mb": mem,
            "peak_memory_kind": mem_kind,
            "n_params": n_params,
            **{k: float(v[s]) for k, v in stats.items()},
            "noise_floor": data.noise_floor,
            "data_source": data.source,
            "data_resampled": data.train.per_seed,
        })
    return rows
