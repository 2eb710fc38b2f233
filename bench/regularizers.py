"""The regularizers: one small class each, hooking the trainer at one clear point.

Hook points (the trainer calls them in this order):
  model_kwargs()      model construction   dropout, batchnorm
  optimizer_kwargs()  optimizer            l2 / adamw (weight decay)
  transform(x)        each training batch  augment
  add_penalty_grad(m) after backward       l1 (adds the penalty's gradient to the weights' .grad)
  after_step(m, lr)   after optimizer step l1 proximal (soft-threshold of the weights)
  end_epoch(state)    after validation     early_stopping, lr_plateau (they set uses_validation)
  finish(state)       after the last epoch early_stopping (restore best weights)

To add one: a class here registered in PIECES, a field in config.TechniqueConfig, a
YAML file in conf/technique/, and a test in tests/test_regularizers.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from bench import config as C
from bench.augment import augment_images
from bench.models import seed_of_row, weights


@dataclass
class EpochState:
    """Per-seed training state the epoch-end hooks read and change. Tensors are [S]."""

    model: nn.Module
    epoch: int
    val_loss: torch.Tensor
    lr: torch.Tensor  # each seed's learning rate (the optimizer reads it every step)
    active: torch.Tensor  # bool: seeds still training (stopped or diverged seeds are frozen)
    stop_epoch: torch.Tensor  # int: epoch at which a seed stopped early, -1 if it did not


class Regularizer:
    """Base class: every hook does nothing."""

    uses_validation = False  # reads the validation loss every epoch, so its validation passes are part of its cost

    def model_kwargs(self) -> dict:
        return {}

    def optimizer_kwargs(self) -> dict:
        return {}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def add_penalty_grad(self, model: nn.Module) -> None:
        pass

    def after_step(self, model: nn.Module, lr: torch.Tensor) -> None:
        pass

    def end_epoch(self, state: EpochState) -> None:
        pass

    def finish(self, state: EpochState) -> None:
        pass


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

    def __init__(self, cfg: C.AugmentConfig, task_name: str, **_):
        self.cfg, self.task_name = scaled_augment(cfg), task_name

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.task_name == "mlp":
            return x + self.cfg.input_noise * torch.randn_like(x)
        return augment_images(x, self.cfg)


def scaled_augment(cfg: C.AugmentConfig) -> C.AugmentConfig:
    """The settings at cfg.strength: noise, shift, rotation and jitter multiplied by it (shift rounded to whole
    pixels, jitter kept below 1 so colour factors stay positive)."""
    s = cfg.strength
    return C.AugmentConfig(strength=1.0, input_noise=cfg.input_noise * s, crop_pad=round(cfg.crop_pad * s),
                           flip=cfg.flip and s > 0, rotate_deg=cfg.rotate_deg * s, jitter=min(cfg.jitter * s, 0.9))


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


PIECES: dict[str, Callable[..., Regularizer]] = {  # config piece -> its regularizer
    "l2": L2,
    "l1": l1_regularizer,
    "dropout": Dropout,
    "batchnorm": BatchNorm,
    "augment": Augment,
    "early_stopping": EarlyStopping,
    "lr_plateau": LRPlateau,
}
assert tuple(PIECES) == C.PIECES, "every config piece needs a regularizer class, in the same order"


def build_regularizers(technique: C.TechniqueConfig, task: C.TaskConfig, n_seeds: int) -> list[Regularizer]:
    return [PIECES[name](getattr(technique, name), n_seeds=n_seeds, task_name=task.name, epochs=task.epochs)
            for name in technique.pieces()]
