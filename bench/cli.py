"""Command line: the Hydra app behind `python -m bench` (the only module that imports Hydra).

    python -m bench task=mlp technique=l2 preset=smoke     one cell
    python -m bench -m +grid=article                       a grid (Hydra multirun)
    python -m bench -m +grid=article hydra/launcher=joblib hydra.launcher.n_jobs=2
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bench.config import Config, ConfigError, register_configs
from bench.data import DataError

CONF_DIR = str(Path(__file__).resolve().parent / "conf")
register_configs()
FINISHED = {"cells": 0, "failed": 0}


def set_threads(cfg: Config) -> None:
    """Split the CPU cores evenly between parallel workers (joblib launcher) unless threads= is given."""
    threads = cfg.threads
    if not threads:
        n_jobs = HydraConfig.get().launcher.get("n_jobs") or 1
        n_jobs = os.cpu_count() if n_jobs < 0 else n_jobs
        threads = max(1, (os.cpu_count() or 1) // n_jobs)
    torch.set_num_threads(threads)


def validation_error(rows: list[dict]) -> float | None:
    """The cell's mean validation error over its seeds, what a Hydra sweeper (e.g. Optuna) minimizes:
    MSE for the MLP, 1 - accuracy for CIFAR. None when no seed finished."""
    finals = [r["final"] for r in rows if r.get("status") == "ok"]
    if not finals:
        return None
    errors = [1 - f["val_acc"] if "val_acc" in f else f["val_loss"] for f in finals]
    return sum(errors) / len(errors)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def app(dict_cfg: DictConfig) -> float | None:
    from bench.run import keep_freed_memory, run_cell

    try:
        cfg: Config = OmegaConf.to_object(dict_cfg)
        set_threads(cfg)
        keep_freed_memory()
        outcome = run_cell(cfg)
    except (ConfigError, DataError) as e:
        print(f"regbench: error: {e}", file=sys.stderr)
        sys.exit(2)
    FINISHED["cells"] += 1
    FINISHED["failed"] += outcome["failed"]
    failed = f", {outcome['failed']} FAILED (run again to retry)" if outcome["failed"] else ""
    print(f"{cfg.task.name}/{cfg.technique.name}: {outcome['written']} row(s) written, "
          f"{outcome['skipped']} already done{failed}", flush=True)
    return validation_error(outcome["rows"])


def interrupt(signum, frame):
    """SIGTERM (what Slurm sends on preemption) stops a run the way Ctrl-C does."""
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, interrupt)
    try:
        app()
    except KeyboardInterrupt:
        print(f"\nregbench: interrupted after {FINISHED['cells']} finished cell(s); "
              "run the same command again to resume (finished cells are skipped)", file=sys.stderr)
        sys.exit(130)
    if FINISHED["failed"]:
        print(f"regbench: {FINISHED['failed']} seed(s) failed; run the same command again to retry them",
              file=sys.stderr)
        sys.exit(1)
