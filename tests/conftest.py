"""Shared test helpers: compose real configs through Hydra and build tiny CIFAR sets in the real on-disk formats."""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from bench.cifar_files import BATCHES, CIFAR_CLASSES
from bench.cli import CONF_DIR, to_config
from bench.config import Config

ROOT = Path(__file__).resolve().parent.parent


def make_config(*overrides: str) -> Config:
    """The same composition `python -m bench` does, turned into the dataclasses (validation included)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["preset=smoke", "progress=false", *overrides])
    return to_config(cfg)


def tiny_images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c's images are bright in channel c % 3 with noise, so a CNN can tell some classes apart."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    x = rng.integers(0, 120, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    for i, c in enumerate(labels):
        x[i, c % 3] += np.uint8(100 + 10 * (c // 3))
    return x, labels


def _write_batch(path: Path, name: str, x: np.ndarray, y: np.ndarray) -> None:
    """One batch as the official files hold it: a pickled dict (protocol 2) whose str keys torchvision reads
    after pickle.load(encoding="latin1"): data uint8 [N, 3072] (R, G, B planes), labels a list of ints."""
    batch = {"batch_label": name, "labels": y.tolist(), "data": x.reshape(len(y), -1),
             "filenames": [f"img_{i:05d}.png" for i in range(len(y))]}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_cifar_pickles(root: Path, n_train_per_class: int = 5, n_test_per_class: int = 2) -> dict:
    """torchvision's format: root/cifar-10-batches-py/data_batch_1..5, test_batch and batches.meta."""
    base = root / BATCHES
    base.mkdir(parents=True)
    x, y = tiny_images(n_train_per_class, 0)
    for i, idx in enumerate(np.array_split(np.arange(len(y)), 5), 1):
        _write_batch(base / f"data_batch_{i}", f"training batch {i} of 5", x[idx], y[idx])
    xt, yt = tiny_images(n_test_per_class, 1)
    _write_batch(base / "test_batch", "testing batch 1 of 1", xt, yt)
    meta = {"num_cases_per_batch": len(y) // 5, "label_names": list(CIFAR_CLASSES), "num_vis": 3072}
    (base / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {"train": (x, y), "test": (xt, yt)}


def trust_cifar_batches(monkeypatch, base: Path) -> None:
    """Point torchvision's md5 table at the tiny batches in `base` (as written now): the check still runs,
    so a file changed afterwards fails it exactly as a damaged original would."""
    from torchvision.datasets import CIFAR10

    def md5(name):
        return hashlib.md5((base / name).read_bytes()).hexdigest()

    monkeypatch.setattr(CIFAR10, "train_list", [[name, md5(name)] for name, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[name, md5(name)] for name, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(CIFAR10.meta["filename"])})


def write_official_tarball(path: Path, monkeypatch) -> dict:
    """cifar-10-python.tar.gz's layout: cifar-10-batches-py/ and its files (plus readme.html), md5s trusted."""
    src = path.with_name(path.name + ".src")
    data = write_cifar_pickles(src)
    trust_cifar_batches(monkeypatch, src / BATCHES)
    (src / BATCHES / "readme.html").write_text("<html></html>")
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src / BATCHES, arcname=BATCHES)
    return data


def encode_image(img: np.ndarray, fmt: str) -> bytes:
    """A [3, H, W] uint8 image as PNG or JPEG (quality 95) file bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.transpose(1, 2, 0)).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write_class_folder_archive(path: Path, fmt: str = "PNG", n_train_per_class: int = 5, n_test_per_class: int = 2) -> dict:
    """train/<class>/NNNN.png|jpg and test/<class>/... in a .tar.gz, .tar or .zip (by path suffix), or a plain
    folder when the path has no suffix."""
    data = {"train": tiny_images(n_train_per_class, 0), "test": tiny_images(n_test_per_class, 1)}
    ext = "png" if fmt == "PNG" else "jpg"
    files = {}
    for split, (x, y) in data.items():
        for i, (img, c) in enumerate(zip(x, y)):
            files[f"cifar10/{split}/{CIFAR_CLASSES[c]}/{i:04d}.{ext}"] = encode_image(img, fmt)
    if not path.suffix:
        for name, blob in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(blob)
    elif path.suffix == ".zip":
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
