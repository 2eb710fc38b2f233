"""The command line, run as users run it: real subprocesses of `python -m bench`."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import ROOT


HUNG = 900  # seconds: each subprocess's bound, to stop a hung run only (a loaded 2-core machine is slow, not wrong)


def bench(*args, timeout=HUNG):
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
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.rglob("*.json"))


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


def test_a_sweep_over_several_grids_runs_each_grids_cells_as_that_grid_alone_would(tmp_path):
    """+grid=l1,adamw (what make bench runs): l1's 6 cells then adamw's 2 in one sweep and one [i/8] count, with
    the keys (and so the rows' paths) of each grid run on its own; task=mlp on the command line still overrides
    adamw's own task sweep (mlp,cifar)."""
    common = ["-m", "preset=smoke", "progress=false", "task=mlp", "task.epochs=1"]
    both = bench(*common, "+grid=l1,adamw", f"results_dir={tmp_path}/both", f"hydra.sweep.dir={tmp_path}/h")
    assert both.returncode == 0, both.stderr
    assert re.findall(r"\[(\d)/8\] mlp/(\w+) \((\w+)\):", both.stdout) == [
        ("1", "l1", "l1"), ("2", "l1", "l1"), ("3", "l1", "l1"), ("4", "l1_prox", "l1"), ("5", "l1_prox", "l1"),
        ("6", "l1_prox", "l1"), ("7", "adamw", "adamw"), ("8", "adamw", "adamw")]
    for grid in ("l1", "adamw"):
        alone = bench(*common, f"+grid={grid}", f"results_dir={tmp_path}/alone", f"hydra.sweep.dir={tmp_path}/h-{grid}")
        assert alone.returncode == 0, alone.stderr
    paths = {d: sorted(str(p.relative_to(tmp_path / d)) for p in (tmp_path / d).rglob("*.json")) for d in ("both", "alone")}
    assert len(paths["both"]) == 8 and paths["both"] == paths["alone"]


def test_an_unknown_grid_among_several_is_one_line_and_nothing_trains(tmp_path):
    out = bench("-m", "preset=smoke", "+grid=l1,nosuch", f"results_dir={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/h")
    assert out.returncode == 2
    assert out.stderr.strip() == "regbench: error: cell 7 (+grid=nosuch): In 'config': Could not find 'grid/nosuch'"
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_one_clear_line(tmp_path):
    out = bench("device=cuda", f"results_dir={tmp_path}", f"hydra.run.dir={tmp_path}/hydra")
    assert out.returncode == 2
    assert out.stderr.strip() == ("regbench: error: device 'cuda' requested but CUDA is not available here; "
                                  "use device=auto or cpu")
    assert not list(tmp_path.rglob("*.json"))


GRID = ["-m", "preset=smoke", "progress=false", "technique=none,l2,l1,dropout,batchnorm,augment", "task.epochs=150"]


def wait_for_rows(folder, n, proc, limit=HUNG):
    """Until n rows are on disk or the process has ended; the limit only stops a hung run (a loaded machine is slow)."""
    deadline = time.monotonic() + limit
    while proc.poll() is None and len(list(folder.rglob("*.json"))) < n:
        assert time.monotonic() < deadline, f"fewer than {n} row(s) after {limit} s"
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


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]], ids=["basic", "joblib"])
def test_ctrl_c_exits_cleanly_saying_how_many_cells_finished(tmp_path, launcher):
    """joblib's cells finish in worker processes: the count must still include them."""
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "bench", *GRID, *launcher, f"results_dir={runs}", f"hydra.sweep.dir={tmp_path}/h"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(runs, 2 if launcher else 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HUNG)
    finished = len(list(runs.rglob("*.json")))
    assert proc.returncode == 130
    assert finished < 6, "the interrupt should land mid-grid"
    assert f"interrupted after {finished} finished cell(s)" in err
    assert err.count("Traceback") == err.count("Exception in thread ExecutorManagerThread")  # loky's, racing the stop


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
    progress = [re.fullmatch(PROGRESS, line) for line in parallel.stdout.splitlines()]
    assert sorted(m.groups()[:2] for m in progress if m) == [("1", "3"), ("2", "3"), ("3", "3")]  # printed by workers


def test_submitit_local_launcher_runs_the_cluster_configuration(tmp_path):
    out = bench("-m", "preset=smoke", "progress=false", "technique=none", "hydra/launcher=local",
                f"results_dir={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/h", timeout=HUNG)
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "runs").rglob("*.json"))) == 1


def test_a_misspelt_key_added_with_plus_fails_naming_it(tmp_path):
    out = bench("task=mlp", "technique=l2", "+technique.l2.wieght_decay=0.5", "preset=smoke", f"results_dir={tmp_path}",
                f"hydra.run.dir={tmp_path}/hydra")
    assert out.returncode == 2
    assert out.stderr.strip() == "regbench: error: unknown key 'technique.l2.wieght_decay'"
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("args, technique", [
    (["technique.l2.weight_decay=0.01"], "none"),  # the default technique
    (["+technique.l2.weight_decay=0.01"], "none"),
    (["-m", "technique=l2,dropout", "technique.l2.weight_decay=0.01"], "dropout"),
    (["-m", "+grid=dropout", "technique.l2.weight_decay=0.01"], "dropout"),  # the grid's technique
    (["-m", "+grid=l1,dropout", "technique.l2.weight_decay=0.01"], "l1"),  # the first grid's first technique
])
def test_setting_a_piece_the_technique_lacks_is_one_line(tmp_path, args, technique):
    out = bench(*args, f"results_dir={tmp_path}", f"hydra.run.dir={tmp_path}/h", f"hydra.sweep.dir={tmp_path}/h")
    assert out.returncode == 2
    assert out.stderr.strip() == (f"regbench: error: technique.l2.* is set but technique '{technique}' has no l2 piece; "
                                  "use technique=l2 or a technique that includes it")


@pytest.mark.parametrize("args", [["+search=l2", "technique.l2.weight_decay=0.1"],  # the search's technique has l2
                                  ["technique=l2_es", "technique.early_stopping.min_delta=0.1"]])  # from its defaults
def test_setting_a_piece_the_technique_has_composes(args):
    out = bench(*args, "--cfg", "job")
    assert out.returncode == 0 and args[1].split(".")[-1].replace("=", ": ") in out.stdout, out.stderr


def test_a_sweep_checks_every_cell_before_the_first_trains(tmp_path):
    out = bench("-m", "preset=smoke", "progress=false", "technique=dropout", "technique.dropout.p=0.3,1.5,0.2",
                f"results_dir={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/h")
    assert out.returncode == 2
    assert out.stderr.strip() == "regbench: error: cell 2 (technique.dropout.p=1.5): dropout.p must be in [0, 1), got 1.5"
    assert not list(tmp_path.rglob("*.json"))


def test_a_grid_without_its_cifar_data_fails_naming_every_cifar_cell(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench", "-m", "+grid=article", "preset=smoke", "progress=false",
                          f"results_dir={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/h"], cwd=ROOT,
                         capture_output=True, text=True, timeout=HUNG, env={**os.environ, "REGBENCH_CIFAR": "/nonexistent"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    techniques = OmegaConf.load(ROOT / "bench/conf/grid/article.yaml").hydra.sweeper.params.technique.split(",")
    assert [line.split(": CIFAR-10 not found at /nonexistent ")[0] for line in lines] == [
        f"regbench: error: cell {len(techniques) + i} (task=cifar technique={t})" for i, t in enumerate(techniques, 1)]
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("where, why", [("file", "File exists"), ("file/runs", "Not a directory")])
def test_a_sweep_whose_results_dir_cannot_be_written_fails_before_training(tmp_path, where, why):
    (tmp_path / "file").write_text("")
    out = bench("-m", "preset=smoke", "progress=false", "technique=none,l2", f"results_dir={tmp_path / where}",
                f"hydra.sweep.dir={tmp_path}/h")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"regbench: error: cell {i} (technique={t}): results_dir {tmp_path / where} is not a writable folder ({why})"
        for i, t in ((1, "none"), (2, "l2"))]


PROGRESS = r"\[(\d)/(\d)\] mlp/(\w+): .* \(elapsed \d+:\d\d, ETA \d+:\d\d\)"


def test_a_sweep_prints_progress_and_skips_a_technique_that_does_not_apply(tmp_path):
    out = bench("-m", "preset=smoke", "progress=false", "task=mlp", "technique=none,cutout", f"results_dir={tmp_path}",
                f"hydra.sweep.dir={tmp_path}/h")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if re.fullmatch(PROGRESS, line)]
    assert [re.fullmatch(PROGRESS, line).groups() for line in lines] == [("1", "2", "none"), ("2", "2", "cutout")]
    assert "mlp/cutout: skipped (cutout does not apply to task mlp)" in lines[1]
    assert [p.parent.name for p in tmp_path.rglob("*.json")] == ["none"]


COUNT_COMPOSITIONS = """
import sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from bench.cli import main
compose, calls = ConfigLoaderImpl.load_sweep_config, []
def counted(self, master_config, sweep_overrides):
    calls.append(list(sweep_overrides))
    return compose(self, master_config, sweep_overrides)
ConfigLoaderImpl.load_sweep_config = counted
sys.argv = ["regbench", *sys.argv[1:]]
try:
    main()
finally:
    print("compositions", len(calls))
"""


def test_a_sweep_composes_each_cell_once_for_its_check_and_its_run(tmp_path):
    out = subprocess.run([sys.executable, "-c", COUNT_COMPOSITIONS, "-m", "preset=smoke", "progress=false", "task=mlp",
                          "technique=none,l2", "task.epochs=2", f"results_dir={tmp_path}", f"hydra.sweep.dir={tmp_path}/h"],
                         cwd=ROOT, capture_output=True, text=True, timeout=HUNG)
    assert out.returncode == 0, out.stderr
    assert "compositions 2" in out.stdout.splitlines()
    rows = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert sorted((r["technique"], r["config"]["task"]["epochs"]) for r in rows) == [("l2", 2), ("none", 2)]


def test_help_and_a_bad_value_answer_without_importing_torch(tmp_path):
    code = ("import sys\nfrom bench.cli import main\ntry:\n    main()\nfinally:\n"
            "    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")
    for args in (["--help"], ["technique=dropout", "technique.dropout.p=1.5", f"hydra.run.dir={tmp_path}"]):
        out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=HUNG)
        assert out.stderr.strip().splitlines()[-1] == "torch imported: False", (args, out.stderr)
    assert out.returncode == 2 and "regbench: error: dropout.p must be in [0, 1), got 1.5" in out.stderr


QUICK_EXIT = """
import atexit, sys
from pathlib import Path
from bench.cli import run
handlers = Path(sys.argv.pop())
atexit.register(lambda: handlers.write_text("exit handlers ran"))
sys.argv = ["regbench", *sys.argv[1:]]
run()
print("not reached: run() leaves the process itself")
"""


def test_the_command_leaves_after_its_exit_handlers_with_everything_printed(tmp_path):
    """run() (regbench, python -m bench) skips the interpreter's teardown after a clean cell: exit 0, the cell's
    line printed, the rows written and the exit handlers run, but nothing after it."""
    out = subprocess.run([sys.executable, "-c", QUICK_EXIT, "preset=smoke", "progress=false", "task.epochs=2",
                          f"results_dir={tmp_path}/runs", f"hydra.run.dir={tmp_path}/h", str(tmp_path / "handlers")],
                         cwd=ROOT, capture_output=True, text=True, timeout=HUNG)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["mlp/none: 1 row(s) written, 0 already done"]
    assert (tmp_path / "handlers").read_text() == "exit handlers ran"
    assert len(list((tmp_path / "runs").rglob("*.json"))) == 1


def test_the_regbench_command_answers_help_without_importing_torch():
    """The installed entry point itself (what users type), with Python's import-time log: torch is not among
    the modules it imported."""
    out = subprocess.run([Path(sys.executable).parent / "regbench", "--help"], capture_output=True, text=True,
                         timeout=HUNG, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert out.returncode == 0 and "== Configuration groups ==" in out.stdout, out.stderr[-2000:]
    imported = [line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert "hydra" in imported and "bench.cli" in imported  # the log is there and covers the command's imports
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_shell_completion_offers_the_config_groups_and_their_choices():
    def complete(line):
        return subprocess.run([Path(sys.executable).parent / "regbench", "-sc", "query=bash"], capture_output=True,
                              text=True, timeout=HUNG, env={**os.environ, "COMP_LINE": line}).stdout.split()

    assert "technique=" in complete("regbench tech")
    assert complete("regbench technique=dr") == ["technique=dropout", "technique=dropout_bn"]


def test_a_non_editable_install_has_the_configs_tasks_and_sweeper(tmp_path):
    """`pip install .` into a fresh venv (dependencies borrowed from this one through a .pth line, so nothing is
    downloaded but the build backend), then a sweep run from outside the checkout."""
    src, venv = tmp_path / "src", tmp_path / "venv"
    for name in ("bench", "hydra_plugins"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "regbench_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # a path line: its .pth files unread
    pip = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", src],
                         capture_output=True, text=True, timeout=HUNG)
    assert pip.returncode == 0, pip.stderr
    out = subprocess.run([venv / "bin" / "regbench", "-m", "task=mlp", "technique=none,cutout", "preset=smoke",
                          "progress=false", f"results_dir={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/h"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=HUNG)
    assert out.returncode == 0, out.stderr
    assert "[2/2] mlp/cutout: skipped" in out.stdout  # the regbench sweeper ran (progress lines)
    where = subprocess.run([venv / "bin" / "python", "-c", "import bench.tasks.mlp, hydra_plugins.regbench_sweeper as s; "
                            "print(bench.tasks.mlp.__file__, s.__file__)"], cwd=tmp_path, capture_output=True, text=True)
    assert all(path.startswith(str(site)) for path in where.stdout.split()), where.stdout + where.stderr


def factorial_cells_checked(tmp_path, *args):
    """The cells a factorial sweep would run, as its check lists them: results_dir is a file, so every cell fails
    the check with its overrides named and nothing trains."""
    (tmp_path / "file").write_text("")
    out = bench("-m", "preset=smoke", "progress=false", *args, f"results_dir={tmp_path / 'file'}",
                f"hydra.sweep.dir={tmp_path}/h")
    assert out.returncode == 2, out.stderr
    return re.findall(r"^regbench: error: cell \d+ \((.*)\): results_dir", out.stderr, re.M)


def test_the_factorial_grid_has_32_cells_named_after_their_pieces_also_among_other_grids(tmp_path):
    cells = factorial_cells_checked(tmp_path, "+grid=factorial")
    names = [re.search(r"technique.name=(\S+)", c).group(1) if "technique.name" in c else "none" for c in cells]
    assert len(cells) == 32 and len(set(names)) == 32 and names[0] == "none"
    assert "l2+dropout+batchnorm+augment+early_stopping" in names and "dropout+batchnorm" in names
    assert "technique=[l2,dropout] technique.name=l2+dropout technique.l2.weight_decay=0.1 technique.dropout.p=0.25" \
           in cells
    several = factorial_cells_checked(tmp_path, "+grid=adamw,factorial", "task=mlp")  # what make bench runs
    assert len(several) == 2 + 32 and all("+grid=factorial" in c for c in several[2:])


def test_the_cifar_factorial_is_a_half_fraction_of_16_cells(tmp_path):
    from omegaconf import OmegaConf

    from hydra_plugins.regbench_sweeper import factorial_cells

    spec = OmegaConf.load(ROOT / "bench/conf/grid/factorial_cifar.yaml").hydra.sweeper.factorial
    cells = factorial_cells(spec)
    assert len(cells) == 16 and ["technique=none"] not in cells  # I = +product: an odd number of factors on
    assert all(c[1].split("=")[1].count("+") % 2 == 0 for c in cells)


@pytest.mark.parametrize("override, message", [
    ("+hydra.sweeper.factorial.factors.l3={x:1}", "factor 'l3' is not a regularizer piece; valid: l2, l1,"),
    ("hydra.sweeper.factorial.factors.dropout.p=1.5", "factor dropout: dropout.p must be in [0, 1), got 1.5"),
    ("hydra.sweeper.factorial.fraction=third", "factorial fraction must be full or half, got 'third'"),
])
def test_a_bad_factor_or_level_is_one_line_before_anything_trains(tmp_path, override, message):
    out = bench("-m", "+grid=factorial", "preset=smoke", "progress=false", override, f"results_dir={tmp_path}/runs",
                f"hydra.sweep.dir={tmp_path}/h")
    assert out.returncode == 2
    assert out.stderr.strip().startswith(f"regbench: error: grid factorial: {message}")
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "h").exists()
