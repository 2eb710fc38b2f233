"""The command line, run as users run it: real subprocesses of `python -m bench`."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def bench(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_one_cell_writes_rows(tmp_path):
    out = bench("preset=smoke", "progress=false", f"results_dir={tmp_path}", "technique=l2_es", "preset.seeds=2",
                f"hydra.run.dir={tmp_path}/hydra")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert sorted(r["seed"] for r in rows) == [0, 1] and {r["technique"] for r in rows} == {"l2_es"}


def test_unknown_technique_fails_listing_the_valid_names(tmp_path):
    out = bench("technique=l3", f"results_dir={tmp_path}")
    assert out.returncode != 0
    assert "Could not find 'technique/l3'" in out.stderr
    for name in ("none", "l2", "dropout", "early_stopping", "recommended"):
        assert f"\t{name}\n" in out.stderr
    assert not tmp_path.exists() or not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("args, message", [
    (["technique=dropout", "technique.dropout.p=1.2"], "dropout.p must be in [0, 1), got 1.2"),
    (["task.n_train=0"], "task.n_train must be >= 1, got 0"),
    (["device=gpu7"], "unknown device 'gpu7'; use auto, cpu, cuda or cuda:N"),
])
def test_bad_values_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    out = bench(*args, f"results_dir={tmp_path}", f"hydra.run.dir={tmp_path}/hydra")
    assert out.returncode == 2
    assert out.stderr.strip() == f"regbench: error: {message}"
    assert not list(tmp_path.rglob("*.json"))


def test_multirun_grid_runs_every_cell(tmp_path):
    out = bench("-m", "preset=smoke", "progress=false", f"results_dir={tmp_path}", "technique=none,l1,dropout",
                "task=mlp", f"hydra.sweep.dir={tmp_path}/hydra")
    assert out.returncode == 0, out.stderr
    assert sorted(p.parent.name for p in tmp_path.rglob("*.json")) == ["dropout", "l1", "none"]
