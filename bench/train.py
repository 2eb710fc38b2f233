"""The trainer: trains S seeds of one cell as one stacked ensemble, epoch after epoch, and measures them.

Each seed keeps its own init, data order, dropout masks, learning rate, early-stopping
state and divergence status; `vectorize=off` trains the seeds one by one (S = 1), the
reference path. No Hydra here: the inputs are the plain dataclasses of bench.config.
Inputs come from bench/inputs.py, measurements from bench/measure.py, rows from bench/seed_rows.py;
make_trainer, train_epoch, train_seeds, evaluate, eval_batches, reference_step_seconds and Trainer are
imported from here by other code.
"""
from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from bench.config import TaskConfig, TechniqueConfig
from bench.data import Split, TaskData
from bench.hooks import EpochState, Regularizer, overrides
from bench.inputs import epoch_batches, eval_batches
from bench.measure import CURVE_MAX, curve_point, evaluate, quartiles, reset_peak_memory, seed_list
from bench.models import init_per_seed
from bench.optim import SeedAdam
from bench.regularizers import build_regularizers
from bench.seed_rows import final_metrics, per_seed_rows
from bench.tasks import Task, get_task

CURVE_POINTS = 5  # by default a curve point every epochs // 5 epochs and at the last: every epochs // 10 cost CIFAR 7.5% of its training
DIVERGENCE_FACTOR = 100.0  # a seed diverged when its loss is NaN/inf or this many times its initial val loss
# The yardstick before each run: 1 + at least 5 timed passes over the whole batches in the first 512 training
# samples (the MLP's 100, CIFAR's 4 batches). Passes of 2 CIFAR batches (0.27 s in all instead of 0.5 s, 28 s
# less per make bench) stopped tracking the runs: over the article grid's 18 CIFAR runs that add no work, the
# correlation of yardstick and run fell from 0.74 to 0.01 and the spread in yardstick steps rose above the raw one.
REFERENCE_SAMPLES, REFERENCE_REPEATS = 512, 5
REFERENCE_MIN_SECONDS = 0.25  # and passes until they add up to this: 5 MLP passes were 11 ms, noisier than the MLP's runs
REFERENCE_MAX_PASSES = 500
clock = time.perf_counter  # every time taken here reads this clock (the tests put a fake one in its place)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def reference_step_seconds(task: TaskConfig, seeds: list[int], data: TaskData, device: torch.device) -> tuple[float, float]:
    """Seconds per training step of the task's plain network (technique none, same seeds and data), timed just
    before a run: the median of the passes over the whole batches in the first REFERENCE_SAMPLES samples (after
    one untimed pass; at least REFERENCE_REPEATS, and as many as add up to REFERENCE_MIN_SECONDS, at most
    REFERENCE_MAX_PASSES), and their IQR / median.

    The yardstick of cost: the report divides a run's times by it, so a technique and none compare as if timed
    at the same moment. On the shared 2-core dev VM, cells that add no work per step (l2, adamw, ema) timed
    1.4-1.5x none's per-epoch step time a few minutes later in one `make bench` run, with a 3-17% IQR inside
    each cell. It does not touch the run's random streams: make_trainer reseeds them for the run itself."""
    tr = make_trainer(task, TechniqueConfig(), seeds, device)
    part = data.train.head(max(1, REFERENCE_SAMPLES // task.batch_size) * task.batch_size)  # whole batches
    lr = torch.full((len(seeds),), task.lr, device=device)
    train_epoch(tr, part, lr)  # warm-up: a process's first cell otherwise timed a 1.8x slower yardstick (MLP)
    times = []
    while len(times) < REFERENCE_REPEATS or (sum(times) < REFERENCE_MIN_SECONDS
                                             and len(times) < REFERENCE_MAX_PASSES):
        sync(device)
        t0 = clock()
        train_epoch(tr, part, lr)
        sync(device)
        times.append(clock() - t0)
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
        t0 = clock()
        running = train_epoch(tr, data.train, state.lr * state.active)
        sync(device)
        t1 = clock()
        val_loss, val_acc = measure(val)
        sync(device)
        t2 = clock()
        record = {"epoch": epoch, "lr": seed_list(state.lr), "train_s": (t1 - t0) / S,
                  "train_loss_running": seed_list(running), "val_loss": seed_list(val_loss),
                  "val_acc": seed_list(val_acc) if val_acc is not None else None}
        state.epoch, state.val_loss = epoch, val_loss
        finite = torch.isfinite(running) & torch.isfinite(val_loss)
        blew_up = state.active & ~(finite & (val_loss < DIVERGENCE_FACTOR * initial_val))
        diverged_epoch[blew_up] = epoch
        state.active &= ~blew_up
        for reg in tr.regs:
            reg.end_epoch(state)
        sync(device)
        t3 = clock()
        done = epoch == task.epochs or not state.active.any()
        if epoch % curve_every == 0 or done:
            record.update(curve_point(measure, curves))
        history.append(record)
        seconds["step"].append(t1 - t0)
        seconds["val"] += t2 - t1
        seconds["hooks"] += t3 - t2
        seconds["curves"] += clock() - t3
        if progress:  # .item() waits for the device
            bar.set_postfix(val=f"{val_loss.nanmean().item():.4g}")
        if done:
            break
    for reg in tr.regs:
        reg.finish(state)
    del curves
    finals = final_metrics(tr, data, val)  # the validation batches serve the finals too
    return per_seed_rows(tr, data, state, diverged_epoch, history, initial_val, seconds, seeds, reference, finals)
