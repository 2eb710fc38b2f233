"""Per-seed rows: quick MLP cells give bit for bit the rows stored in tests/fixtures/quick_mlp_rows.json.

The fixture was written by the code before the trainer was split into train / measure / seed_rows (issue 26), so
any change to RNG draws, the order of training ops or what the measurements read shows up here. Bit-identity
holds for one torch build on one CPU kind and thread count: elsewhere the test skips, saying so. To write the
fixture again (only for a change meant to move results): `.venv/bin/python -m tests.test_seed_rows`.
"""
import json
import platform
from pathlib import Path

import pytest
import torch

from bench.config import compose_config
from bench.tasks import get_task
from bench.train import train_seeds

FIXTURE = Path(__file__).parent / "fixtures" / "quick_mlp_rows.json"
TECHNIQUES = ["none", "l2_es_dropout", "ema"]  # no hook; dropout + early stopping (seeds stop apart) + l2; eval_weights
EPOCHS = 30  # the quick MLP cell (10 stacked seeds) with 30 of its 300 epochs: patience 3, the test ~3 s
TIMING = {"train_seconds", "val_seconds_per_epoch", "hook_seconds_per_epoch", "curve_seconds_per_epoch",
          "seconds_to_result", "epoch_seconds_median", "epoch_seconds_iqr", "reference_step_seconds",
          "reference_step_iqr", "samples_per_s", "peak_memory_mb", "peak_memory_kind"}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else platform.machine()
    return {"torch": torch.__version__, "cpu": cpu, "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def results(technique: str) -> list[dict]:
    """The rows' deterministic fields for a quick MLP cell (10 seeds), everything but timing and memory."""
    cfg = compose_config("task=mlp", "preset=quick", f"technique={technique}", f"task.epochs={EPOCHS}")
    seeds = cfg.preset.seed_list()
    data = get_task("mlp").load_data(cfg.task, torch.device("cpu"), seeds)
    rows = train_seeds(cfg.task, cfg.technique, seeds, data, torch.device("cpu"))
    return [{**{k: v for k, v in row.items() if k not in TIMING and k != "history"},
             "history": [{k: v for k, v in h.items() if k != "train_s"} for h in row["history"]]} for row in rows]


def test_quick_mlp_cells_give_the_stored_rows_bit_for_bit():
    stored = json.loads(FIXTURE.read_text())
    if stored["machine"] != machine():
        pytest.skip(f"fixture written on {stored['machine']}, this is {machine()}: bit-identity is per build and CPU")
    for technique in TECHNIQUES:
        got = json.loads(json.dumps(results(technique)))  # through JSON, as rows are stored: NaN/inf and floats exact
        want = stored["cells"][technique]
        assert len(got) == len(want) == 10
        for g, w in zip(got, want):
            assert g["final"] == w["final"], (technique, g["seed"])
            assert g["history"] == w["history"], (technique, g["seed"])
            assert g == w, (technique, g["seed"])
    assert len({r["epochs_run"] for r in stored["cells"]["l2_es_dropout"]}) > 1  # the seeds stopped apart


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps({"machine": machine(), "cells": {t: results(t) for t in TECHNIQUES}},
                                  separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size // 1024} KiB)")
