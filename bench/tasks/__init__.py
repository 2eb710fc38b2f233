"""Tasks: one module each in this folder, holding one Task object (its data, model, loss and metric).

A new task is a module here that defines `TASK`, plus its YAML in bench/conf/task/. Listing the
tasks reads only this folder's file names, so config validation needs no torch import.
"""
from __future__ import annotations

import importlib
import pkgutil
from contextlib import nullcontext


def task_names() -> list[str]:
    """Every module in this folder is a task."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__))


def get_task(name: str) -> "Task":
    return importlib.import_module(f"{__name__}.{name}").TASK


class Task:
    """What a task is to the trainer. Subclasses fill every method; the defaults suit vector inputs."""

    name = ""
    classification = False  # metric: accuracy with cross-entropy (targets int or soft); else MSE
    n_classes = 0
    images = False  # inputs are uint8 images [N, 3, H, W] (image augmentations apply)
    hand_written_step = False  # the model has train_step(x, y): forward and backward by hand (see models.MLP)
    stack_on_cpu = True  # stacking seeds pays on CPU (grouped convolutions do not)

    def load_data(self, cfg, device, seeds):
        """TaskData (train/val/test splits already on the device) for these seeds."""
        raise NotImplementedError

    def build_model(self, n_seeds: int, cfg, **regularizer_kwargs):
        raise NotImplementedError

    def loss(self, out, y):
        """Mean training/evaluation loss of each seed, [S]."""
        raise NotImplementedError

    def to_float(self, x):
        """Stored samples -> float inputs, before training transforms."""
        return x

    def normalize(self, x):
        """Float inputs after training transforms -> network input."""
        return x

    def input_layout(self, x):
        """Network inputs [S, B, ...] -> the same values in the memory layout the model reads without a copy
        (applied once to the evaluation sets, which are prepared once a run)."""
        return x

    def autocast(self, device):
        """Mixed precision context for the forward pass (none by default)."""
        return nullcontext()
