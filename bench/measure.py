"""Measurements of a cell's stacked seeds: eval-mode loss and accuracy, curve points, weight statistics, peak memory."""
from __future__ import annotations

import resource

import torch
from torch import nn

from bench.models import weights
from bench.tasks import Task

CURVE_MAX = 500  # learning-curve train and test points (eval mode) use at most this many samples; finals use all


def seed_list(values: torch.Tensor) -> list[float]:
    """A per-seed tensor [S] as floats: tolist() takes 0.6 us for 10 seeds where a float() per element took 14 us,
    three times an epoch."""
    return values.cpu().tolist()


@torch.no_grad()
def evaluate(model: nn.Module, batches, task: Task) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eval-mode mean loss (no penalty) and accuracy of every seed over eval_batches(...). Returns [S], [S]|None."""
    model.eval()
    n, loss_sum, correct = 0, 0.0, 0.0
    for x, y in batches:
        with task.autocast(x.device):
            out = model(x).float()
        loss_sum = loss_sum + task.loss(out, y) * y.shape[1]
        if task.classification:
            correct = correct + (out.argmax(-1) == y).sum(1)
        n += y.shape[1]
    return loss_sum / n, (correct / n if task.classification else None)


def curve_point(measure, curves: dict[str, list]) -> dict:
    """Eval-mode train and test loss (and accuracy) on at most CURVE_MAX samples, per seed."""
    point = {}
    for name, batches in curves.items():
        loss, acc = measure(batches)
        point[f"{name}_loss"] = seed_list(loss)
        if acc is not None:
            point[f"{name}_acc"] = seed_list(acc)
    return point


def weight_stats(model: nn.Module, n_seeds: int) -> dict[str, torch.Tensor]:
    """Per seed: L2 norm of all weights, fraction of weights exactly 0 and with |w| < 1e-3."""
    w = torch.cat([w.detach().reshape(n_seeds, -1) for w in weights(model)], dim=1)
    return {
        "weight_l2_norm": w.norm(dim=1),
        "frac_weights_zero": (w == 0).float().mean(1),
        "frac_weights_below_1e-3": (w.abs() < 1e-3).float().mean(1),
    }


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile of a list of timings."""
    q1, median, q3 = torch.tensor(values).quantile(torch.tensor([0.25, 0.5, 0.75])).tolist()
    return q1, median, q3


def reset_peak_memory(device: torch.device) -> None:
    """Start a cell's peak memory afresh: CUDA's counter, or on Linux the process's peak RSS (VmHWM), which
    writing 5 to /proc/self/clear_refs resets. Without it a sweep's cells (one process) would each report
    the largest cell so far."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """Peak memory since reset_peak_memory: CUDA's allocated bytes; on CPU the process's peak RSS (VmHWM), or
    where /proc has none its lifetime maximum (ru_maxrss)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        return kb / 1024, "process_peak_rss"
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"
