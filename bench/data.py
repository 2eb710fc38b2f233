"""Datasets: the synthetic teacher-network regression task and CIFAR-10 (torchvision pickles or class folders).

Everything is returned as whole tensors already on the training device; the trainer
indexes them with random permutations, so no per-image Python runs during training.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from bench.config import TaskConfig

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
HOW_TO_GET_CIFAR = (
    "Get CIFAR-10 either by letting torchvision download it (task.source=torchvision, needs internet), "
    "or by pointing REGBENCH_CIFAR (or task.data_path) at a folder or .tar.gz/.tar/.zip holding "
    "train/<class>/*.png|jpg and test/<class>/*.png|jpg."
)


class DataError(RuntimeError):
    """Data missing or unreadable; the message says where we looked and how to get it."""


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


# --------------------------------------------------------------------------- CIFAR-10 readers


def read_cifar_pickles(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """torchvision's on-disk format: cifar-10-batches-py/{data_batch_1..5,test_batch}."""
    base = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    out = {}
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        xs, ys = [], []
        for name in names:
            path = base / name
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="latin1")
                xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(batch["labels"], dtype=np.int64))
            except FileNotFoundError:
                raise DataError(f"CIFAR-10 batch file missing: {path}. {HOW_TO_GET_CIFAR}") from None
            except Exception as e:  # truncated or foreign file
                raise DataError(f"CIFAR-10 batch file {path} is corrupt ({type(e).__name__}: {e}). "
                                f"Delete it and fetch it again. {HOW_TO_GET_CIFAR}") from None
        out[split] = (np.concatenate(xs), np.concatenate(ys))
    return out


def _iter_image_files(path: Path):
    """Yield (relative path, bytes) of every image in a folder or a .tar/.tar.gz/.zip archive."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                yield p.relative_to(path).as_posix(), p.read_bytes()
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                if name.lower().endswith(IMAGE_SUFFIXES):
                    yield name, zf.read(name)
    else:
        with tarfile.open(path) as tf:
            for member in tf:
                if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                    yield member.name, tf.extractfile(member).read()


def read_class_folders(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Class-folder layout: .../train/<class>/<image>, .../test/<class>/<image> (PNG or JPEG)."""
    from torchvision.io import ImageReadMode, decode_image

    images: dict[str, list] = {"train": [], "test": []}
    labels: dict[str, list] = {"train": [], "test": []}
    try:
        for name, data in _iter_image_files(path):
            parts = name.split("/")
            if len(parts) < 3 or parts[-3] not in images:
                continue
            split, cls = parts[-3], parts[-2]
            if cls not in CIFAR_CLASSES:
                raise DataError(f"{path}: unknown class folder '{cls}' in {name}; expected {', '.join(CIFAR_CLASSES)}")
            try:
                img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
            except RuntimeError as e:
                raise DataError(f"{path}: cannot decode image {name} ({e})") from None
            if img.shape != (3, 32, 32):
                raise DataError(f"{path}: image {name} is {tuple(img.shape)}, expected 3x32x32")
            images[split].append(img)
            labels[split].append(CIFAR_CLASSES.index(cls))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"{path} is not a readable folder or archive ({type(e).__name__}: {e}). {HOW_TO_GET_CIFAR}") from None
    for split in images:
        if not images[split]:
            raise DataError(f"{path}: no images under {split}/<class>/. {HOW_TO_GET_CIFAR}")
    return {s: (torch.stack(images[s]).numpy(), np.asarray(labels[s], dtype=np.int64)) for s in images}


# --------------------------------------------------------------------------- CIFAR-10 source, cache, splits


def cifar_source(task: TaskConfig) -> tuple[str, Path]:
    """Which reader and which path: ('folder', archive-or-dir) or ('torchvision', root)."""
    kind = task.source
    if kind == "auto":
        kind = "folder" if task.data_path else "torchvision"
    if kind == "folder":
        if not task.data_path:
            raise DataError(f"task.source=folder but no task.data_path / REGBENCH_CIFAR is set. {HOW_TO_GET_CIFAR}")
        path = Path(task.data_path).expanduser()
        if not path.exists():
            raise DataError(f"CIFAR-10 not found at {path} (task.data_path / REGBENCH_CIFAR). {HOW_TO_GET_CIFAR}")
        return kind, path
    return kind, Path(task.data_path or Path(task.cache_dir) / "cifar10").expanduser()


def _cache_key(kind: str, path: Path) -> str:
    st = path.stat()
    ident = f"{kind}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def load_cifar_arrays(task: TaskConfig) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], str]:
    """Decoded CIFAR-10 as uint8 tensors, read from a cache file after the first decode."""
    kind, path = cifar_source(task)
    if kind == "torchvision" and not (path / "cifar-10-batches-py").is_dir():
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(path), download=True)
        except Exception as e:
            raise DataError(f"CIFAR-10 not found under {path} and the download failed ({e}). {HOW_TO_GET_CIFAR}") from None
    label = f"{kind}:{path.name}"
    cache = Path(task.cache_dir) / f"cifar10-{_cache_key(kind, path)}.pt"
    if cache.exists():
        try:
            return torch.load(cache), label
        except Exception:
            cache.unlink()  # a broken cache is rebuilt, never trusted
    arrays = read_cifar_pickles(path) if kind == "torchvision" else read_class_folders(path)
    tensors = {s: (torch.from_numpy(x).contiguous(), torch.from_numpy(y)) for s, (x, y) in arrays.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    torch.save(tensors, tmp)
    os.replace(tmp, cache)
    return tensors, label


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


def load_task_data(task: TaskConfig, device: torch.device, seeds: list[int] = (0,)) -> TaskData:
    """The splits for these seeds (the MLP's train/val sets depend on the seed; CIFAR's do not)."""
    return make_mlp_data(task, device, seeds) if task.name == "mlp" else make_cifar_data(task, device)


def normalize_images(x_uint8_or_float: torch.Tensor) -> torch.Tensor:
    """uint8 or [0,1] float images [..., 3, H, W] -> per-channel standardized float."""
    x = x_uint8_or_float
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    mean = torch.tensor(CIFAR_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=x.device).view(3, 1, 1)
    return (x - mean).div_(std)
