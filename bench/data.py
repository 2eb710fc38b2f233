"""Datasets: the synthetic teacher-network regression task and CIFAR-10's splits (files and cache: bench/cifar_files.py).

Everything is returned as whole tensors already on the training device; the trainer
indexes them with random permutations, so no per-image Python runs during training.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from bench.cifar_files import DataError, load_cifar_arrays
from bench.config import TaskConfig

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class Split:
    x: torch.Tensor  # MLP: float [N, in_dim]; CIFAR: uint8 [N, 3, 32, 32]; per_seed: [S, N, ...]
    y: torch.Tensor  # MLP: float [N]; CIFAR: int64 [N]; per_seed: [S, N]
    per_seed: bool = False  # each seed has its own samples (MLP with resample_data)

    def __len__(self) -> int:
        return self.y.shape[-1]

    def head(self, limit: int | None) -> "Split":
        """The first `limit` samples (of every seed)."""
        if self.per_seed:
            return Split(self.x[:, :limit], self.y[:, :limit], True)
        return Split(self.x[:limit], self.y[:limit])

    def of_seeds(self, first: int, stop: int) -> "Split":
        """Seeds first..stop-1 of a per-seed split (a shared split is everyone's)."""
        return Split(self.x[first:stop], self.y[first:stop], True) if self.per_seed else self


@dataclass
class TaskData:
    train: Split
    val: Split
    test: Split
    source: str  # where the data came from, stored in every result row
    noise_floor: float | None = None  # best achievable test MSE (regression only)

    def of_seeds(self, first: int, stop: int) -> "TaskData":
        return replace(self, train=self.train.of_seeds(first, stop), val=self.val.of_seeds(first, stop))


# --------------------------------------------------------------------------- synthetic MLP task


class Teacher:
    """A fixed random 2-hidden-layer ReLU network, outputs scaled to zero mean and unit variance.

    The scaling constants come from a fixed reference sample, so every training set drawn from
    the same teacher sees the same function."""

    def __init__(self, in_dim: int, width: int, gen: torch.Generator):
        self.weights = [torch.randn(a, b, generator=gen) * (2.0 / a) ** 0.5
                        for a, b in ((in_dim, width), (width, width), (width, 1))]
        f = self.raw(torch.randn(10_000, in_dim, generator=gen))
        self.mean, self.std = f.mean(), f.std()

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        for i, w in enumerate(self.weights):
            x = x @ w if i == len(self.weights) - 1 else (x @ w).relu()
        return x.squeeze(-1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (self.raw(x) - self.mean) / self.std


def mlp_sample(task: TaskConfig, teacher: Teacher | None, n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """n points x ~ N(0, I) with y = teacher(x) + N(0, noise_std^2), or pure N(0, 1) noise without a teacher."""
    x = torch.randn(n, task.in_dim, generator=gen)
    if teacher is None:
        return x, torch.randn(n, generator=gen)
    return x, teacher(x) + task.noise_std * torch.randn(n, generator=gen)


def data_generator(task: TaskConfig, seed: int) -> torch.Generator:
    """Seed `seed`'s own generator for its training and validation sets (independent of data_seed's streams)."""
    return torch.Generator().manual_seed(1_000_003 * (task.data_seed + 1) + seed)


def make_mlp_data(task: TaskConfig, device: torch.device, seeds: list[int] = (0,)) -> TaskData:
    """The teacher task. The teacher and the test set come from data_seed. With resample_data (default)
    each seed draws its own train and validation sets, stored per seed as [S, n, in_dim], so the
    spread over seeds includes the luck of the training sample; otherwise all seeds share one draw."""
    gen = torch.Generator().manual_seed(task.data_seed)
    teacher = Teacher(task.in_dim, 100, gen) if task.targets == "teacher" else None
    test = Split(*(t.to(device) for t in mlp_sample(task, teacher, task.n_test, gen)))
    n = task.n_train + task.n_val
    if task.resample_data:
        draws = [mlp_sample(task, teacher, n, data_generator(task, s)) for s in seeds]
        x, y = torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws])
    else:
        x, y = mlp_sample(task, teacher, n, gen)
    per_seed = task.resample_data
    a = task.n_train
    x, y = x.to(device), y.to(device)
    if per_seed:
        train, val = Split(x[:, :a], y[:, :a], True), Split(x[:, a:], y[:, a:], True)
    else:
        train, val = Split(x[:a], y[:a]), Split(x[a:], y[a:])
    if teacher is None:
        floor, source = 1.0, "synthetic pure-noise targets"
    else:
        floor, source = task.noise_std**2, f"synthetic teacher, noise_std={task.noise_std}"
    return TaskData(train, val, test, source=source, noise_floor=floor)


# --------------------------------------------------------------------------- CIFAR-10 splits


def balanced_order(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random order that cycles through the classes, so any prefix is class-balanced."""
    perm = torch.randperm(len(y), generator=gen)
    ys = y[perm]
    rank = torch.zeros_like(ys)
    for c in ys.unique():
        mask = ys == c
        rank[mask] = torch.arange(int(mask.sum()))
    return perm[torch.argsort(rank * (int(y.max()) + 1) + ys, stable=True)]


def make_cifar_data(task: TaskConfig, device: torch.device) -> TaskData:
    """Validation held out from train (class-balanced), train subset of n_train, test subset of n_test."""
    arrays, source = load_cifar_arrays(task)
    (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["test"]
    if task.n_val + task.n_train > len(y_tr):
        raise DataError(f"n_val + n_train = {task.n_val + task.n_train} exceeds the {len(y_tr)} training images")
    gen = torch.Generator().manual_seed(task.data_seed)
    order = balanced_order(y_tr, gen)
    val_idx, train_idx = order[: task.n_val], order[task.n_val : task.n_val + task.n_train]
    test_idx = balanced_order(y_te, gen)[: task.n_test]

    def split(x, y, idx):
        return Split(x[idx].to(device), y[idx].to(device))

    return TaskData(split(x_tr, y_tr, train_idx), split(x_tr, y_tr, val_idx), split(x_te, y_te, test_idx), source=source)


def normalize_images(x_uint8_or_float: torch.Tensor) -> torch.Tensor:
    """uint8 or [0,1] float images [..., 3, H, W] -> per-channel standardized float."""
    x = x_uint8_or_float
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    mean = torch.tensor(CIFAR_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=x.device).view(3, 1, 1)
    return (x - mean).div_(std)
