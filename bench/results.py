"""Result rows: one JSON file per (cell, seed), written atomically, keyed by a hash of the resolved config.

A row carries the schema version, the full resolved config, the seed, the metrics and the
environment. Rows are never rewritten; the report reads nothing else.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SCHEMA_VERSION = 3  # 3: rows carry reference_step_seconds / _iqr, the cost yardstick (train.reference_step_seconds)
# The row key covers what changes the result, and nothing else. Fields left at their dataclass default are
# not hashed, so adding a config field (at a default that keeps the old behaviour) keeps every stored key;
# bump KEY_VERSION when a change of code or of a default changes what an existing key's experiment does.
KEY_VERSION = 1
NOT_EXPERIMENT = ("data_path", "cache_dir")  # where files live, not what is run


class SchemaError(RuntimeError):
    """A row written by a newer regbench than this one."""


def cell_config(cfg, device: torch.device) -> dict:
    """The resolved config a row carries: task, technique, preset, grid and device kind."""
    return {
        "task": dataclasses.asdict(cfg.task),
        "technique": dataclasses.asdict(cfg.technique),
        "preset": cfg.preset.name,
        "grid": cfg.grid,
        "device_type": device.type,
    }


def changed_fields(obj, exclude: tuple[str, ...] = ()) -> dict:
    """The dataclass fields of obj that differ from their defaults."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if f.name not in exclude and getattr(obj, f.name) != f.default}


def experiment(cfg, device: torch.device) -> dict:
    """What a row's key covers: the task's non-default fields (not where its files live), the technique's
    name and its switched-on pieces with their non-default fields, the grid and the device kind."""
    technique = cfg.technique
    return {
        "key_version": KEY_VERSION,
        "task": {"name": cfg.task.name, **changed_fields(cfg.task, NOT_EXPERIMENT)},
        "technique": {"name": technique.name, **{p: changed_fields(getattr(technique, p)) for p in technique.pieces()}},
        "grid": cfg.grid,
        "device_type": device.type,
    }


def row_key(spec: dict, seed) -> str:
    blob = json.dumps({"cell": spec, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def row_path(results_dir: str | Path, spec: dict, seed: int) -> Path:
    return Path(results_dir) / spec["task"]["name"] / spec["technique"]["name"] / f"{row_key(spec, seed)}.json"


def finished_row(path: Path) -> dict | None:
    """The row at path if it needs no rerun: readable and trained to the end (ok or diverged). A missing,
    truncated or failed row (e.g. out of memory) gives None: its seed is trained again."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("status") in ("ok", "diverged") else None


@functools.cache
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device) -> dict:
    import torch  # here, not at the top: the report reads rows without importing torch

    cuda = device.type == "cuda"
    return {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "cuda": torch.version.cuda if cuda else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
    }


def _finite(obj):
    """NaN/inf -> None, so files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def write_atomic(path: Path, text: str) -> None:
    """Atomic: write a temp file in the same folder, fsync, then rename over the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:  # failed or interrupted before the rename: leave no temp file
        tmp.unlink(missing_ok=True)


def write_row(path: Path, row: dict) -> None:
    write_atomic(path, json.dumps(_finite(row), allow_nan=False))  # json.dump: the Python encoder, 5.8 vs 2.7 ms a row


def make_row(cell: dict, spec: dict, seed: int, metrics: dict, env: dict, mode: str) -> dict:
    return {"schema_version": SCHEMA_VERSION, "key": row_key(spec, seed), "config": cell,
            "task": cell["task"]["name"], "technique": cell["technique"]["name"], "preset": cell["preset"],
            "grid": cell["grid"], "training_mode": mode, "env": env, **metrics}


def load_rows(results_dir: str | Path) -> list[dict]:
    """Every valid row under results_dir. Broken and foreign files are skipped with a warning naming each,
    older-schema rows with one warning per schema; a newer-schema row raises SchemaError."""
    rows, old = [], {}
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            row = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            warnings.warn(f"skipping {path}: not valid JSON ({e})", stacklevel=2)
            continue
        version = row.get("schema_version") if isinstance(row, dict) else None
        if not isinstance(version, int):
            warnings.warn(f"skipping {path}: not a regbench row (no schema_version)", stacklevel=2)
            continue
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{path} has schema version {version}, newer than this regbench's "
                              f"{SCHEMA_VERSION}: update regbench to read it")
        if version < SCHEMA_VERSION:
            old.setdefault(version, []).append(path)
            continue
        rows.append(row)
    for version, paths in old.items():
        what = f"{paths[0]}:" if len(paths) == 1 else f"{len(paths)} rows under {results_dir} (first {paths[0]}):"
        warnings.warn(f"skipping {what} old schema version {version} (current {SCHEMA_VERSION})", stacklevel=2)
    return rows
