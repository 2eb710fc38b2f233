"""The command line, run as users run it: real subprocesses of `python -m bench`."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

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


@pytest.mark.parametrize("group, name", [("task", "resnet"), ("technique", "l3"), ("preset", "huge")])
def test_unknown_choices_fail_before_anything_runs(tmp_path, group, name):
    out = bench(f"{group}={name}", f"results_dir={tmp_path}")
    assert out.returncode != 0 and f"Could not find '{group}/{name}'" in out.stderr
    assert "Traceback" not in out.stderr and not tmp_path.exists() or not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("args, message", [
    (["technique=dropout", "technique.dropout.p=1.2"], "dropout.p must be in [0, 1), got 1.2"),
    (["technique=l2", "technique.l2.weight_decay=-0.1"], "l2.weight_decay must be >= 0, got -0.1"),
    (["technique=l1", "technique.l1.strength=-1"], "l1.strength must be >= 0, got -1.0"),
    (["technique=early_stopping", "technique.early_stopping.patience_frac=0"], "early_stopping.patience_frac must be in (0, 1], got 0.0"),
    (["task.n_train=-3"], "task.n_train must be >= 1, got -3"),
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_one_clear_line(tmp_path):
    out = bench("device=cuda", f"results_dir={tmp_path}", f"hydra.run.dir={tmp_path}/hydra")
    assert out.returncode == 2
    assert out.stderr.strip() == ("regbench: error: device 'cuda' requested but CUDA is not available here; "
                                  "use device=auto or cpu")
    assert not list(tmp_path.rglob("*.json"))


GRID = ["-m", "preset=smoke", "progress=false", "technique=none,l2,l1,dropout,batchnorm,augment", "task.epochs=150"]


def wait_for_rows(folder, n, proc, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None and len(list(folder.rglob("*.json"))) < n:
        time.sleep(0.02)


def test_kill_9_mid_grid_then_rerun_finishes_with_no_partial_or_duplicate_rows(tmp_path):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "bench", *GRID, f"results_dir={runs}", f"hydra.sweep.dir={tmp_path}/h"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_rows(runs, 1, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p: p.read_bytes() for p in runs.rglob("*.json")}
    assert 1 <= len(before) < 6, "the kill should land mid-grid"
    again = bench(*GRID, f"results_dir={runs}", f"hydra.sweep.dir={tmp_path}/h2")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("0 row(s) written, 1 already done") == len(before)
    rows = [json.loads(p.read_text()) for p in runs.rglob("*.json")]  # every file parses: none is partial
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6
    assert sorted(r["technique"] for r in rows) == sorted(GRID[3].split("=")[1].split(","))
    assert all(p.read_bytes() == blob for p, blob in before.items())  # finished rows untouched


def test_ctrl_c_exits_cleanly_saying_how_many_cells_finished(tmp_path):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "bench", *GRID, f"results_dir={runs}", f"hydra.sweep.dir={tmp_path}/h"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(runs, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    finished = len(list(runs.rglob("*.json")))
    assert proc.returncode == 130
    assert f"interrupted after {finished} finished cell(s)" in err and "Traceback" not in err


def rows_by_cell(folder):
    out = {}
    for p in folder.rglob("*.json"):
        r = json.loads(p.read_text())
        history = [{k: v for k, v in h.items() if k != "train_s"} for h in r["history"]]
        out[(r["technique"], r["seed"])] = (r["final"], history, r["key"], r["env"]["torch_threads"])
    return out


def test_joblib_launcher_runs_cells_in_parallel_with_rows_identical_to_serial(tmp_path):
    cells = ["-m", "preset=smoke", "progress=false", "technique=none,dropout,augment", "task.epochs=20"]
    serial = bench(*cells, "threads=1", f"results_dir={tmp_path}/serial", f"hydra.sweep.dir={tmp_path}/h1")
    parallel = bench(*cells, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"results_dir={tmp_path}/par",
                     f"hydra.sweep.dir={tmp_path}/h2")
    assert serial.returncode == 0 and parallel.returncode == 0, parallel.stderr
    a, b = rows_by_cell(tmp_path / "serial"), rows_by_cell(tmp_path / "par")
    assert set(a) == set(b) and len(a) == 3
    for cell in a:
        assert a[cell][:3] == b[cell][:3]
        assert b[cell][3] == max(1, os.cpu_count() // 2)  # two workers split the cores


def test_submitit_local_launcher_runs_the_cluster_configuration(tmp_path):
    out = bench("-m", "preset=smoke", "progress=false", "technique=none", "hydra/launcher=local",
                f"results_dir={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/h", timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "runs").rglob("*.json"))) == 1
