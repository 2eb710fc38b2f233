"""Command line: the Hydra app behind `regbench` and `python -m bench` (the only module that imports Hydra).

    regbench task=mlp technique=l2 preset=smoke     one cell
    regbench -m +grid=article                       a grid (Hydra multirun)
    regbench -m +grid=article hydra/launcher=joblib hydra.launcher.n_jobs=2

torch is imported only once a cell is about to run (or a sweep checks its cells), so --help, shell
completion and a bad value answer at once. A sweep is checked cell by cell before the first one trains, by the regbench
sweeper (hydra_plugins/regbench_sweeper), which also hands the cells the sweep's size and start
through the environment (SWEEP_ENV) for the `[i/N]` progress lines.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from bench.config import CONF_DIR, PIECES, Config, ConfigError, register_configs

register_configs()
FINISHED = {"cells": 0, "failed": 0}  # this process's; a sweep counts in its REGBENCH_DONE_FILE instead
SWEEP_ENV = ("REGBENCH_CELLS", "REGBENCH_SWEEP_START", "REGBENCH_DONE_FILE")


def fail(message) -> None:
    print(f"regbench: error: {message}", file=sys.stderr)
    sys.exit(2)


def to_config(node: DictConfig) -> Config:
    """The composed config as validated dataclasses. Hydra's `+key=` bypasses the schema's struct mode,
    so the config is merged again into a strict copy of the schema: a key it lacks fails here."""
    data = OmegaConf.to_container(node)
    data.pop("hydra", None)
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), data))
    except ConfigKeyError as e:
        raise ConfigError(f"unknown key '{e.full_key}'") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{e.full_key}: {str(e).splitlines()[0]}") from None


def yaml_pieces(name: str) -> set[str]:
    """The pieces a technique YAML switches on, its defaults' included (all, for an unknown name)."""
    path = Path(CONF_DIR) / "technique" / f"{name}.yaml"
    if not path.is_file():
        return set(PIECES)  # Hydra reports the unknown name itself
    node = OmegaConf.load(path)
    included = [yaml_pieces(d) for d in node.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    return {key for key in node if key in PIECES}.union(*included)


def chosen_techniques(overrides: list) -> list[str]:
    """The techniques these command-line overrides select: technique=, else the +grid=/+search= files'
    choices (of every grid of a sweep over grids), else the default (none)."""
    for o in overrides:
        if o.key_or_group == "technique":
            return list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
    found = []
    for o in overrides:
        if o.key_or_group not in ("grid", "search"):
            continue
        for name in o.sweep_string_iterator() if o.is_sweep_override() else [o.value()]:
            path = Path(CONF_DIR) / str(o.key_or_group) / f"{name}.yaml"
            if path.is_file():
                node = OmegaConf.load(path)
                swept = OmegaConf.select(node, "hydra.sweeper.params.technique")
                chosen = [d["override /technique"] for d in node.get("defaults", [])
                          if isinstance(d, DictConfig) and "override /technique" in d]
                found += str(swept).split(",") if swept else (chosen or ["none"])
    return found or ["none"]


def unset_piece(args: list[str]) -> str | None:
    """`technique.<piece>.<field>=` for a technique without that piece: Hydra would stop with an OmegaConf
    AssertionError while composing, before the app runs, so the command line is checked first."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if "=" in a and a[0] != "-"])
        techniques = chosen_techniques(overrides)
    except Exception:  # a syntax error or a glob: Hydra reports it or composes it
        return None
    for o in overrides:
        parts = o.key_or_group.split(".")
        if len(parts) < 3 or parts[0] != "technique" or parts[1] not in PIECES:
            continue
        for name in techniques:
            if parts[1] not in yaml_pieces(name):
                return (f"technique.{parts[1]}.* is set but technique '{name}' has no {parts[1]} piece; "
                        f"use technique={parts[1]} or a technique that includes it")
    return None


def set_threads(cfg: Config) -> None:
    """Split the CPU cores evenly between parallel workers (joblib launcher) unless threads= is given."""
    import torch

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


def minutes(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def finished_cells() -> tuple[int, int]:
    """(cells finished, seeds failed) so far: in a regbench sweep from its done file, one line per finished cell
    holding its failed seeds, which every process appends to (joblib's workers too); else this process's."""
    done = os.environ.get("REGBENCH_DONE_FILE")
    if not done:
        return FINISHED["cells"], FINISHED["failed"]
    lines = Path(done).read_text().split() if Path(done).exists() else []
    return len(lines), sum(int(n) for n in lines)


def report(line: str, failed: int = 0) -> None:
    """Print a finished cell's line; in a regbench sweep as `[i/N] line (elapsed m:ss, ETA m:ss)`."""
    FINISHED["cells"] += 1
    FINISHED["failed"] += failed
    if done := os.environ.get("REGBENCH_DONE_FILE"):
        with open(done, "a") as f:
            f.write(f"{failed}\n")
        i, n = finished_cells()[0], int(os.environ["REGBENCH_CELLS"])
        elapsed = time.time() - float(os.environ["REGBENCH_SWEEP_START"])
        line = f"[{i}/{n}] {line} (elapsed {minutes(elapsed)}, ETA {minutes(elapsed / i * max(n - i, 0))})"
    print(line, flush=True)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def app(dict_cfg: DictConfig) -> float | None:
    try:
        cfg = to_config(dict_cfg)
    except ConfigError as e:
        fail(e)
    from bench.cifar_files import DataError  # these import torch
    from bench.run import keep_freed_memory, run_cell

    try:
        set_threads(cfg)
        keep_freed_memory()
        outcome = run_cell(cfg, finished=lambda outcome: report_cell(cfg, outcome))
    except (ConfigError, DataError) as e:
        fail(e)
    return None if "not_applicable" in outcome else validation_error(outcome["rows"])


def report_cell(cfg: Config, outcome: dict) -> None:
    cell = f"{cfg.task.name}/{cfg.technique.name}" + (f" ({cfg.grid})" if cfg.grid != "adhoc" else "")
    if "not_applicable" in outcome:
        report(f"{cell}: skipped ({outcome['not_applicable']})")
    else:
        failed = f", {outcome['failed']} FAILED (run again to retry)" if outcome["failed"] else ""
        report(f"{cell}: {outcome['written']} row(s) written, {outcome['skipped']} already done{failed}",
               outcome["failed"])


def interrupt(signum, frame):
    """SIGTERM (what Slurm sends on preemption) stops a run the way Ctrl-C does."""
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, interrupt)
    for key in SWEEP_ENV:  # set by this run's sweeper only
        os.environ.pop(key, None)
    if problem := unset_piece(sys.argv[1:]):
        fail(problem)
    try:
        app()
    except KeyboardInterrupt:
        print(f"\nregbench: interrupted after {finished_cells()[0]} finished cell(s); "
              "run the same command again to resume (finished cells are skipped)", file=sys.stderr)
        sys.exit(130)
    if failed := finished_cells()[1]:
        print(f"regbench: {failed} seed(s) failed; run the same command again to retry them", file=sys.stderr)
        sys.exit(1)


def run() -> None:
    """`regbench` and `python -m bench`: main(), then, after a clean run with nothing else left running, the
    exit handlers and an immediate exit, without the interpreter's teardown. With torch loaded that teardown
    (freeing every module's objects) is CPU work: without it a bare `import torch` process took 0.76x its 4.55 s and
    a quick MLP cell, with issue 26's smaller trims, 0.79x its 4.16 s (medians of 5 alternated pairs, 2-core VM).
    By then every row is written, fsync'd and renamed; exit handlers (logging's flush) still run."""
    main()
    threads = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    children = sys.modules.get("multiprocessing") and sys.modules["multiprocessing"].active_children()
    if threads or children:  # a launcher's worker threads or processes: the usual exit
        return
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
