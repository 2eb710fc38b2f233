"""The regularizers: one small class each, hooking the trainer at one clear point.

Hook points (the trainer calls them in this order):
  model_kwargs()      model construction   dropout, batchnorm
  optimizer_kwargs()  optimizer            l2 / adamw (weight decay)
  transform(x)        each training batch  augment
  penalty(model)      added to the loss    l1
  end_epoch(state)    after validation     early_stopping, lr_plateau
  finish(state)       after the last epoch early_stopping (restore best weights)

To add one: a class here registered in PIECES, a field in config.TechniqueConfig, a
YAML file in conf/technique/, and a test in tests/test_regularizers.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench import config as C
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

    def model_kwargs(self) -> dict:
        return {}

    def optimizer_kwargs(self) -> dict:
        return {}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        return None

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
    """strength * sum |w| over weight matrices and kernels (biases excluded), per seed."""

    def __init__(self, cfg: C.L1Config, n_seeds: int, **_):
        self.strength, self.n_seeds = cfg.strength, n_seeds

    def penalty(self, model: nn.Module) -> torch.Tensor:
        S = self.n_seeds
        return self.strength * sum(w.abs().reshape(S, -1).sum(1) for w in weights(model))


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

    MLP: Gaussian input noise. CIFAR (images in [0, 1]): translation by up to crop_pad pixels
    (pad + random crop), horizontal flip and rotation in one affine resampling, then
    brightness/contrast/saturation jitter. Every sample draws its own parameters.
    """

    def __init__(self, cfg: C.AugmentConfig, task_name: str, **_):
        self.cfg, self.task_name = cfg, task_name

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.task_name == "mlp":
            return x + self.cfg.input_noise * torch.randn_like(x)
        return augment_images(x, self.cfg)


def augment_images(x: torch.Tensor, cfg: C.AugmentConfig) -> torch.Tensor:
    """x: float [N, 3, H, W] in [0, 1] -> augmented copy, each image with its own random parameters."""
    n, _, h, w = x.shape
    dev = x.device
    angle = (torch.rand(n, device=dev) * 2 - 1) * math.radians(cfg.rotate_deg)
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n, device=dev)
    shift = torch.randint(-cfg.crop_pad, cfg.crop_pad + 1, (n, 2), device=dev).float()
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([
        torch.stack([cos * flip, -sin, shift[:, 0] * 2 / w], dim=1),
        torch.stack([sin * flip, cos, shift[:, 1] * 2 / h], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.jitter > 0:
        def factor():
            return 1 + (torch.rand(n, 1, 1, 1, device=dev) * 2 - 1) * cfg.jitter

        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = x * factor()  # brightness
        mean = gray.mean(dim=(2, 3), keepdim=True)
        x = (x - mean) * factor() + mean  # contrast
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = (x - gray) * factor() + gray  # saturation
    return x.clamp_(0, 1)


class EarlyStopping(Regularizer):
    """Per seed: stop after `patience` epochs without val improvement > min_delta; restore the best weights.

    The best weights are a deep copy (a clone of every tensor), not the article's
    `state_dict().copy()`, which copies the dict but shares the tensors, so its "best"
    weights silently follow training.
    """

    def __init__(self, cfg: C.EarlyStoppingConfig, n_seeds: int, **_):
        self.cfg, self.n_seeds = cfg, n_seeds
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
        stop = state.active & (self.bad_epochs >= self.cfg.patience).to(state.active.device)
        state.stop_epoch[stop] = state.epoch
        state.active &= ~stop

    def finish(self, state: EpochState) -> None:
        if self.best_state is not None:
            state.model.load_state_dict(self.best_state)


class LRPlateau(Regularizer):
    """Per seed, torch's ReduceLROnPlateau(mode='min', threshold=1e-4 relative): lr *= factor after
    more than `patience` epochs without improvement."""

    def __init__(self, cfg: C.LRPlateauConfig, n_seeds: int, **_):
        self.cfg = cfg
        self.best = torch.full((n_seeds,), math.inf)
        self.bad_epochs = torch.zeros(n_seeds, dtype=torch.long)

    def end_epoch(self, state: EpochState) -> None:
        val = state.val_loss.cpu()
        improved = val < self.best * (1 - 1e-4)
        self.best = torch.where(improved, val, self.best)
        self.bad_epochs = torch.where(improved, 0, self.bad_epochs + 1)
        reduce = self.bad_epochs > self.cfg.patience
        state.lr[reduce.to(state.lr.device)] *= self.cfg.factor
        self.bad_epochs[reduce] = 0


PIECES: dict[str, type[Regularizer]] = {
    "l2": L2,
    "l1": L1,
    "dropout": Dropout,
    "batchnorm": BatchNorm,
    "augment": Augment,
    "early_stopping": EarlyStopping,
    "lr_plateau": LRPlateau,
}
assert tuple(PIECES) == C.PIECES, "every config piece needs a regularizer class, in the same order"


def build_regularizers(technique: C.TechniqueConfig, task_name: str, n_seeds: int) -> list[Regularizer]:
    return [PIECES[name](getattr(technique, name), n_seeds=n_seeds, task_name=task_name)
            for name in technique.pieces()]
