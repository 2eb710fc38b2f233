"""The Optuna search configs (bench/conf/search/): each composes, names real fields with valid ranges, and one
real `regbench -m +search=l2` run tunes on validation and writes Optuna's results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from omegaconf import OmegaConf

from bench.cli import CONF_DIR
from bench.config import load_technique, technique_names
from tests.conftest import ROOT, make_config

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the tune extra: pip install -e '.[tune]'")

SEARCHES = sorted(p.stem for p in (Path(CONF_DIR) / "search").glob("*.yaml"))


def compose_search(name: str, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", return_hydra_config=True,
                       overrides=[f"+search={name}", "preset=smoke", "progress=false", *overrides])


def search_params(cfg) -> dict[str, IntervalSweep]:
    parser = OverridesParser.create()
    out = {}
    for key, spec in cfg.hydra.sweeper.params.items():
        value = parser.parse_override(f"{key}={spec}").value()
        assert isinstance(value, IntervalSweep), f"{key}: expected an interval, got {spec}"
        out[key] = value
    return out


def test_every_single_piece_technique_has_a_search():
    singles = {name for name in technique_names() if len(load_technique(name).pieces()) == 1}
    assert singles and singles <= set(SEARCHES), singles - set(SEARCHES)


@pytest.mark.parametrize("task", ["mlp", "cifar"])
@pytest.mark.parametrize("name", SEARCHES)
def test_search_composes_as_a_seeded_tpe_study_minimizing_in_its_own_grid(name, task):
    cfg = compose_search(name, f"task={task}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert str(sweeper.direction).split(".")[-1] == "minimize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and isinstance(sweeper.sampler.seed, int)
    assert 1 <= sweeper.n_trials <= 20 and sweeper.storage is None  # in memory: no SQLAlchemy
    assert cfg.grid == f"search_{name}" and cfg.technique.name == name and cfg.task.name == task
    assert sweeper.params, "a search needs at least one parameter"


@pytest.mark.parametrize("name", SEARCHES)
def test_search_params_are_real_fields_and_both_ends_of_each_range_are_valid(name):
    composed = compose_search(name)
    for key, interval in search_params(composed).items():
        assert key.startswith("technique.")
        assert isinstance(OmegaConf.select(composed, key), (int, float)), f"{key} is not a numeric field"
        if "log" in interval.tags:
            assert 0 < interval.start and interval.end / interval.start >= 100, f"{key}: log scale for decades only"
        for end in (interval.start, interval.end):
            cfg = make_config(f"+search={name}", f"{key}={end}")  # runs the dataclass checks
            assert OmegaConf.select(OmegaConf.structured(cfg), key) == pytest.approx(end)


def regbench(*args, timeout=900):  # a bound for a hung run only
    script = Path(sys.executable).with_name("regbench")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bench"]
    return subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_l2_search_runs_trials_on_validation_and_writes_optunas_best(tmp_path):
    out = regbench("-m", "+search=l2", "task=mlp", "preset=smoke", "hydra.sweeper.n_trials=2", "threads=1",
                   f"results_dir={tmp_path}", f"hydra.sweep.dir={tmp_path}/multirun", "progress=false")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert len(rows) == 2 and {(r["task"], r["technique"], r["grid"], r["status"]) for r in rows} == {
        ("mlp", "l2", "search_l2", "ok")}
    decays = [r["config"]["technique"]["l2"]["weight_decay"] for r in rows]
    assert len(set(decays)) == 2 and all(1e-5 <= d <= 1 for d in decays)

    best = OmegaConf.load(tmp_path / "multirun" / "optimization_results.yaml")
    assert best.name == "optuna"
    winner = min(rows, key=lambda r: r["final"]["val_loss"])  # validation MSE, not test
    assert best.best_value == pytest.approx(winner["final"]["val_loss"])
    assert best.best_params["technique.l2.weight_decay"] == pytest.approx(
        winner["config"]["technique"]["l2"]["weight_decay"])
    assert "setup plugin" not in out.stdout + out.stderr  # alembic's import chatter stays quiet
