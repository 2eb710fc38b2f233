"""The trainer: trains S seeds of one cell as one stacked ensemble and measures them.

Each seed keeps its own init, data order, dropout masks, learning rate, early-stopping
state and divergence status; `vectorize=off` trains the seeds one by one (S = 1), the
reference path. No Hydra here: the inputs are the plain dataclasses of bench.config.
"""
from __future__ import annotations

import math
import resource
import time
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from bench.config import TaskConfig, TechniqueConfig
from bench.data import Split, TaskData
from bench.hooks import EpochState, Regularizer, overrides
from bench.models import init_per_seed, weights
from bench.optim import SeedAdam
from bench.regularizers import build_regularizers
from bench.tasks import Task, get_task

EVAL_BATCH = 1000
CHUNK_SAMPLES = 512  # training inputs are prepared this many samples at a time (see epoch_batches)
CURVE_MAX = 500  # learning-curve train and test points (eval mode) use at most this many samples; finals use all
CURVE_POINTS = 5  # by default a curve point every epochs // 5 epochs and at the last: every epochs // 10 cost CIFAR 7.5% of its training
DIVERGENCE_FACTOR = 100.0  # a seed diverged when its loss is NaN/inf or this many times its initial val loss
# The yardstick before each run: 1 + at least 5 timed passes over the whole batches in the first 512 training
# samples (the MLP's 100, CIFAR's 4 batches). Passes of 2 CIFAR batches (0.27 s in all instead of 0.5 s, 28 s
# less per make bench) stopped tracking the runs: over the article grid's 18 CIFAR runs that add no work, the
# correlation of yardstick and run fell from 0.74 to 0.01 and the spread in yardstick steps rose above the raw one.
REFERENCE_SAMPLES, REFERENCE_REPEATS = 512, 5
REFERENCE_MIN_SECONDS = 0.25  # and passes until they add up to this: 5 MLP passes were 11 ms, noisier than the MLP's runs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gather(t: torch.Tensor, idx: torch.Tensor, per_seed: bool = False) -> torch.Tensor:
    """Seed s's samples idx[s] of t [N, ...] (or of its own t[s] when per_seed, t [S, N, ...]) -> [S, B, ...],
    by index_select (10x faster than t[idx] on CPU)."""
    if per_seed:
        S, n = t.shape[:2]
        idx = idx + torch.arange(S, device=idx.device)[:, None] * n
        t = t.flatten(0, 1)
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def model_inputs(x: torch.Tensor, task: Task, transforms: list[Regularizer] = ()) -> torch.Tensor:
    """Raw stored samples [S, B, ...] -> network input: to float, training transforms, normalization."""
    x = task.to_float(x)
    for reg in transforms:
        x = reg.transform(x.flatten(0, 1)).view_as(x)
    return task.normalize(x)


def eval_batches(split: Split, task: Task, n_seeds: int):
    """Yield (network inputs [S, b, ...], targets [S, b]) of a split, EVAL_BATCH samples at a time (every seed's
    own samples if split.per_seed, else the shared ones for each seed), in the model's input layout. The sets
    measured every epoch are prepared once a run: CIFAR's conversion, normalization and layout were 10% of
    its validation pass (65 -> 59 ms for 1,000 images)."""
    for i in range(0, len(split), EVAL_BATCH):
        if split.per_seed:
            x, y = split.x[:, i : i + EVAL_BATCH], split.y[:, i : i + EVAL_BATCH]
        else:
            x, y = split.x[i : i + EVAL_BATCH], split.y[i : i + EVAL_BATCH]
            x, y = x.expand(n_seeds, *x.shape), y.expand(n_seeds, *y.shape)
        yield task.input_layout(model_inputs(x, task)), y


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


def weight_stats(model: nn.Module, n_seeds: int) -> dict[str, torch.Tensor]:
    """Per seed: L2 norm of all weights, fraction of weights exactly 0 and with |w| < 1e-3."""
    w = torch.cat([w.detach().reshape(n_seeds, -1) for w in weights(model)], dim=1)
    return {
        "weight_l2_norm": w.norm(dim=1),
        "frac_weights_zero": (w == 0).float().mean(1),
        "frac_weights_below_1e-3": (w.abs() < 1e-3).float().mean(1),
    }


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


def _seed_list(values: torch.Tensor) -> list:
    return [float(v) for v in values.cpu()]


@dataclass
class Trainer:
    """One cell's S stacked seeds and everything their training steps need."""

    cfg: TaskConfig
    task: Task
    model: nn.Module
    opt: SeedAdam
    regs: list[Regularizer]
    gens: list[torch.Generator]  # one per seed: its init and its data order
    device: torch.device
    by_hand: bool = False  # gradients from model.train_step (the MLP's, written by hand) instead of autograd

    @property
    def n_seeds(self) -> int:
        return len(self.gens)

    def hooked(self, hook: str) -> list[Regularizer]:
        """The regularizers that override this hook."""
        return [r for r in self.regs if overrides(r, hook)]

    def measuring(self) -> ExitStack:
        """Context for every measurement: the weights regularizers evaluate (EMA's average)."""
        stack = ExitStack()
        for reg in self.hooked("eval_weights"):
            stack.enter_context(reg.eval_weights(self.model))
        return stack


BY_HAND_UNSUPPORTED = ("train_loss",)  # hooks the hand-written step cannot honour: such cells use autograd


def make_trainer(cfg: TaskConfig, technique: TechniqueConfig, seeds: list[int], device: torch.device,
                 autograd: bool = False) -> Trainer:
    """Build the stacked model with each seed's own init, the regularizers and the optimizer.

    A task whose model has a hand-written step (the MLP) uses it unless `autograd` is set or a
    regularizer hooks what that step cannot honour (BY_HAND_UNSUPPORTED): never silently ignored."""
    S, task = len(seeds), get_task(cfg.name)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    torch.manual_seed(hash(tuple(seeds)) % 2**31)  # dropout masks and augmentation draws
    regs = build_regularizers(technique, cfg, S)
    model_kwargs = {k: v for r in regs for k, v in r.model_kwargs().items()}
    opt_kwargs = {k: v for r in regs for k, v in r.optimizer_kwargs().items()}
    model = task.build_model(S, cfg, **model_kwargs)
    init_per_seed(model, gens)
    model.to(device)
    opt = SeedAdam(model.parameters(), S, **opt_kwargs)
    tr = Trainer(cfg, task, model, opt, regs, gens, device)
    tr.by_hand = (task.hand_written_step and not autograd and model.hand_step_supported()
                  and not any(tr.hooked(h) for h in BY_HAND_UNSUPPORTED))
    return tr


def epoch_batches(train: Split, perms: torch.Tensor, batch_size: int, task: Task,
                  transforms: list[Regularizer] = ()):
    """Yield (network inputs, targets) batch after batch, each seed's samples in its order perms [S, n].

    Inputs are gathered, augmented and normalized for CHUNK_SAMPLES samples at a time, and
    batches are views of that: the per-call cost of the pipeline's small ops (~0.3 ms on
    CPU, about what augmenting a batch of 128 images costs) is paid once per chunk.
    """
    per_chunk = batch_size * max(1, CHUNK_SAMPLES // batch_size)
    for start in range(0, perms.shape[1], per_chunk):
        idx = perms[:, start : start + per_chunk]
        xs = model_inputs(gather(train.x, idx, train.per_seed), task, transforms)
        ys = gather(train.y, idx, train.per_seed)
        for i in range(0, idx.shape[1], batch_size):
            yield xs[:, i : i + batch_size], ys[:, i : i + batch_size]


def train_epoch(tr: Trainer, train: Split, lr: torch.Tensor) -> torch.Tensor:
    """One pass over the training set, each seed in its own random order. Returns each seed's mean
    training loss (train mode, the loss trained on: without L1's penalty, with mixed or smoothed targets
    where a regularizer makes them) as a tensor: no host sync inside the loop."""
    n = len(train)
    replaced = tr.hooked("train_loss")  # the task's loss, or the one regularizer's that replaces it
    train_loss = replaced[0].train_loss if replaced else tr.task.loss
    transforms, batch_hooks = tr.hooked("transform"), tr.hooked("batch")
    penalties, after_step = tr.hooked("add_penalty_grad"), tr.hooked("after_step")
    tr.model.train()
    tr.opt.set_rates(lr)
    perms = torch.stack([torch.randperm(n, generator=g) for g in tr.gens]).to(tr.device)
    running = torch.zeros(tr.n_seeds, device=tr.device)
    for x, y in epoch_batches(train, perms, tr.cfg.batch_size, tr.task, transforms):
        for reg in batch_hooks:
            x, y = reg.batch(x, y)
        if tr.by_hand:
            losses = tr.model.train_step(x, y)  # overwrites every .grad
        else:
            tr.opt.zero_grad()
            with tr.task.autocast(tr.device):
                out = tr.model(x).float()
            losses = train_loss(out, y)
            losses.sum().backward()
        for reg in penalties:
            reg.add_penalty_grad(tr.model)
        tr.opt.step()
        for reg in after_step:
            reg.after_step(tr.model, lr)
        running.add_(losses.detach(), alpha=y.shape[1])
    return running / n


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile of a list of timings."""
    q1, median, q3 = torch.tensor(values).quantile(torch.tensor([0.25, 0.5, 0.75])).tolist()
    return q1, median, q3


def reference_step_seconds(task: TaskConfig, seeds: list[int], data: TaskData, device: torch.device) -> tuple[float, float]:
    """Seconds per training step of the task's plain network (technique none, same seeds and data), timed just
    before a run: the median of the passes over the whole batches in the first REFERENCE_SAMPLES samples (after
    one untimed pass; at least REFERENCE_REPEATS, and as many as add up to REFERENCE_MIN_SECONDS, at most 500),
    and their IQR / median.

    The yardstick of cost: the report divides a run's times by it, so a technique and none compare as if timed
    at the same moment. On the shared 2-core dev VM, cells that add no work per step (l2, adamw, ema) timed
    1.4-1.5x none's per-epoch step time a few minutes later in one `make bench` run, with a 3-17% IQR inside
    each cell. It does not touch the run's random streams: make_trainer reseeds them for the run itself."""
    tr = make_trainer(task, TechniqueConfig(), seeds, device)
    part = data.train.head(max(1, REFERENCE_SAMPLES // task.batch_size) * task.batch_size)  # whole batches
    lr = torch.full((len(seeds),), task.lr, device=device)
    train_epoch(tr, part, lr)  # warm-up: a process's first cell otherwise timed a 1.8x slower yardstick (MLP)
    times = []
    while len(times) < REFERENCE_REPEATS or (sum(times) < REFERENCE_MIN_SECONDS and len(times) < 500):
        sync(device)
        t0 = time.perf_counter()
        train_epoch(tr, part, lr)
        sync(device)
        times.append(time.perf_counter() - t0)
    q1, median, q3 = quartiles([t / math.ceil(len(part) / task.batch_size) for t in times])
    return median, (q3 - q1) / median


def train_seeds(task: TaskConfig, technique: TechniqueConfig, seeds: list[int], data: TaskData,
                device: torch.device, progress: bool = False, autograd: bool = False) -> list[dict]:
    """Train one cell for all `seeds` at once; return one metrics dict per seed.

    Every epoch: the training steps, then the validation pass (early stopping, the LR schedule and
    best-epoch selection read it), then the epoch-end hooks; every `curve_every` epochs and at the
    end also a learning-curve point on at most CURVE_MAX train and test samples. Each part is timed
    on its own, so a technique is charged only for what it uses; before the run, the yardstick of
    reference_step_seconds."""
    reference = reference_step_seconds(task, seeds, data, device)
    reset_peak_memory(device)  # the run's peak memory is its own, not the yardstick's or an earlier cell's
    tr = make_trainer(task, technique, seeds, device, autograd)
    S, model = tr.n_seeds, tr.model

    def measure(batches: list) -> tuple[torch.Tensor, torch.Tensor | None]:
        with tr.measuring():
            return evaluate(model, batches, tr.task)

    val = list(eval_batches(data.val, tr.task, S))  # measured every epoch: prepared once
    curves = {name: list(eval_batches(getattr(data, name).head(CURVE_MAX), tr.task, S)) for name in ("train", "test")}

    state = EpochState(model, 0, torch.zeros(S, device=device), torch.full((S,), task.lr, device=device),
                       torch.ones(S, dtype=torch.bool, device=device), torch.full((S,), -1, device=device))
    diverged_epoch = torch.full((S,), -1, device=device)
    initial_val = measure(val)[0]
    curve_every = task.curve_every or max(1, task.epochs // CURVE_POINTS)
    history: list[dict] = []
    seconds = {"step": [], "val": 0.0, "hooks": 0.0, "curves": 0.0}  # step: per epoch; the rest summed
    bar = tqdm(range(1, task.epochs + 1), desc=f"{task.name}/{technique.name} x{S}", leave=False, disable=not progress)
    for epoch in bar:
        sync(device)
        t0 = time.perf_counter()
        running = train_epoch(tr, data.train, state.lr * state.active)
        sync(device)
        t1 = time.perf_counter()
        val_loss, val_acc = measure(val)
        sync(device)
        t2 = time.perf_counter()
        record = {"epoch": epoch, "lr": _seed_list(state.lr), "train_s": (t1 - t0) / S,
                  "train_loss_running": _seed_list(running), "val_loss": _seed_list(val_loss),
                  "val_acc": _seed_list(val_acc) if val_acc is not None else None}
        state.epoch, state.val_loss = epoch, val_loss
        finite = torch.isfinite(running) & torch.isfinite(val_loss)
        blew_up = state.active & ~(finite & (val_loss < DIVERGENCE_FACTOR * initial_val))
        diverged_epoch[blew_up] = epoch
        state.active &= ~blew_up
        for reg in tr.regs:
            reg.end_epoch(state)
        sync(device)
        t3 = time.perf_counter()
        done = epoch == task.epochs or not state.active.any()
        if epoch % curve_every == 0 or done:
            record.update(curve_point(measure, curves))
        history.append(record)
        seconds["step"].append(t1 - t0)
        seconds["val"] += t2 - t1
        seconds["hooks"] += t3 - t2
        seconds["curves"] += time.perf_counter() - t3
        if progress:  # .item() waits for the device
            bar.set_postfix(val=f"{val_loss.nanmean().item():.4g}")
        if done:
            break
    for reg in tr.regs:
        reg.finish(state)
    del val, curves  # the finals prepare their own batches
    return per_seed_rows(tr, data, state, diverged_epoch, history, initial_val, seconds, seeds, reference)


def curve_point(measure, curves: dict[str, list]) -> dict:
    """Eval-mode train and test loss (and accuracy) on at most CURVE_MAX samples, per seed."""
    point = {}
    for name, batches in curves.items():
        loss, acc = measure(batches)
        point[f"{name}_loss"] = _seed_list(loss)
        if acc is not None:
            point[f"{name}_acc"] = _seed_list(acc)
    return point


def final_metrics(tr: Trainer, data: TaskData) -> dict[str, torch.Tensor]:
    """Eval-mode loss (and accuracy) on the full splits, the gap test - train loss (and train - test accuracy)."""
    finals = {}
    for name in ("train", "val", "test"):
        loss, acc = evaluate(tr.model, eval_batches(getattr(data, name), tr.task, tr.n_seeds), tr.task)
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
                  initial_val: torch.Tensor, seconds: dict, seeds: list[int], reference: tuple[float, float]) -> list[dict]:
    """Final (eval-mode, full splits) metrics, best epoch, timing and weight statistics of each seed.

    Timing is the stacked run's, shared equally by its S seeds: the report takes per-epoch cost once
    per run (cell_run_id), never once per seed."""
    S, task = tr.n_seeds, tr.cfg
    finals = final_metrics(tr, data)
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
