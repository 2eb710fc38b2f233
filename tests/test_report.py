"""The report from fixture rows written here: table values, verdicts, missing data, bad files."""
import json
import math

import pytest
from scipy import stats

from bench.report import build_report, mean_ci, to_frame, all_claims, technique_table
from bench.results import SCHEMA_VERSION, load_rows, write_row


def fake_row(task, technique, seed, *, grid="article", test=0.5, train=0.1, cost=1.0, epochs=100, budget=100,
             frac_zero=0.0, depth=2, n_train=100, strength=None, initial=1.0):
    final = {"train_loss": train, "test_loss": test if task == "mlp" else 1.0, "gap": (test if task == "mlp" else 1.0) - train}
    if task == "cifar":
        final.update(test_acc=test, train_acc=0.9)
    tech_cfg = {"name": technique}
    if technique == "l2":
        tech_cfg["l2"] = {"weight_decay": strength or 1e-4, "decoupled": False}
    return {
        "schema_version": SCHEMA_VERSION, "task": task, "technique": technique, "grid": grid, "preset": "quick",
        "seed": seed, "status": "ok", "env": {"device": "cpu (test)", "torch": "x", "git_commit": "abc"},
        "config": {"task": {"name": task, "epochs": budget, "depth": depth, "n_train": n_train}, "technique": tech_cfg},
        "final": final, "epochs_run": epochs, "best_epoch": epochs, "initial_val_loss": initial,
        "train_seconds_per_epoch": cost, "hook_seconds_per_epoch": 0.0, "eval_seconds_per_epoch": 0.1,
        "wall_seconds": cost * epochs, "samples_per_s": 100 / cost, "frac_weights_zero": frac_zero,
        "frac_weights_below_1e-3": frac_zero, "weight_l2_norm": 1.0, "noise_floor": 0.25,
        "history": [{"epoch": e, "train_loss": train, "val_loss": test, "test_loss": test, "lr": 1e-3} for e in (1, 2)],
    }


def write(tmp_path, rows):
    for i, r in enumerate(rows):
        write_row(tmp_path / "runs" / f"{i}.json", r)
    return tmp_path / "runs"


@pytest.fixture
def grid_rows():
    rows = []
    for s in range(3):
        rows += [fake_row("mlp", "none", s, test=0.60 + 0.01 * s, train=0.01, cost=1.0),
                 fake_row("mlp", "l2", s, test=0.50 + 0.01 * s, train=0.05, cost=1.02),
                 fake_row("mlp", "augment", s, test=0.58 + 0.02 * s, train=0.05, cost=2.0),
                 fake_row("mlp", "l1", s, test=0.55, train=0.05, cost=1.2, frac_zero=0.4),
                 fake_row("mlp", "early_stopping", s, test=0.52 + 0.01 * s, train=0.2, cost=1.0, epochs=40)]
    return rows


def test_mean_and_95_ci_use_the_t_distribution():
    s = mean_ci([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.n == 3
    assert s.half_width == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    assert str(mean_ci([4.0])) == "4 (n=1)"


def test_technique_table_holds_the_expected_numbers(grid_rows):
    table = technique_table(to_frame(grid_rows), "mlp")
    lines = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert set(lines) == {"`none`", "`l2`", "`augment`", "`l1`", "`early_stopping`"}
    l2 = [c.strip() for c in lines["`l2`"].split("|")[1:-1]]
    assert l2[1] == "3"
    assert l2[2].startswith("0.51 ± ")  # test loss mean
    assert l2[9] == "1.02×"  # cost ratio vs none
    assert l2[10] == "-0.1"  # paired difference vs none, same seeds
    assert l2[11] == "n/a"  # identical differences: no t-test possible


def test_verdicts_follow_the_rows(grid_rows):
    verdicts = {v.claim: v.verdict for v in all_claims(to_frame(grid_rows))}
    assert verdicts["augment: medium-high cost"] == "supported"
    assert verdicts["l2 and early_stopping: negligible cost"] == "supported"
    assert verdicts["L1 drives many weights to exactly zero"] == "supported"
    assert verdicts["Early stopping saves epochs"] == "supported"
    assert verdicts["Batch norm helps most for deep networks (10+ layers)"] == "inconclusive"  # no depth rows
    slow_l2 = [fake_row("mlp", "l2", s, cost=3.0) if r["technique"] == "l2" else r for s, r in enumerate(grid_rows)]
    verdicts = {v.claim: v.verdict for v in all_claims(to_frame(slow_l2))}
    assert verdicts["l2 and early_stopping: negligible cost"] != "supported"


def test_depth_and_over_regularization_verdicts(grid_rows):
    rows = list(grid_rows)
    for s in range(2):
        for depth, gain in ((2, 0.0), (4, 0.01), (12, 0.2), (16, 0.3)):
            rows.append(fake_row("mlp", "none", s, grid="depth", depth=depth, test=1.0))
            rows.append(fake_row("mlp", "batchnorm", s, grid="depth", depth=depth, test=1.0 - gain))
        rows.append(fake_row("mlp", "l2", s, grid="l2", strength=1e-5, train=0.01, initial=1.0))
        rows.append(fake_row("mlp", "l2", s, grid="l2", strength=1e-1, train=0.95, initial=1.0))
    verdicts = {v.claim: v.verdict for v in all_claims(to_frame(rows))}
    assert verdicts["Batch norm helps most for deep networks (10+ layers)"] == "supported"
    assert verdicts["Over-regularizing stops learning"] == "supported"


def test_report_renders_with_a_missing_task_and_a_single_seed(tmp_path):
    rows = [fake_row("mlp", "none", 0), fake_row("mlp", "l2", 0)]
    report = build_report(write(tmp_path, rows), tmp_path / "out")
    text = report.read_text()
    assert "no article-grid rows for task `cifar`" in text
    assert "single seed" in text and "(n=1)" in text
    assert (tmp_path / "out" / "metric_mlp.png").stat().st_size > 1000
    assert "metric_cifar.png" not in text


def test_bad_files_are_skipped_with_a_warning_naming_them(tmp_path, capsys):
    runs = write(tmp_path, [fake_row("mlp", "none", 0)])
    (runs / "cut.json").write_text('{"schema_version": 1, "tas')
    (runs / "other.json").write_text(json.dumps({"some": "tool"}))
    report = build_report(runs, tmp_path / "out")
    printed = capsys.readouterr().out
    assert "cut.json" in printed and "other.json" in printed
    assert "from 1 result rows" in report.read_text()


def test_diverged_cells_are_shown_not_dropped(tmp_path):
    bad = fake_row("mlp", "l2", 0)
    bad.update(status="diverged", diverged_epoch=3)
    text = build_report(write(tmp_path, [fake_row("mlp", "none", 0), bad]), tmp_path / "out").read_text()
    assert "`mlp/l2` seed 0 (article grid): **diverged** at epoch 3" in text


def test_empty_results_say_so(tmp_path):
    (tmp_path / "runs").mkdir()
    assert "No result rows found" in build_report(tmp_path / "runs", tmp_path / "out").read_text()


def test_rows_are_read_back_as_written(tmp_path, grid_rows):
    assert len(load_rows(write(tmp_path, grid_rows))) == len(grid_rows)
