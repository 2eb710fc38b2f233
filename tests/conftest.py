"""Shared test helpers: compose real configs through Hydra and build tiny CIFAR sets in the real on-disk formats."""
from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bench.cli import CONF_DIR
from bench.config import Config
from bench.data import CIFAR_CLASSES

ROOT = Path(__file__).resolve().parent.parent


def make_config(*overrides: str) -> Config:
    """The same composition `python -m bench` does, turned into the dataclasses (validation included)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["preset=smoke", "progress=false", *overrides])
    return OmegaConf.to_object(cfg)


def tiny_images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c's images are bright in channel c % 3 with noise, so a CNN can tell some classes apart."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    x = rng.integers(0, 120, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    for i, c in enumerate(labels):
        x[i, c % 3] += np.uint8(100 + 10 * (c // 3))
    return x, labels


def write_cifar_pickles(root: Path, n_train_per_class: int = 5, n_test_per_class: int = 2) -> dict:
    """torchvision's format: cifar-10-batches-py/data_batch_1..5 + test_batch (pickled dicts)."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    x, y = tiny_images(n_train_per_class, 0)
    chunks = np.array_split(np.arange(len(y)), 5)
    for i, idx in enumerate(chunks, 1):
        with open(base / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": x[idx].reshape(len(idx), -1), "labels": y[idx].tolist()}, f)
    xt, yt = tiny_images(n_test_per_class, 1)
    with open(base / "test_batch", "wb") as f:
        pickle.dump({"data": xt.reshape(len(yt), -1), "labels": yt.tolist()}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR_CLASSES)}, f)
    return {"train": (x, y), "test": (xt, yt)}


def _encode(img: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.transpose(1, 2, 0)).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write_class_folder_archive(path: Path, fmt: str = "PNG", n_train_per_class: int = 5, n_test_per_class: int = 2) -> dict:
    """train/<class>/NNNN.png|jpg and test/<class>/... in a .tar.gz, .tar or .zip (by path suffix)."""
    data = {"train": tiny_images(n_train_per_class, 0), "test": tiny_images(n_test_per_class, 1)}
    ext = "png" if fmt == "PNG" else "jpg"
    files = {}
    for split, (x, y) in data.items():
        for i, (img, c) in enumerate(zip(x, y)):
            files[f"cifar10/{split}/{CIFAR_CLASSES[c]}/{i:04d}.{ext}"] = _encode(img, fmt)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, blob in files.items():
                zf.writestr(name, blob)
    else:
        with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
            for name, blob in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
    return data


@pytest.fixture
def cifar_archive(tmp_path) -> Path:
    path = tmp_path / "tiny-cifar.tar.gz"
    write_class_folder_archive(path, n_train_per_class=8, n_test_per_class=3)
    return path


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)
