"""The regularizers: one small class each, overriding the hook(s) of bench/hooks.py it needs.

To add one: a class here registered in PIECES, a field in config.TechniqueConfig, a
YAML file in bench/conf/technique/, and a test in tests/test_regularizers.py.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

from bench import config as C
from bench.augment import augment_images, box_masks, cutout, mix_batch, scaled_augment
from bench.hooks import EpochState, NotApplicable, Regularizer
from bench.models import cross_entropy_per_seed, seed_of_row, weights
from bench.tasks import Task, get_task


class L2(Regularizer):
    """Weight decay in the optimizer: coupled (Adam's weight_decay, the article's L2) or decoupled (AdamW)."""

    def __init__(self, cfg: C.L2Config, **_):
        self.cfg = cfg

    def optimizer_kwargs(self) -> dict:
        return {"weight_decay": self.cfg.weight_decay, "decoupled": self.cfg.decoupled}


class L1(Regularizer):
    """Penalty strength * sum |w| over weight matrices and kernels (biases excluded), per seed.

    Its gradient strength * sign(w) (what autograd gives for |w|, 0 at 0) is added straight
    to the weights' gradients: same update as adding the penalty to the loss, without a
    second autograd pass (which cost the small MLP 0.3 ms a step).
    """

    def __init__(self, cfg: C.L1Config, **_):
        self.strength = cfg.strength

    def add_penalty_grad(self, model: nn.Module) -> None:
        with torch.no_grad():
            for w in weights(model):
                w.grad.add_(w.sign(), alpha=self.strength)


class L1Proximal(Regularizer):
    """The proximal (ISTA) form of the same penalty: after each optimizer step, soft-threshold every
    weight, w <- sign(w) * max(|w| - lr * strength, 0), with each seed's own learning rate. Unlike the
    subgradient, which makes weights oscillate around 0 but never land on it, this sets weights to
    exactly 0 (the prox of lr * strength * |w|, applied after Adam's step on the data loss alone)."""

    def __init__(self, cfg: C.L1Config, n_seeds: int, **_):
        self.strength, self.n_seeds = cfg.strength, n_seeds

    def after_step(self, model: nn.Module, lr: torch.Tensor) -> None:
        with torch.no_grad():
            for w in weights(model):
                threshold = (lr * self.strength)[seed_of_row(w, self.n_seeds)].view(-1, *[1] * (w.dim() - 1))
                w.copy_(soft_threshold(w, threshold))


def soft_threshold(w: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """sign(w) * max(|w| - threshold, 0): the proximal operator of threshold * |w|."""
    return w.sign() * (w.abs() - threshold).clamp_min(0)


def l1_regularizer(cfg: C.L1Config, **kwargs) -> Regularizer:
    return L1Proximal(cfg, **kwargs) if cfg.proximal else L1(cfg, **kwargs)


l1_regularizer.applies_to = Regularizer.applies_to


class Dropout(Regularizer):
    """Dropout(p) after hidden fully connected activations, Dropout2d(p_conv) after conv blocks."""

    def __init__(self, cfg: C.DropoutConfig, **_):
        self.cfg = cfg

    def model_kwargs(self) -> dict:
        return {"dropout": self.cfg.p, "dropout_conv": self.cfg.p_conv}


class BatchNorm(Regularizer):
    """BatchNorm before every hidden activation."""

    def __init__(self, cfg: C.BatchNormConfig, **_):
        self.cfg = cfg

    def model_kwargs(self) -> dict:
        return {"batchnorm_momentum": self.cfg.momentum}


class Augment(Regularizer):
    """Per-sample random augmentation of training batches, on the device.

    MLP: Gaussian input noise. CIFAR (images in [0, 1]): translation by up to crop_pad whole
    pixels (pad + random crop), horizontal flip and rotation in one nearest-neighbour
    resampling (torchvision's RandomRotation default), then brightness/contrast/saturation
    jitter. Every sample draws its own parameters.
    """

    def __init__(self, cfg: C.AugmentConfig, task: Task, **_):
        self.cfg, self.images = scaled_augment(cfg), task.images

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.images:
            return augment_images(x, self.cfg)
        return x + self.cfg.input_noise * torch.randn_like(x)


class EarlyStopping(Regularizer):
    """Per seed: stop after `patience` epochs (patience_frac of the budget) without val improvement > min_delta;
    restore the best weights.

    The best weights are a deep copy (a clone of every tensor), not the article's
    `state_dict().copy()`, which copies the dict but shares the tensors, so its "best"
    weights silently follow training.
    """

    uses_validation = True

    def __init__(self, cfg: C.EarlyStoppingConfig, n_seeds: int, epochs: int, **_):
        self.cfg, self.n_seeds = cfg, n_seeds
        self.patience = C.patience_epochs(cfg.patience_frac, epochs)
        self.best = torch.full((n_seeds,), math.inf)
        self.bad_epochs = torch.zeros(n_seeds, dtype=torch.long)
        self.best_state: dict[str, torch.Tensor] | None = None

    def end_epoch(self, state: EpochState) -> None:
        S = self.n_seeds
        val = state.val_loss.cpu()
        improved = (val < self.best - self.cfg.min_delta) & state.active.cpu()
        self.best = torch.where(improved, val, self.best)
        self.bad_epochs = torch.where(improved, 0, self.bad_epochs + 1)
        current = state.model.state_dict()
        if self.best_state is None:
            self.best_state = {k: t.detach().clone() for k, t in current.items()}
        mask = improved.to(state.val_loss.device)
        for k, t in current.items():
            if t.dim() > 0:  # skip scalar counters such as num_batches_tracked
                rows = mask[seed_of_row(t, S)]
                self.best_state[k][rows] = t[rows]
        stop = state.active & (self.bad_epochs >= self.patience).to(state.active.device)
        state.stop_epoch[stop] = state.epoch
        state.active &= ~stop

    def finish(self, state: EpochState) -> None:
        if self.best_state is not None:
            state.model.load_state_dict(self.best_state)


class LRPlateau(Regularizer):
    """Per seed, torch's ReduceLROnPlateau(mode='min', threshold=1e-4 relative): lr *= factor after
    more than `patience` epochs (patience_frac of the budget) without improvement."""

    uses_validation = True

    def __init__(self, cfg: C.LRPlateauConfig, n_seeds: int, epochs: int, **_):
        self.cfg = cfg
        self.patience = C.patience_epochs(cfg.patience_frac, epochs)
        self.best = torch.full((n_seeds,), math.inf)
        self.bad_epochs = torch.zeros(n_seeds, dtype=torch.long)

    def end_epoch(self, state: EpochState) -> None:
        val = state.val_loss.cpu()
        improved = val < self.best * (1 - 1e-4)
        self.best = torch.where(improved, val, self.best)
        self.bad_epochs = torch.where(improved, 0, self.bad_epochs + 1)
        reduce = self.bad_epochs > self.patience
        state.lr[reduce.to(state.lr.device)] *= self.cfg.factor
        self.bad_epochs[reduce] = 0


class LabelSmoothing(Regularizer):
    """Cross-entropy against (1 - eps) * one-hot + eps / classes: F.cross_entropy(label_smoothing=eps)."""

    def __init__(self, cfg: C.LabelSmoothingConfig, **_):
        self.eps = cfg.eps

    @staticmethod
    def applies_to(cfg, task: Task) -> bool:
        return task.classification

    def train_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cross_entropy_per_seed(out, y, label_smoothing=self.eps)


class Mixup(Regularizer):
    """Each seed's batch mixed with a shuffled copy of itself at lambda ~ Beta(alpha, alpha), one lambda per
    seed and batch: inputs blended (mixup) or a box of area 1 - lambda pasted (CutMix, lambda then set to
    the box's exact share), targets mixed by the same lambda (one-hot for classes). With a cross-entropy
    or MSE loss this trains on lambda * loss(y) + (1 - lambda) * loss(y_shuffled), up to a constant."""

    def __init__(self, cfg: C.MixupConfig, task: Task, **_):
        self.cfg, self.n_classes = cfg, task.n_classes
        self.beta = torch.distributions.Beta(cfg.alpha, cfg.alpha)

    @staticmethod
    def applies_to(cfg: C.MixupConfig, task: Task) -> bool:
        return task.images or not cfg.cutmix

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        S, B = y.shape[:2]
        lam = self.beta.sample((S,)).to(x.device)
        perm = torch.argsort(torch.rand(S, B, device=x.device), dim=1)
        box = None
        if self.cfg.cutmix:
            box, lam = box_masks(S, x.shape[-2], x.shape[-1], 1 - lam, x.device)
        self.last_lambda = lam
        return mix_batch(x, y, lam, perm, self.n_classes, box)


class Cutout(Regularizer):
    """Zero a square of side size_frac * image side at a random centre of each training image (clipped at
    the border), on normalized inputs, so the square holds the dataset's mean colour (DeVries & Taylor)."""

    def __init__(self, cfg: C.CutoutConfig, **_):
        self.size_frac = cfg.size_frac

    @staticmethod
    def applies_to(cfg, task: Task) -> bool:
        return task.images

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cutout(x.flatten(0, 1), self.size_frac).view_as(x), y


class EMA(Regularizer):
    """An exponential moving average of the weights (and batch-norm statistics), updated after every step;
    every measurement (validation, curves, finals) uses the average, and it replaces the weights at the end."""

    def __init__(self, cfg: C.EMAConfig, **_):
        self.decay, self.steps, self.average = cfg.decay, 0, None

    def after_step(self, model: nn.Module, lr: torch.Tensor) -> None:
        live = averaged_tensors(model)
        self.steps += 1
        if self.average is None:
            self.average = [t.detach().clone() for t in live]
            return
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for avg, t in zip(self.average, live):
                avg.lerp_(t, 1 - decay)

    @contextmanager
    def eval_weights(self, model: nn.Module):
        if self.average is None:
            yield
            return
        live = averaged_tensors(model)
        saved = [t.detach().clone() for t in live]
        copy_into(live, self.average)
        try:
            yield
        finally:
            copy_into(live, saved)

    def finish(self, state: EpochState) -> None:
        if self.average is not None:
            copy_into(averaged_tensors(state.model), self.average)


def averaged_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Parameters and floating buffers (batch-norm running statistics), not integer counters."""
    return list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]


@torch.no_grad()
def copy_into(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    for t, src in zip(targets, sources):
        t.copy_(src)


PIECES: dict[str, Callable[..., Regularizer]] = {  # config piece -> its regularizer
    "l2": L2,
    "l1": l1_regularizer,
    "dropout": Dropout,
    "batchnorm": BatchNorm,
    "augment": Augment,
    "early_stopping": EarlyStopping,
    "lr_plateau": LRPlateau,
    "label_smoothing": LabelSmoothing,
    "mixup": Mixup,
    "cutout": Cutout,
    "ema": EMA,
}
assert tuple(PIECES) == C.PIECES, "every config piece needs a regularizer class, in the same order"


def conflict(technique: C.TechniqueConfig) -> str | None:
    """Why these pieces cannot be combined, or None: two replacements of the training loss; EMA with early
    stopping (the stopping rule reads the average's validation loss, but its snapshot and restore would be
    of the live weights)."""
    losses = [name for name in technique.pieces()
              if getattr(PIECES[name], "train_loss", Regularizer.train_loss) is not Regularizer.train_loss]
    if len(losses) > 1:
        return f"only one piece may replace the training loss, got {', '.join(losses)}"
    if technique.ema is not None and technique.early_stopping is not None:
        return "ema with early_stopping is not supported (early stopping would restore live, not averaged, weights)"
    return None


def inapplicable(technique: C.TechniqueConfig, task_cfg: C.TaskConfig) -> str | None:
    """Why this technique cannot run on this task (a piece with no meaning there), or None."""
    task = get_task(task_cfg.name)
    for name in technique.pieces():
        if not PIECES[name].applies_to(getattr(technique, name), task):
            what = name if name == technique.name else f"{technique.name} (its {name} piece)"
            return f"{what} does not apply to task {task.name}"
    return None


def build_regularizers(technique: C.TechniqueConfig, task_cfg: C.TaskConfig, n_seeds: int) -> list[Regularizer]:
    """The technique's regularizers for this task; NotApplicable when one has no meaning here."""
    if reason := inapplicable(technique, task_cfg):
        raise NotApplicable(reason)
    if reason := conflict(technique):
        raise C.ConfigError(reason)
    regs = [PIECES[name](getattr(technique, name), n_seeds=n_seeds, task=get_task(task_cfg.name),
                         epochs=task_cfg.epochs) for name in technique.pieces()]
    return regs
