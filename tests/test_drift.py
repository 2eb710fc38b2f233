"""benchmarks/drift.py: the machine calibration and the baseline check of `make perf`."""
import importlib.util
import json
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("drift", Path(__file__).parents[1] / "benchmarks" / "drift.py")
drift = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(drift)

CALM = {"matmul": 1e-3, "memory": 2e-3, "small_ops": 5e-4}


def run(medians: dict[str, float], calibration: dict[str, float] | None) -> dict:
    extra = {"calibration_s": calibration} if calibration else {}
    return {"benchmarks": [{"name": n, "fullname": f"benchmarks/test_perf.py::{n}", "stats": {"median": m},
                            "extra_info": extra} for n, m in medians.items()]}


def test_calibration_times_each_piece_of_work(monkeypatch):
    seconds = drift.calibration_seconds()
    assert set(seconds) == {"matmul", "memory", "small_ops"} and all(s > 0 for s in seconds.values())
    readings = iter([0.0] + [5.0, 5.001] * 7 + [0.0] + [5.0, 5.002] * 7 + [0.0] + [5.0, 5.003] * 7)
    monkeypatch.setattr(drift, "clock", lambda: next(readings))  # each piece: an untimed warm-up, then 7 calls
    assert drift.calibration_seconds() == pytest.approx({"matmul": 1e-3, "memory": 2e-3, "small_ops": 3e-3})


def test_machine_ratio_is_the_geometric_mean_of_the_pieces_both_runs_have():
    slow = {"matmul": 4e-3, "memory": 2e-3, "small_ops": 5e-4, "renamed": 1.0}  # 4x, 1x, 1x; "renamed" unshared
    assert drift.machine_ratio(slow, CALM) == pytest.approx(4 ** (1 / 3))
    assert drift.machine_ratio({"other": 1.0}, CALM) is None and drift.machine_ratio(CALM, None) is None
    assert drift.machine_ratio({"matmul": 0.0}, CALM) is None


def test_a_slowdown_of_the_machine_is_divided_out_and_one_of_the_code_is_not():
    base = run({"test_a": 1.0, "test_b": 1.0}, CALM)
    slower_machine = {k: 1.4 * v for k, v in CALM.items()}
    lines, failed = drift.compare(run({"test_a": 1.4, "test_b": 2.0}, slower_machine), base, 0.25)
    assert failed == ["test_b"]  # 2.0 / 1.4 = 1.43x beyond the drift; test_a's 1.4x is all machine
    assert "SLOWER" in lines[1] and lines[0].endswith("ok")
    much_slower = {k: 2 * v for k, v in CALM.items()}
    lines, failed = drift.compare(run({"test_a": 2.0, "test_b": 2.0}, much_slower), base, 0.25)
    assert failed == [] and "large drift" in lines[0]
    _, failed = drift.compare(run({"test_a": 1.4, "test_b": 1.0}, CALM), base, 0.25)
    assert failed == ["test_a"]  # the same 1.4x on a machine as fast as the baseline's is the code's


def test_a_baseline_without_calibration_is_compared_raw_and_new_or_missing_benchmarks_never_fail():
    base = run({"test_a": 1.0, "test_gone": 1.0}, None)
    lines, failed = drift.compare(run({"test_a": 1.2, "test_new": 9.0}, CALM), base, 0.25)
    assert failed == [] and "missing" in lines[0] and "raw" in lines[1] and "new" in lines[2]
    _, failed = drift.compare(run({"test_a": 1.3}, CALM), run({"test_a": 1.0}, None), 0.25)
    assert failed == ["test_a"]


def test_the_check_reads_the_newest_baseline_and_exits_1_on_a_slowdown(tmp_path, capsys):
    folder = tmp_path / "baseline" / drift.machine_id()
    folder.mkdir(parents=True)
    (folder / "0009_old.json").write_text(json.dumps(run({"test_a": 10.0}, CALM)))
    (folder / "0010_new.json").write_text(json.dumps(run({"test_a": 1.0}, CALM)))
    current = tmp_path / "run.json"
    current.write_text(json.dumps(run({"test_a": 2.0}, CALM)))
    assert drift.main([str(current), str(tmp_path / "baseline")]) == 1  # 2x the newest (0010), not 0.2x 0009
    assert "0010_new.json" in capsys.readouterr().out
    current.write_text(json.dumps(run({"test_a": 1.1}, CALM)))
    assert drift.main([str(current), str(tmp_path / "baseline")]) == 0
    assert drift.main([str(current), str(tmp_path / "none")]) == 2
