"""CIFAR-10 on disk: find it, read it into uint8 arrays, and cache the decoded tensors.

Accepted sources: class folders (a folder or .tar.gz/.tar/.zip of train/<class>/*, test/<class>/*), the
official cifar-10-python.tar.gz, a torchvision root, or the cifar-10-batches-py folder itself. Pickle
batches are read by torchvision's CIFAR10, which checks every file's md5. The cache is keyed on what
is read (each file's path, size and mtime_ns), so a changed source is decoded again.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from bench.config import TaskConfig

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BATCHES = "cifar-10-batches-py"  # torchvision's folder of pickle batches
TARBALL = "cifar-10-python.tar.gz"  # the official download, holding BATCHES/
BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
BATCH_MEMBERS = {(BATCHES, name) for name in BATCH_FILES}  # the only archive entries extracted
SAFE_EXTRACT = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4; BATCH_MEMBERS is safe alone
HOW_TO_GET_CIFAR = (
    "Get CIFAR-10 by letting torchvision download it (no task.data_path, task.source=auto or torchvision; "
    "needs internet), or point REGBENCH_CIFAR (or task.data_path) at one of: the official "
    f"{TARBALL}; a torchvision root holding {BATCHES}/ or {TARBALL}; the {BATCHES} folder itself; "
    "a folder or .tar.gz/.tar/.zip holding train/<class>/*.png|jpg and test/<class>/*.png|jpg."
)
ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error)


class DataError(RuntimeError):
    """Data missing or unreadable; the message says where we looked and how to get it."""


# --------------------------------------------------------------------------- class folders


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
    except ARCHIVE_ERRORS as e:
        raise DataError(f"{path} is not a readable folder or archive ({type(e).__name__}: {e}). {HOW_TO_GET_CIFAR}") from None
    for split in images:
        if not images[split]:
            raise DataError(f"{path}: no images under {split}/<class>/. {HOW_TO_GET_CIFAR}")
    return {s: (torch.stack(images[s]).numpy(), np.asarray(labels[s], dtype=np.int64)) for s in images}


# --------------------------------------------------------------------------- pickle batches (torchvision)


def _bad_batch(base: Path, error: Exception) -> tuple[Path, str]:
    """The first file of `base` that fails torchvision's check, and why."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    for name, md5 in [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])]:
        if not (base / name).is_file():
            return base / name, "is missing"
        if not check_integrity(base / name, md5):
            return base / name, "is corrupt (md5 mismatch: truncated or not the original file)"
    return base, f"is unreadable ({type(error).__name__}: {error})"


def read_torchvision(root: Path, archive: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The pickle batches in root/cifar-10-batches-py, read (md5-checked) by torchvision's CIFAR10.

    With `archive` (root is its extraction in the cache), a bad file blames the archive and drops root."""
    from torchvision.datasets import CIFAR10

    out = {}
    for split in ("train", "test"):
        try:
            ds = CIFAR10(str(root), train=split == "train", download=False)
        except Exception as e:  # torchvision says "not found or corrupted" without naming the file
            path, problem = _bad_batch(root / BATCHES, e)
            if archive is None:
                raise DataError(f"CIFAR-10 batch file {path} {problem}. Delete it and fetch it again. {HOW_TO_GET_CIFAR}") from None
            shutil.rmtree(root, ignore_errors=True)
            raise DataError(f"CIFAR-10 archive {archive}: its {BATCHES}/{path.name} {problem}. "
                            f"Fetch the archive again. {HOW_TO_GET_CIFAR}") from None
        out[split] = (np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)), np.asarray(ds.targets, dtype=np.int64))
    return out


def is_official_tarball(path: Path) -> bool:
    """True for a tar archive whose first entries lie in cifar-10-batches-py/ (the official download)."""
    try:
        with tarfile.open(path) as tf:
            return any(BATCHES in PurePosixPath(m.name).parts for _, m in zip(range(3), tf))
    except ARCHIVE_ERRORS:
        return False


def extract_official(tarball: Path, cache_dir: Path, key: str) -> Path:
    """Extract the official tarball's batches into cache_dir once and return that torchvision root.

    Only the known batch files, as regular files, are taken (no links, nothing outside the folder);
    they go to a temporary folder renamed into place when complete, so a partial extraction is never read."""
    root = cache_dir / f"cifar10-{key}-batches"
    if (root / BATCHES).is_dir():
        return root
    tmp = cache_dir / f".cifar10-{key}-batches.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / BATCHES).mkdir(parents=True)
        with tarfile.open(tarball) as tf:
            for member in tf:
                if member.isfile() and PurePosixPath(member.name).parts in BATCH_MEMBERS:
                    tf.extract(member, tmp, **SAFE_EXTRACT)
        os.replace(tmp, root)
    except ARCHIVE_ERRORS as e:
        if (root / BATCHES).is_dir():  # another process finished first
            return root
        raise DataError(f"CIFAR-10 archive {tarball} cannot be extracted into {cache_dir} "
                        f"({type(e).__name__}: {e}). {HOW_TO_GET_CIFAR}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# --------------------------------------------------------------------------- source and cache


def _detect(path: Path) -> tuple[str, Path]:
    """What an existing path holds: ('pickles', the batches folder), ('tarball', the official archive) or ('folder', path)."""
    if path.is_dir() and (path.name == BATCHES or (path / BATCHES).is_dir()):
        return "pickles", path if path.name == BATCHES else path / BATCHES
    if path.is_dir() and (path / TARBALL).is_file():
        return "tarball", path / TARBALL
    return ("tarball", path) if path.is_file() and is_official_tarball(path) else ("folder", path)


def cifar_source(task: TaskConfig) -> tuple[str, Path]:
    """What to read and how: ('folder', dir or archive), ('pickles', a cifar-10-batches-py folder),
    ('tarball', the official archive) or ('download', the torchvision root to download into)."""
    if not task.data_path and task.source == "folder":
        raise DataError(f"task.source=folder but no task.data_path / REGBENCH_CIFAR is set. {HOW_TO_GET_CIFAR}")
    path = Path(task.data_path or Path(task.cache_dir) / "cifar10").expanduser()
    if task.source == "torchvision" or not task.data_path:
        kind, found = _detect(path) if path.exists() else ("folder", path)
        if kind == "folder" and path.is_file():
            raise DataError(f"{path} is not CIFAR-10's official {TARBALL} (task.source=torchvision). {HOW_TO_GET_CIFAR}")
        return ("download", path) if kind == "folder" else (kind, found)
    if not path.exists():
        raise DataError(f"CIFAR-10 not found at {path} (task.data_path / REGBENCH_CIFAR). {HOW_TO_GET_CIFAR}")
    return ("folder", path) if task.source == "folder" else _detect(path)


def download(root: Path) -> Path:
    """torchvision's download of the official archive into root; returns root/cifar-10-batches-py."""
    try:
        import torchvision

        torchvision.datasets.CIFAR10(str(root), download=True)
    except Exception as e:
        raise DataError(f"CIFAR-10 not found under {root} and the download failed ({e}). {HOW_TO_GET_CIFAR}") from None
    return root / BATCHES


def content_key(kind: str, path: Path) -> str:
    """Identity of what is read: a folder's every file (relative path, size, mtime_ns), or a file's own."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    ident = [kind, str(path.resolve())]
    for p in files:
        st = p.stat()
        ident.append(f"{p.relative_to(path).as_posix() if path.is_dir() else ''}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha1("\n".join(ident).encode()).hexdigest()[:16]


def well_formed(tensors) -> bool:
    """Both splits as uint8 images [N, 3, 32, 32] with N int64 labels in 0..9 (raises on a foreign structure)."""
    for split in ("train", "test"):
        x, y = tensors[split]
        if not (x.dtype == torch.uint8 and x.ndim == 4 and tuple(x.shape[1:]) == (3, 32, 32) and len(x) > 0
                and y.dtype == torch.int64 and tuple(y.shape) == (len(x),) and 0 <= int(y.min()) <= int(y.max()) < 10):
            return False
    return True


def load_cache(cache: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | None:
    """The cached splits if the file holds well-formed CIFAR-10 tensors; otherwise delete it and return None."""
    try:
        tensors = torch.load(cache, weights_only=True)
        if well_formed(tensors):
            return tensors
    except Exception:  # unreadable, or wrong keys, types or shapes: rebuilt, never trusted
        pass
    cache.unlink(missing_ok=True)
    return None


def load_cifar_arrays(task: TaskConfig) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], str]:
    """Decoded CIFAR-10 as uint8 tensors and a label of the source, from the cache once decoded."""
    kind, path = cifar_source(task)
    if kind == "download":
        kind, path = "pickles", download(path)
    label = f"{'folder' if kind == 'folder' else 'torchvision'}:{Path(task.data_path or 'cifar10').name}"
    cache_dir = Path(task.cache_dir).expanduser()
    key = content_key(kind, path)
    cache = cache_dir / f"cifar10-{key}.pt"
    if cache.exists() and (tensors := load_cache(cache)) is not None:
        return tensors, label
    cache_dir.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        arrays = read_class_folders(path)
    elif kind == "pickles":
        arrays = read_torchvision(path.parent)
    else:
        arrays = read_torchvision(extract_official(path, cache_dir, key), archive=path)
    tensors = {s: (torch.from_numpy(x).contiguous(), torch.from_numpy(y)) for s, (x, y) in arrays.items()}
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    torch.save(tensors, tmp)
    os.replace(tmp, cache)
    return tensors, label
