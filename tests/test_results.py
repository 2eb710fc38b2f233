"""Rows: keys, atomic writes, and reading back with bad files skipped."""
import json

import pytest

import torch

from bench.results import SCHEMA_VERSION, SchemaError, experiment, load_rows, row_key, write_row
from tests.conftest import ROOT, make_config

CPU = torch.device("cpu")


def key(*overrides, seed=0):
    return row_key(experiment(make_config(*overrides), CPU), seed)


def test_key_depends_on_the_experiment_and_seed_only():
    spec = experiment(make_config("technique=l2"), CPU)
    assert row_key(spec, 0) == row_key(json.loads(json.dumps(spec)), 0)
    assert key("technique=l2") != key("technique=l2", seed=1)
    assert key("technique=l2") != key("technique=l2", "task.epochs=3")
    assert key("technique=l2") != key("technique=l2", "technique.l2.weight_decay=0.5")
    assert key("technique=l2") != key("technique=l2", "+grid=l2")


def test_key_ignores_where_files_live_and_pieces_that_are_off(tmp_path):
    base = key("task=cifar", "technique=none")
    assert key("task=cifar", "technique=none", f"task.data_path={tmp_path}/x", "task.cache_dir=elsewhere") == base
    assert key("task=cifar", "technique=none", "task.data_path=../x") == base  # the same archive, spelled otherwise
    assert experiment(make_config("technique=l2"), CPU)["technique"] == {"name": "l2", "l2": {}}  # defaults unhashed


def test_stored_row_keys_survive_new_config_fields():
    """A row written by an earlier commit (tests/fixtures/row_key_v1.json, its config and key as stored) keeps its
    key: fields added since, at their defaults, are not hashed."""
    stored = json.loads((ROOT / "tests" / "fixtures" / "row_key_v1.json").read_text())
    cfg = make_config(*stored["overrides"])
    assert row_key(experiment(cfg, CPU), stored["seed"]) == stored["key"]


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
