"""The hook points a regularizer can use: the base class the trainer calls, in this order.

  model_kwargs()      model construction     dropout, batchnorm
  optimizer_kwargs()  optimizer              l2 / adamw (weight decay)
  transform(x)        each sample, raw input augment (before normalization)
  batch(x, y)         each training batch    mixup / cutmix (mix inputs and targets), cutout
  train_loss(out, y)  the training loss      label_smoothing (one regularizer at most)
  add_penalty_grad(m) after backward         l1 (adds the penalty's gradient to the weights' .grad)
  after_step(m, lr)   after optimizer step   l1 proximal (soft-threshold), ema (update the average)
  eval_weights(m)     around every measure   ema (evaluate the averaged weights)
  end_epoch(state)    after validation       early_stopping, lr_plateau (they set uses_validation)
  finish(state)       after the last epoch   early_stopping (restore best weights), ema (keep the average)

A regularizer that does not fit a task says so in `applies_to` (the cell is skipped, not failed).
The MLP's hand-written step supports every hook but train_loss; a cell using it trains with autograd.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from bench.config import ConfigError
from bench.tasks import Task


def overrides(reg: "Regularizer", hook: str) -> bool:
    """Whether this regularizer's class overrides the base class's (do-nothing) hook."""
    return getattr(type(reg), hook) is not getattr(Regularizer, hook)


class NotApplicable(ConfigError):
    """A regularizer that has no meaning for this task (e.g. label smoothing on regression)."""


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

    @staticmethod
    def applies_to(cfg, task: Task) -> bool:
        """False when the piece has no meaning for this task."""
        return True

    def model_kwargs(self) -> dict:
        return {}

    def optimizer_kwargs(self) -> dict:
        return {}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def train_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def add_penalty_grad(self, model: nn.Module) -> None:
        pass

    def after_step(self, model: nn.Module, lr: torch.Tensor) -> None:
        pass

    def eval_weights(self, model: nn.Module):
        return nullcontext()

    def end_epoch(self, state: EpochState) -> None:
        pass

    def finish(self, state: EpochState) -> None:
        pass
