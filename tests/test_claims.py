"""Claims: cost words, the comparison with none, and verdicts that need a test either way."""
import math

import numpy as np
import pandas as pd
import pytest

from bench.analysis import to_frame
from bench.claims import (NOT_TESTED, all_claims, claim_bn_depth, claim_combination, claim_cost, claim_early_stopping,
                          claim_l2_es, combine)
from bench.comparisons import band_verdict, tables_vs_none, versus_none
from bench.stats import holm
from tests.fake_rows import make_row, new_technique_row, small_rows


@pytest.fixture(scope="module")
def df():
    return to_frame(small_rows())


@pytest.fixture(scope="module")
def tables(df):
    return tables_vs_none(df)


def test_band_verdict_needs_the_whole_ci_inside_or_outside_the_band():
    assert band_verdict(0.97, 1.05, "Negligible") == "supported"
    assert band_verdict(1.05, 1.15, "Negligible") == "inconclusive (CI spans a band edge)"
    assert band_verdict(1.12, 1.20, "Negligible") == "not supported"
    assert band_verdict(0.80, 1.40, "Low") == "supported"  # at most Low
    assert band_verdict(1.45, 1.60, "Medium-High") == "inconclusive (CI spans a band edge)"
    assert band_verdict(1.01, 1.04, "Medium-High") == "not supported"
    assert band_verdict(math.nan, 1.0, "Low").startswith("inconclusive")


def test_cost_claims_are_judged_from_the_probe():
    costs = pd.DataFrame([
        {"task": "mlp", "technique": "l2", "step_time_ratio": 1.01, "ci_low": 0.98, "ci_high": 1.04, "flop_ratio": 1.0,
         "epoch_time_ratio": 1.0, "uses_validation": False},
        {"task": "mlp", "technique": "early_stopping", "step_time_ratio": 1.0, "ci_low": 0.97, "ci_high": 1.03,
         "flop_ratio": 1.0, "epoch_time_ratio": 1.3, "uses_validation": True},
        {"task": "cifar", "technique": "l2", "step_time_ratio": 1.2, "ci_low": 1.15, "ci_high": 1.25,
         "flop_ratio": 1.0, "epoch_time_ratio": 1.2, "uses_validation": False}])
    v = claim_cost(costs, ["mlp"], ("l2", "early_stopping"), "Negligible")
    assert v.verdict == "supported" and "per epoch with its validation pass 1.3×" in v.evidence
    assert v.short == "mlp/l2 1.01× [0.98, 1.04]; mlp/early_stopping 1× [0.97, 1.03]"
    v = claim_cost(costs, ["mlp", "cifar"], ("l2",), "Negligible")
    assert v.verdict == "not supported (in part)" and "cifar/l2: 1.2× the step time [1.15, 1.25]" in v.evidence
    assert claim_cost(costs, ["mlp"], ("dropout",), "Low").verdict.startswith(NOT_TESTED)


def test_combine_needs_every_part():
    assert combine(["supported", "supported"]) == "supported"
    assert combine(["supported", "not supported (x)"]) == "not supported (in part)"
    assert combine(["supported", "inconclusive (underpowered: ...)"]) == "inconclusive"
    assert combine(["not testable here (x)", "supported"]) == "supported"
    assert combine(["not testable here (x)"]) == "not testable here"
    assert combine(["not tested in this preset (x)", "not testable here (y)"]) == "not testable here"
    assert combine(["not tested in this preset (x)"]) == "not tested in this preset"


def test_versus_none_pairs_seeds_and_holm_adjusts_within_the_table(df, tables):
    t = tables["mlp", "default"]
    assert t.technique.iloc[0] == "none" and t.verdict.iloc[0] == "baseline (fixed epoch budget)"
    art = df[(df.grid == "article") & (df.task == "mlp")]
    by_hand = (art[art.technique == "l2"].set_index("seed").test_loss
               - art[art.technique == "none"].set_index("seed").test_loss).mean()
    assert t.set_index("technique").d["l2"].mean == pytest.approx(by_hand)
    assert np.allclose(t.p_holm.to_numpy(), holm(t.p), equal_nan=True)
    assert t.p_holm.dropna().gt(t.p.dropna()).any()  # the adjustment did something


def test_tuned_table_reports_the_validation_choice(df, tables):
    sweep = df[(df.task == "cifar") & (df.technique == "l2") & df.grid.isin(["article", "l2"])]
    best_on_val = sweep.groupby("value").val_acc.mean().idxmax()
    chosen = tables["cifar", "tuned"].set_index("technique").chosen
    assert chosen["l2"][0] == best_on_val and chosen["l2"][2] == 5  # 4 sweep values + the default
    assert chosen["batchnorm"][3] == "no sweep: default"
    assert chosen["none"][3] == "fixed epoch budget"


def test_fixture_claims(df, tables):
    verdicts = {v.claim: v.verdict for v in all_claims(df, tables)}
    assert len(verdicts) == 11
    assert verdicts["Batch norm is for deep networks: its trainability advantage appears only at depth ≥ 10"] \
        .startswith("supported (advantage at depth [16, 32]")
    l1 = verdicts["L1 gives exact zeros (≥ 10% of weights)"]
    assert l1.startswith("supported") and "l1_prox (mlp) from strength 0.001" in l1 and "l1 (" not in l1
    assert verdicts["Augmentation matters below 10,000 examples per class"] == "supported"
    assert verdicts["Over-regularizing stops learning"] == "supported"


def test_over_regularizing_ignores_a_sweep_that_only_goes_below_the_default():
    from bench.claims import claim_over_regularizing

    rows = [make_row("mlp", "none", s) for s in range(3)] + [make_row("mlp", "l2", s) for s in range(3)]
    below = [make_row("mlp", "l2", s, grid="l2", value=1e-5) for s in range(3)]
    above = [make_row("mlp", "l2", s, grid="l2", value=1.0) for s in range(3)]
    assert "no sweep rows" in claim_over_regularizing(to_frame(rows + below)).verdict
    assert "mlp/l2 at" in claim_over_regularizing(to_frame(rows + above)).evidence


def test_small_noisy_effect_is_underpowered_never_not_supported():
    rows = []
    for seed, (base, tech) in enumerate([(0.50, 0.51), (0.52, 0.50), (0.49, 0.52)]):
        rows += [make_row("cifar", "none", seed, epochs=6, test_acc=base),
                 make_row("cifar", "l2_es", seed, epochs=6, test_acc=tech, stopped_early=True)]
    v = claim_l2_es(to_frame(rows))
    assert v.verdict == "inconclusive"
    assert "underpowered: minimal detectable difference" in v.evidence and "n=3" in v.evidence


def test_regularizer_that_never_acted_gives_no_verdict():
    rows = []
    for seed in range(3):
        rows += [make_row("mlp", "none", seed, epochs=20),
                 make_row("mlp", "early_stopping", seed, epochs=20, stopped_early=False),
                 make_row("mlp", "l2_es", seed, epochs=20, stopped_early=False)]
    df = to_frame(rows)
    assert claim_early_stopping(df).verdict == "not testable here"
    assert claim_l2_es(df).verdict == "not testable here"
    t = versus_none(df, "mlp").set_index("technique")
    assert t.verdict["early_stopping"] == "not testable here (early stopping never stopped)"
    assert math.isnan(t.p_holm["early_stopping"])  # left out of the Holm family


def test_bn_advantage_below_depth_10_is_not_supported():
    rows = []
    for seed in range(4):
        jitter = 0.01 * seed
        for depth, none_loss in ((2, 0.05), (8, 0.6), (16, 1.0), (32, 1.4)):
            rows.append(make_row("mlp", "none", seed, grid="depth", task_overrides={"depth": depth}, epochs=5,
                                 train_loss=none_loss + jitter))
            rows.append(make_row("mlp", "batchnorm", seed, grid="depth", task_overrides={"depth": depth}, epochs=5,
                                 train_loss=0.05 + 2 * jitter))
    assert claim_bn_depth(to_frame(rows)).verdict == "not supported (advantage already at depth [8])"


def test_claims_whose_techniques_are_absent_say_not_tested_in_this_preset():
    rows = []
    for seed in range(3):
        rows += [make_row("cifar", "none", seed, epochs=6),
                 new_technique_row("cifar", "label_smoothing", seed, {"label_smoothing": {"eps": 0.1}}, epochs=6)]
    verdicts = {v.claim: v for v in all_claims(to_frame(rows))}
    assert len(verdicts) == 11
    for claim in ("l2 and early_stopping: negligible cost", "augment: medium-high cost",
                  "L2 + early stopping is a good start (beats no regularization)",
                  "Dropout and batch norm in the same layer conflict (worse than the better one alone)",
                  "Combining techniques beats any single one (article defaults, picked on validation)",
                  "Early stopping saves epochs", "L1 gives exact zeros (≥ 10% of weights)",
                  "Batch norm is for deep networks: its trainability advantage appears only at depth ≥ 10"):
        assert verdicts[claim].verdict.startswith(NOT_TESTED), claim
    assert verdicts["augment: medium-high cost"].evidence == "cifar/augment: not probed"  # no cost.csv given


def test_a_new_single_technique_takes_part_in_the_combination_claim():
    rows = []
    for seed in range(3):
        rows += [make_row("cifar", t, seed, epochs=6) for t in ("none", "l2", "l2_es")]
        rows.append(new_technique_row("cifar", "label_smoothing", seed, {"label_smoothing": {"eps": 0.1}},
                                      epochs=6, val_acc=0.99))
    v = claim_combination(to_frame(rows))
    assert "best combination on val `l2_es` − best single on val `label_smoothing`" in v.evidence
