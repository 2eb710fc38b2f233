"""regbench's sweeper: Hydra's basic sweeper that checks every cell of a sweep before the first one trains.

Each cell's config is composed and turned into the dataclasses (values out of range fail), a CIFAR cell's
data must be where task.data_path / REGBENCH_CIFAR says, and results_dir must be a writable folder. Any
problem prints one line per bad cell and exits 2 with nothing trained. A technique that does not apply to
a task is no problem: that cell is skipped when it runs. The sweep's size, start time and a done file are
put in the environment, which the cells (in this process or in launcher workers) read for their
`[i/N] ... (elapsed, ETA)` line and Ctrl-C its finished-cell count (bench/cli.py). The launcher reuses the
configs composed for the check instead of composing each cell again (an article grid whose cells are all done:
18.7 -> 14.2 s here), so a cell runs the very config that was checked: YAML edited mid-sweep reaches no later cell.
Several grids at once (`+grid=article,extended`, what `make bench` runs) are one sweep: each grid's own
sweeper params with that grid, in the order given, all checked first, in one process (Hydra alone would sweep the
grid names over the default cell). A `make bench` whose cells are all done: 63 s as 13 processes, 29 s as one.
A grid may hold a two-level factorial design instead of (or beside) params: `hydra.sweeper.factorial` lists
factors (a regularizer piece -> its fields at the 'on' level; 'off' = the piece absent) and a fraction (full: every
combination; half: the 2^(k-1) fraction with I = the product of all k factors coded -1/+1, resolution k). Each
combination is one cell, crossed with the grid's params, switching on its pieces (`technique=[l2,dropout]` plus the
fields) and named after them in bench.config's piece order (`l2+dropout`; none on: `none`). A factor that is not a
piece or a level that fails validation stops the sweep with one line before any cell is checked (bench/conf/grid/
factorial*.yaml).
Hydra finds this plugin by scanning the hydra_plugins namespace; bench/conf/hydra/sweeper/regbench.yaml
configures it and bench/conf/hydra/regbench_sweeper.yaml makes it the default.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from itertools import product
from pathlib import Path

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser


def writable(folder: str) -> str | None:
    """Why results_dir cannot take rows (created here when missing), or None."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        return f"results_dir {folder} is not a writable folder ({e.strerror or e})"
    return None


FRACTIONS = ("full", "half")


def factorial_problem(factorial) -> str | None:
    """Why a grid's factorial block cannot be run (a factor that is not a piece, a level that fails validation,
    an unknown fraction), or None."""
    from omegaconf import OmegaConf

    from bench.cli import to_config
    from bench.config import PIECES, ConfigError

    factors = factorial.get("factors") or {}
    if factorial.get("fraction", "full") not in FRACTIONS:
        return f"factorial fraction must be {' or '.join(FRACTIONS)}, got '{factorial.get('fraction')}'"
    if len(factors) < 2:
        return "a factorial needs at least two factors"
    for name, level in factors.items():
        if name not in PIECES:
            return f"factor '{name}' is not a regularizer piece; valid: {', '.join(PIECES)}"
        try:
            to_config(OmegaConf.create({"technique": {name: dict(level or {})}}))
        except ConfigError as e:
            return f"factor {name}: {e}"
    return None


def factorial_levels(names: list[str], fraction: str) -> list[tuple[bool, ...]]:
    """The on/off combinations of the design, all-off first: every one (full), or those whose -1/+1 codes
    multiply to +1 (half: I = the product of all factors)."""
    combos = list(product((False, True), repeat=len(names)))
    if fraction == "half":
        combos = [c for c in combos if sum(not on for on in c) % 2 == 0]
    return combos


def value_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def factorial_cells(factorial) -> list[list[str]]:
    """One list of overrides per cell of the design: its pieces switched on at their levels, named after them."""
    from bench.config import PIECES

    factors = factorial["factors"]
    names = sorted(factors, key=PIECES.index)
    cells = []
    for combo in factorial_levels(names, factorial.get("fraction", "full")):
        on = [n for n, is_on in zip(names, combo) if is_on]
        if not on:
            cells.append(["technique=none"])
            continue
        fields = [f"technique.{n}.{k}={value_text(v)}" for n in on for k, v in (factors[n] or {}).items()]
        cells.append([f"technique=[{','.join(on)}]", f"technique.name={'+'.join(on)}", *fields])
    return cells


def with_factorial(cells: list[list[str]], factorial, grid: str) -> list[list[str]]:
    """The grid's cells crossed with its factorial design; a bad design stops the sweep with one line."""
    if not factorial:
        return cells
    if problem := factorial_problem(factorial):
        print(f"regbench: error: grid {grid}: {problem}", file=sys.stderr)
        sys.exit(2)
    return [cell + design for cell in cells for design in factorial_cells(factorial)]


class RegbenchSweeper(BasicSweeper):
    def __init__(self, max_batch_size, params=None, factorial=None) -> None:
        super().__init__(max_batch_size, params)
        self.factorial = factorial

    def split_arguments(self, overrides, max_batch_size):
        """Hydra's cells of the sweep; for several grids, the cells of each grid in turn (see the module doc)."""
        grids = next((o for o in overrides if o.key_or_group == "grid" and o.is_sweep_override()), None)
        if grids is None:
            cells = BasicSweeper.split_arguments(overrides, None)[0]
            cells = with_factorial(cells, self.factorial, str(self.config.get("grid")))
            return [cells] if max_batch_size is None else list(self.split_overrides_to_chunks(cells, max_batch_size))
        loader = self.hydra_context.config_loader
        parser = OverridesParser.create(config_loader=loader)
        cells = []
        for name in grids.sweep_string_iterator():
            grid = f"{grids.get_key_element()}={name}"
            try:  # the grid's params as Hydra composes them (its defaults, interpolations, search path)
                sweeper = loader.load_sweep_config(self.config, [grid]).hydra.sweeper
                params, factorial = sweeper.params, sweeper.get("factorial")
            except Exception:  # an unknown grid: its cell fails in the check, naming it
                params, factorial = None, None
            own = parser.parse_overrides([f"{k}={v}" for k, v in (params or {}).items()] + [grid])
            mine = BasicSweeper.split_arguments(own + [o for o in overrides if o is not grids], None)[0]
            cells += with_factorial(mine, factorial, name)
        return [cells] if max_batch_size is None else list(self.split_overrides_to_chunks(cells, max_batch_size))

    def validate_batch_is_legal(self, batch) -> None:
        """Called before each batch launches: on the first, check every cell of the whole sweep."""
        if self.batch_index > 1:
            return
        cells = [list(job) for jobs in self.overrides for job in jobs]
        self.checked = {}  # cell overrides -> its config as composed for the check
        bad = []
        for i, job in enumerate(cells, 1):
            if problem := self.problem(job):
                shown = " ".join(o for o in job if any(o not in other for other in cells)) or " ".join(job)
                bad.append(f"regbench: error: cell {i} ({shown}): {problem}")
        if bad:
            print("\n".join(bad), file=sys.stderr)
            sys.exit(2)
        self.reuse_checked_configs()
        done = Path(self.config.hydra.sweep.dir).resolve() / "finished_cells"
        done.unlink(missing_ok=True)
        os.environ.update(REGBENCH_CELLS=str(len(cells)), REGBENCH_SWEEP_START=str(time.time()),
                          REGBENCH_DONE_FILE=str(done))

    def reuse_checked_configs(self) -> None:
        """The basic launcher's load_sweep_config answers from the configs the check composed, each once
        (launchers that compose in worker processes, e.g. joblib, compose there as before)."""
        if not isinstance(self.launcher, BasicLauncher):
            self.checked.clear()
            return
        loader = self.hydra_context.config_loader
        compose = loader.load_sweep_config

        def load_sweep_config(master_config, sweep_overrides):
            checked = self.checked.pop(tuple(sweep_overrides), None)
            return checked if checked is not None else compose(master_config, sweep_overrides)

        loader.load_sweep_config = load_sweep_config

    def problem(self, job: list[str]) -> str | None:
        from bench.cifar_files import DataError, cifar_source
        from bench.cli import to_config
        from bench.config import ConfigError
        from bench.regularizers import conflict, inapplicable

        try:
            composed = self.hydra_context.config_loader.load_sweep_config(self.config, job)
            self.checked[tuple(job)] = composed
            cfg = to_config(composed)
            if reason := conflict(cfg.technique):
                return reason
            if inapplicable(cfg.technique, cfg.task):
                return None  # skipped when it runs
            if cfg.task.name == "cifar":
                cifar_source(cfg.task)
        except (ConfigError, DataError) as e:
            return str(e)
        except Exception as e:  # composition: an unknown choice, a bad override
            return str(e).strip().splitlines()[0]
        return writable(cfg.results_dir)
