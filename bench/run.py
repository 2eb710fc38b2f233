"""Orchestration of one cell: pick the device, skip finished seeds, train the rest, write one row per seed."""
from __future__ import annotations

import ctypes
import signal
import threading
from contextlib import ExitStack, contextmanager
from typing import Callable

import torch

from bench.config import Config, ConfigError
from bench.regularizers import inapplicable
from bench.tasks import get_task
from bench.train import train_seeds


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU. Asking for CUDA where there is none is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' requested but CUDA is not available here; use device=auto or cpu")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def use_vectorized(cfg: Config, device: torch.device) -> bool:
    """auto: stack seeds for the MLP everywhere; for the CNN only on CUDA (grouped convs do not pay on CPU)."""
    if cfg.vectorize != "auto":
        return cfg.vectorize == "on"
    return get_task(cfg.task.name).stack_on_cpu or device.type == "cuda"


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    By default it mmaps every block above 128 KiB-32 MiB and unmaps it on free, so each
    training step page-faults its activations and image batches in anew. Measured here:
    the width-64 CNN 1.2x faster, a batch's image normalization 9x. Called by the CLI before
    each cell (a launcher's workers are processes of their own; calling it again costs two
    mallopt calls) and once by the benchmarks; a no-op where there is no glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    libc.mallopt(M_MMAP_MAX, 0)  # all blocks from the heap, which freed blocks return to
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # and which is never trimmed


@contextmanager
def interrupts_held():
    """Ctrl-C or SIGTERM arriving inside the block is delivered when the block ends normally (main thread only;
    an exception leaving the block is raised as it is). A launcher that SIGKILLs its workers (joblib, when its
    parent is interrupted) can still stop one inside the block: the rows it wrote are whole and a rerun skips them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    held = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in held.items():
            signal.signal(s, handler)
    if caught:
        signal.raise_signal(caught[0])


def run_cell(cfg: Config, finished: Callable[[dict], None] = lambda outcome: None) -> dict:
    """Train the seeds of one cell that have no finished row yet and write one row per seed.

    Returns {"written": n, "skipped": n, "failed": n, "rows": [...]}, plus "not_applicable": why, for a
    technique that has no meaning on this task (nothing is trained or written). A seed whose training raises is
    recorded with status=failed, so one broken cell never stops a grid; a rerun trains it again.
    `finished(outcome)` is called before returning; an interrupt is held from before the cell's last rows are
    written until it returns, so a sweep's count of finished cells never lags the rows on disk.
    """
    from bench.results import (cell_config, environment, experiment, finished_row, make_row, row_key, row_path,
                               write_row)

    if reason := inapplicable(cfg.technique, cfg.task):
        return finish({"written": 0, "skipped": 0, "failed": 0, "rows": [], "not_applicable": reason}, finished)
    device = pick_device(cfg.device)
    cell, spec = cell_config(cfg, device), experiment(cfg, device)
    paths = {s: row_path(cfg.results_dir, spec, s) for s in cfg.preset.seed_list()}
    existing = {s: finished_row(p) for s, p in paths.items()}
    done = [row for row in existing.values() if row]
    todo = [s for s, row in existing.items() if not row]
    if not todo:
        return finish({"written": 0, "skipped": len(done), "failed": 0, "rows": done}, finished)
    vectorized = use_vectorized(cfg, device)
    groups = [todo] if vectorized else [[s] for s in todo]
    env = environment(device)
    data = get_task(cfg.task.name).load_data(cfg.task, device, todo)
    rows = []  # this run's
    with ExitStack() as hold:
        for seeds in groups:
            first = todo.index(seeds[0])
            try:
                metrics = train_seeds(cfg.task, cfg.technique, seeds, data.of_seeds(first, first + len(seeds)),
                                      device, cfg.progress)
            except ConfigError:  # a config that can never work is the user's to fix, not a row to retry
                raise
            except (RuntimeError, ValueError) as e:  # e.g. out of memory: record it, keep the grid going
                metrics = [{"seed": s, "status": "failed", "error": f"{type(e).__name__}: {e}"} for s in seeds]
            if seeds is groups[-1]:  # the cell's last rows and its report land together
                hold.enter_context(interrupts_held())
            run_id = row_key(spec, seeds)
            for m in metrics:
                row = make_row(cell, spec, m["seed"], {**m, "cell_run_id": run_id}, env,
                               "vectorized" if vectorized else "sequential")
                write_row(row_path(cfg.results_dir, spec, m["seed"]), row)
                rows.append(row)
        failed = sum(r["status"] == "failed" for r in rows)
        return finish({"written": len(todo), "skipped": len(done), "failed": failed, "rows": done + rows}, finished)


def finish(outcome: dict, finished: Callable[[dict], None]) -> dict:
    """Hand a cell's outcome to the caller's `finished` (the CLI's progress line), then return it."""
    finished(outcome)
    return outcome
