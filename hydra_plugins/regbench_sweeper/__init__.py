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
Hydra finds this plugin by scanning the hydra_plugins namespace; bench/conf/hydra/sweeper/regbench.yaml
configures it and bench/conf/hydra/regbench_sweeper.yaml makes it the default.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
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


class RegbenchSweeper(BasicSweeper):
    def split_arguments(self, overrides, max_batch_size):
        """Hydra's cells of the sweep; for several grids, the cells of each grid in turn (see the module doc)."""
        grids = next((o for o in overrides if o.key_or_group == "grid" and o.is_sweep_override()), None)
        if grids is None:
            return BasicSweeper.split_arguments(overrides, max_batch_size)
        loader = self.hydra_context.config_loader
        parser = OverridesParser.create(config_loader=loader)
        cells = []
        for name in grids.sweep_string_iterator():
            grid = f"{grids.get_key_element()}={name}"
            try:  # the grid's params as Hydra composes them (its defaults, interpolations, search path)
                params = loader.load_sweep_config(self.config, [grid]).hydra.sweeper.params
            except Exception:  # an unknown grid: its cell fails in the check, naming it
                params = None
            own = parser.parse_overrides([f"{k}={v}" for k, v in (params or {}).items()] + [grid])
            cells += BasicSweeper.split_arguments(own + [o for o in overrides if o is not grids], None)[0]
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
