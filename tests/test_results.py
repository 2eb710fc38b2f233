"""Rows: keys, atomic writes, and reading back with bad files skipped."""
import json

import pytest

from bench.results import SCHEMA_VERSION, SchemaError, load_rows, row_key, write_row


def test_key_depends_on_config_and_seed_only():
    cell = {"task": {"name": "mlp", "epochs": 2}, "technique": {"name": "l2"}, "preset": "smoke", "device_type": "cpu"}
    assert row_key(cell, 0) == row_key(json.loads(json.dumps(cell)), 0)
    assert row_key(cell, 0) != row_key(cell, 1)
    assert row_key(cell, 0) != row_key({**cell, "task": {"name": "mlp", "epochs": 3}}, 0)


def test_write_is_atomic_and_strict_json(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_row(path, {"schema_version": SCHEMA_VERSION, "x": float("nan"), "h": [float("inf"), 1.0]})
    assert json.loads(path.read_text()) == {"schema_version": SCHEMA_VERSION, "x": None, "h": [None, 1.0]}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temp file left behind


def test_broken_foreign_and_old_rows_are_skipped_with_a_warning_naming_them(tmp_path):
    write_row(tmp_path / "good.json", {"schema_version": SCHEMA_VERSION, "v": 1})
    (tmp_path / "truncated.json").write_text('{"schema_version": 1, "v"')
    (tmp_path / "foreign.json").write_text('{"hello": "world"}')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION - 1}))
    with pytest.warns(UserWarning) as caught:
        rows = load_rows(tmp_path)
    assert rows == [{"schema_version": SCHEMA_VERSION, "v": 1}]
    text = " ".join(str(w.message) for w in caught)
    for name in ("truncated.json", "foreign.json", "list.json", "old.json"):
        assert name in text


def test_newer_schema_is_refused(tmp_path):
    (tmp_path / "new.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(SchemaError, match="new.json.*update regbench"):
        load_rows(tmp_path)
