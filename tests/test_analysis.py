"""Analysis: reading v2 rows, techniques and tasks from the rows, Holm, paired statistics, selection, time, flags."""
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.analysis import SchemaError, curves_frame, metric, read_rows, tasks_of, to_frame
from bench.comparisons import measured_cost
from bench.results import SCHEMA_VERSION
from bench.measures import epoch_overhead, never_acted, not_testable, target, time_to_target, tt_summary, underfits
from bench.selection import choose_on_validation, sweep_grids, tuned_cells
from bench.stats import holm, judge, min_detectable, paired
from bench.techniques import combinations, order_techniques, singles
from tests.fake_rows import make_row, new_technique_row, write_rows


def test_holm_matches_known_adjusted_p_values():
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm")
    assert holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    # by hand, unsorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone
    out = holm([0.01, float("nan"), 0.04])  # nan is not a comparison: family of 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


def test_paired_statistics_match_scipy_and_are_reproducible():
    a = pd.Series([0.50, 0.55, 0.61, 0.58], index=[0, 1, 2, 3])
    b = pd.Series([0.45, 0.52, 0.50, 0.55, 0.9], index=[0, 1, 2, 3, 4])  # seed 4 unpaired: dropped
    d = paired(a, b)
    assert d.n == 4 and d.mean == pytest.approx(0.055)
    assert d.p == pytest.approx(stats.ttest_rel(a, b.iloc[:4]).pvalue)
    half = stats.t.ppf(0.975, 3) * d.sd / 2
    assert (d.lo, d.hi) == pytest.approx((d.mean - half, d.mean + half))
    again = paired(a, b)
    assert (again.boot_lo, again.boot_hi) == (d.boot_lo, d.boot_hi)  # fixed random_state
    assert d.boot_lo < d.mean < d.boot_hi


def test_minimal_detectable_difference_has_80_percent_power():
    for n in (3, 10):
        mdd = min_detectable(2.0, n)
        crit, ncp = stats.t.ppf(0.975, n - 1), mdd / 2.0 * math.sqrt(n)
        power = stats.nct.sf(crit, n - 1, ncp) + stats.nct.cdf(-crit, n - 1, ncp)
        assert power == pytest.approx(0.80, abs=1e-4)
    assert min_detectable(1.0, 3) > min_detectable(1.0, 10)
    assert math.isnan(min_detectable(1.0, 1))


def _paired_from(diffs):
    return paired(pd.Series(diffs, dtype=float), pd.Series(np.zeros(len(diffs))))


def test_not_supported_needs_a_test_and_small_n_is_underpowered():
    small = _paired_from([0.02, -0.01, 0.03])  # noisy, n=3, effect below its MDD
    verdict, reason = judge(small, small.p, margin=0.01)
    assert verdict == "inconclusive" and reason.startswith("underpowered: minimal detectable difference")
    assert "at n=3" in reason
    other_way = _paired_from([-0.10, -0.11, -0.12, -0.10])
    assert judge(other_way, other_way.p, margin=0.01) == ("not supported", "significant effect the other way")
    assert judge(other_way, other_way.p, margin=0.01, direction=-1) == ("supported", "")
    flat = _paired_from([0.001, -0.001, 0.0005, -0.0004, 0.0002, 0.0, 0.0003, -0.0002])
    verdict, reason = judge(flat, flat.p, margin=0.01)
    assert verdict == "not supported" and reason.startswith("no practical difference: 95% CI within")
    assert judge(_paired_from([0.1]), float("nan"), 0.01)[0] == "inconclusive"


def test_selection_uses_validation_only():
    rows = []
    # val and test disagree: 1e-3 is best on validation and worst on test; 1e-2 the other way round
    for seed in range(3):
        rows += [make_row("mlp", "none", seed, epochs=10),
                 make_row("mlp", "l2", seed, epochs=10, val_loss=0.50, test_loss=0.40),
                 make_row("mlp", "l2", seed, grid="l2", value=1e-3, epochs=10, val_loss=0.30, test_loss=0.90),
                 make_row("mlp", "l2", seed, grid="l2", value=1e-2, epochs=10, val_loss=0.80, test_loss=0.20)]
    df = to_frame(rows)
    cells, chosen = tuned_cells(df, "mlp")
    assert chosen["l2"][:3] == (1e-3, 1e-4, 3)
    assert set(cells[cells.technique == "l2"].value) == {1e-3}
    scrambled = df.copy()
    shuffled = np.random.default_rng(0).permutation(scrambled.test_loss.to_numpy())
    scrambled["test_loss"], scrambled["test_metric"] = shuffled, shuffled[::-1]
    assert tuned_cells(scrambled, "mlp")[1]["l2"][0] == 1e-3  # test values never move the choice
    with pytest.raises(KeyError):  # the chooser gets no test column to read
        choose_on_validation(df[["value", "seed", "test_metric"]], False)


def _one(row):
    return next(to_frame([row]).itertuples())


@pytest.mark.parametrize("task", ["mlp", "cifar"])
def test_cost_ratios_count_in_the_yardstick_so_the_machines_drift_cancels(task):
    """l2 adds no work per step: timed on a 1.5x slower machine its raw epoch time is 1.5x none's, yet its cost
    ratios (per epoch and time to target, both in reference steps) stay at 1; dropout keeps its own overhead."""
    none = to_frame([make_row(task, "none", s) for s in range(3)])
    slow_l2 = to_frame([make_row(task, "l2", s, slowdown=1.5) for s in range(3)])
    raw = slow_l2.epoch_seconds_median.mean() / none.epoch_seconds_median.mean()
    assert raw == pytest.approx(1.5, rel=0.05)
    ratio, runs, noise = epoch_overhead(slow_l2, none)
    assert ratio == pytest.approx(1.0, abs=0.05) and runs >= 1 and 0 < noise < 0.2
    goal = target(none, task)
    slow, normal = (measured_cost(cell, none, task, goal, tt_summary(none, goal, task))
                    for cell in (slow_l2, to_frame([make_row(task, "l2", s) for s in range(3)])))
    assert slow["tt"]["seconds"].mean == pytest.approx(1.5 * normal["tt"]["seconds"].mean, rel=0.05)  # raw seconds
    assert slow["ratio"] == pytest.approx(normal["ratio"], rel=0.05) and slow["word"] == "Negligible"
    dropout = to_frame([make_row(task, "dropout", s, slowdown=1.5) for s in range(3)])
    expected = {"mlp": 1.35, "cifar": 1.03}[task]  # the fixture's dropout overhead
    assert epoch_overhead(dropout, none)[0] == pytest.approx(expected, rel=0.06)


def test_per_epoch_noise_is_the_spread_across_runs_when_a_cell_has_several():
    """CIFAR cells time 3 runs: a yardstick that missed the drift shows as spread across them, and widens the noise."""
    none = to_frame([make_row("cifar", "none", s) for s in range(3)])
    steady = to_frame([make_row("cifar", "l2", s) for s in range(3)])
    uneven = to_frame([make_row("cifar", "l2", s, epoch_seconds_median=1.8 * f) for s, f in enumerate((0.8, 1.0, 1.4))])
    quiet, loud = epoch_overhead(steady, none)[2], epoch_overhead(uneven, none)[2]
    spread = np.array([0.8, 1.0, 1.4])
    expected = stats.t.ppf(0.975, 2) * spread.std(ddof=1) / math.sqrt(3) / spread.mean()
    assert loud > expected > 3 * quiet


def test_time_to_target_on_hand_made_histories():
    hist = [{"epoch": 1, "train_s": 1.0, "val_loss": 1.0, "val_acc": 0.30},
            {"epoch": 2, "train_s": 1.0, "val_loss": 0.8, "val_acc": 0.50},
            {"epoch": 3, "train_s": 1.0, "val_loss": 0.9, "val_acc": 0.45}]
    row = make_row("cifar", "early_stopping", 0, epochs=3, history=hist, hook_seconds_per_epoch=0.1,
                   val_seconds_per_epoch=0.5, uses_validation=True)
    r = _one(row)
    assert time_to_target(r, 0.5, "cifar") == (2, pytest.approx(2.0 + 2 * 0.6))  # reached
    assert time_to_target(r, 0.6, "cifar") == (None, None)  # never
    assert time_to_target(r, 0.2, "cifar") == (1, pytest.approx(1.0 + 0.6))  # at epoch 1
    no_val = _one({**row, "uses_validation": False})
    assert time_to_target(no_val, 0.5, "cifar") == (2, pytest.approx(2.0 + 2 * 0.1))  # val pass not charged
    mlp = _one(make_row("mlp", "none", 0, epochs=3, history=hist, hook_seconds_per_epoch=0.0))
    assert time_to_target(mlp, 0.85, "mlp")[0] == 2  # lower is better
    nones = to_frame([make_row("cifar", "none", s, epochs=3, history=[{**h, "val_acc": h["val_acc"] + 0.1 * s}
                                                                        for h in hist]) for s in range(2)])
    goals = target(nones, "cifar")  # each seed's own best; the mean for seeds none lacks
    assert (goals[0], goals[1], goals[None]) == pytest.approx((0.5, 0.6, 0.55))


def test_underfits_means_fitting_the_task_less_not_the_training_set_less():
    none = to_frame([make_row("cifar", "none", s, epochs=4, train_acc=0.99, test_acc=0.50) for s in range(3)])
    low = to_frame([make_row("cifar", "l2", s, epochs=4, train_acc=0.85, test_acc=0.45) for s in range(3)])
    fine = to_frame([make_row("cifar", "l2", s, epochs=4, train_acc=0.92, test_acc=0.45) for s in range(3)])
    augments = to_frame([make_row("cifar", "augment", s, epochs=4, train_acc=0.58, test_acc=0.55) for s in range(3)])
    assert underfits(low, none, "cifar") and not underfits(fine, none, "cifar")
    assert not underfits(augments, none, "cifar")  # fits its training set less but tests better: regularization
    none = to_frame([make_row("mlp", "none", s, epochs=4, train_loss=0.05, test_loss=0.8) for s in range(3)])
    high = to_frame([make_row("mlp", "l2", s, epochs=4, train_loss=0.5, test_loss=0.9) for s in range(3)])  # floor 0.25
    near_floor = to_frame([make_row("mlp", "l2", s, epochs=4, train_loss=0.3, test_loss=0.9) for s in range(3)])
    better = to_frame([make_row("mlp", "l2", s, epochs=4, train_loss=0.5, test_loss=0.7) for s in range(3)])
    assert underfits(high, none, "mlp") and not underfits(near_floor, none, "mlp")
    assert not underfits(better, none, "mlp")


def test_never_acted_flags():
    none = to_frame([make_row("mlp", "none", s, epochs=40) for s in range(3)])
    idle = to_frame([make_row("mlp", "early_stopping", s, epochs=40, stopped_early=False) for s in range(3)])
    assert never_acted(idle, none) == ["early stopping never stopped"]
    assert not_testable(idle, none) == "early stopping never stopped"
    some = to_frame([make_row("mlp", "early_stopping", s, epochs=40, stopped_early=s == 0) for s in range(3)])
    assert never_acted(some, none) == []
    flat = to_frame([make_row("mlp", "lr_plateau", s, epochs=40, lr_reductions=0) for s in range(3)])
    assert "LR never lowered" in never_acted(flat, none)
    copy = to_frame([{**make_row("mlp", "none", s, epochs=40), "technique": "dropout"} for s in range(3)])
    assert never_acted(copy, none) == ["rows identical to none"] and not_testable(copy, none)
    combo = to_frame([make_row("mlp", "l2_es", s, epochs=40, stopped_early=False) for s in range(3)])
    assert never_acted(combo, none) and not not_testable(combo, none)  # L2 still acted: flagged, still compared


def test_reader_skips_broken_old_and_foreign_files_and_refuses_newer(tmp_path):
    runs = write_rows(tmp_path / "runs", [make_row("mlp", "none", 0, epochs=3)])
    (runs / "cut.json").write_text('{"schema_version": %d, "tas' % SCHEMA_VERSION)
    (runs / "other.json").write_text(json.dumps({"some": "tool"}))
    (runs / "old.json").write_text(json.dumps({"schema_version": 1}))
    with pytest.warns(UserWarning) as caught:
        rows = read_rows(runs)
    assert len(rows) == 1
    named = " ".join(str(w.message) for w in caught)
    assert all(f"{name}:" in named for name in ("cut.json", "other.json", "old.json"))
    (runs / "new.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(SchemaError, match=f"schema version {SCHEMA_VERSION + 1}"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_rows(runs)


def test_curves_are_long_form_with_val_every_epoch_and_train_at_curve_epochs():
    df = to_frame([make_row("cifar", "none", 0, epochs=5)])  # curve_every 2 -> epochs 2, 4 and the last
    c = curves_frame(df)
    assert list(c.columns) == ["key", "task", "technique", "grid", "value", "depth", "n_train", "seed", "epoch",
                               "split", "loss", "acc"]
    assert sorted(c[c.split == "val"].epoch) == [1, 2, 3, 4, 5]
    assert sorted(c[c.split == "train"].epoch) == [2, 4, 5] == sorted(c[c.split == "test"].epoch)
    assert c[c.split == "train"].acc.notna().all()


def test_singles_and_combinations_come_from_the_config_pieces():
    names = ("all", "l2_es", "dropout_bn", "adamw", "l2", "none", "lr_plateau")
    rows = [make_row("mlp", t, 0, epochs=3) for t in names]
    rows.append({**make_row("mlp", "l2_es", 1, epochs=3), "technique": "renamed_pair"})  # the name says nothing
    rows.append(new_technique_row("mlp", "stochastic_depth", 0, {"stochastic_depth": {"p": 0.1}}, epochs=3))
    df = to_frame(rows)
    assert singles(df) == ["l2", "adamw", "lr_plateau", "stochastic_depth"]  # config order; unknown pieces last
    assert combinations(df) == ["l2_es", "renamed_pair", "dropout_bn", "all"]  # by number of pieces, then pieces
    assert order_techniques(df)[0] == "none"
    assert set(df[df.technique == "none"].n_pieces) == {0}


def test_the_swept_value_is_the_setting_the_rows_vary():
    rows = [make_row("mlp", "l2", s, epochs=3) for s in range(2)]
    rows += [make_row("mlp", "l2", s, grid="l2", value=1e-2, epochs=3) for s in range(2)]
    rows += [make_row("mlp", "dropout", s, epochs=3) for s in range(2)]  # never varied: no value
    df = to_frame(rows)
    assert set(df[df.technique == "l2"].swept_field) == {"l2.weight_decay"}
    assert sorted(df[df.technique == "l2"].value.unique()) == [1e-4, 1e-2]
    assert df[df.technique == "dropout"].value.isna().all()
    assert sweep_grids(df) == {"l2": ["l2"]}


def test_tasks_come_from_the_rows_with_their_metric():
    df = to_frame([make_row("cifar", "none", 0, epochs=3), make_row("mlp", "none", 0, epochs=3)])
    assert tasks_of(df)[:2] == ["mlp", "cifar"]  # regression before classification
    assert metric("cifar").higher and metric("cifar").test == "test_acc"
    assert not metric("mlp").higher and metric("mlp").test == "test_loss"
    assert list(df.test_metric) == [df.test_acc[0], df.test_loss[1]]
