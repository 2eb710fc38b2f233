"""bench/effects.py: the factorial's OLS effects with CIs and Holm p, its design checks, CSV and report section."""
from itertools import product

import numpy as np
import pandas as pd
import pytest

from bench.analysis import to_frame
from bench.effects import (COLUMNS, FACTORS, PAIRS, TERMS, DesignError, all_effects, cell_name, interactions_section,
                           task_effects, write_effects_csv)
from bench.stats import holm
from hydra_plugins.regbench_sweeper import factorial_cells, factorial_levels
from tests.fake_rows import new_technique_row

LEVELS = {"l2": {"weight_decay": 0.1, "decoupled": False}, "dropout": {"p": 0.25, "p_conv": 0.2},
          "batchnorm": {"momentum": 0.1}, "augment": {"strength": 1.0, "input_noise": 0.1, "crop_pad": 4, "flip": True,
                                                      "rotate_deg": 10.0, "jitter": 0.2},
          "early_stopping": {"patience_frac": 0.05, "min_delta": 1e-3}}
# known effects (2 x coefficient) on the MLP's test MSE: l2 and augment lower it, dropout raises it, and dropout with
# batch norm raises it more than the two apart (a conflict); no other term
MAIN = {"l2": -0.2, "dropout": 0.1, "batchnorm": 0.0, "augment": -0.05, "early_stopping": 0.0}
CONFLICT = 0.15


def design_rows(task="mlp", seeds=3, half=False, skip=(), noise=0.01, grid="factorial", **kw):
    """Rows of a factorial with the known effects above (CIFAR: on accuracy, sign flipped), seeds paired."""
    rng = np.random.default_rng(0)
    luck = rng.normal(0, 0.05, seeds)  # each seed's offset, shared by every cell
    rows = []
    for levels in product((-1, 1), repeat=len(FACTORS)):
        if (half and np.prod(levels) != 1) or cell_name(levels) in skip:
            continue
        x = dict(zip(FACTORS, levels))
        mean = sum(MAIN[f] / 2 * x[f] for f in FACTORS) + CONFLICT / 2 * x["dropout"] * x["batchnorm"]
        pieces = {f: dict(LEVELS[f]) for f in FACTORS if x[f] > 0}
        for s in range(seeds):
            y = mean + luck[s] + noise * rng.normal()
            metrics = (dict(test_loss=1.0 + y, gap=0.5 + y / 2) if task == "mlp" else
                       dict(test_acc=0.6 - y / 10, acc_gap=0.3 + y / 10))
            rows.append(new_technique_row(task, cell_name(levels), s, pieces, like="none", grid=grid, **metrics, **kw))
    return rows


def effects_of(rows, response):
    e = task_effects(to_frame(rows), rows[0]["task"])
    return e[e.response == response].set_index("term")


def test_the_full_factorial_recovers_known_main_effects_and_the_interaction():
    e = effects_of(design_rows(), "test_loss")
    truth = {**MAIN, **dict.fromkeys(PAIRS, 0.0), "dropout:batchnorm": CONFLICT}
    assert list(e.index) == list(TERMS)
    for term, value in truth.items():
        assert e.estimate[term] == pytest.approx(value, abs=0.01), term
        assert e.ci_high[term] - e.ci_low[term] < 0.02, term  # noise sd 0.01, 96 rows: tight
    assert sum(e.ci_low[t] <= v <= e.ci_high[t] for t, v in truth.items()) >= 13  # ~95% coverage of 15
    for term in ("l2", "dropout", "augment", "dropout:batchnorm"):
        assert e.ci_low[term] <= truth[term] <= e.ci_high[term], term
    assert e.verdict["l2"] == "helps" and e.verdict["dropout"] == "hurts"  # lower MSE is better
    assert e.verdict["dropout:batchnorm"] == "hurts"
    assert e.verdict["batchnorm"] == "no practical difference"
    assert (e.n_cells == 32).all() and (e.n_seeds == 3).all()


def test_holm_is_applied_over_the_15_terms_of_a_response():
    e = effects_of(design_rows(noise=0.2), "test_loss")
    assert np.allclose(e.p_holm, holm(e.p)) and (e.p_holm >= e.p).all()
    assert (e.p_holm > e.p).any()


def test_the_gap_is_a_second_response_where_smaller_helps():
    e = effects_of(design_rows(), "gap")
    assert e.estimate["l2"] == pytest.approx(MAIN["l2"] / 2, abs=0.01)
    assert e.verdict["l2"] == "helps"


def test_a_half_fraction_recovers_main_effects_and_two_factor_interactions_on_accuracy():
    e = effects_of(design_rows("cifar", half=True, grid="factorial_cifar"), "test_acc")
    assert (e.n_cells == 16).all()
    for term, value in {**MAIN, **dict.fromkeys(PAIRS, 0.0), "dropout:batchnorm": CONFLICT}.items():
        assert e.estimate[term] == pytest.approx(-value / 10, abs=0.001), term  # accuracy = 0.6 - y / 10
    assert e.ci_high["dropout:batchnorm"] < 0 and e.verdict["dropout:batchnorm"] == "hurts"
    assert e.verdict["l2"] == "helps"  # +2 points of accuracy


def test_a_missing_cell_is_a_clear_error_not_a_fit():
    with pytest.raises(DesignError, match=r"incomplete: 31 of 32 cells .* missing l2\+dropout"):
        task_effects(to_frame(design_rows(skip=("l2+dropout",))), "mlp")
    with pytest.raises(DesignError, match=r"15 of 16 cells .* missing l2\+dropout\+batchnorm"):
        task_effects(to_frame(design_rows("cifar", half=True, skip=("l2+dropout+batchnorm",))), "cifar")


def test_a_half_fraction_with_one_seed_cannot_be_fitted():
    with pytest.raises(DesignError, match="do not identify"):
        task_effects(to_frame(design_rows("cifar", seeds=1, half=True)), "cifar")


def test_the_csv_has_the_issues_columns(tmp_path):
    path = write_effects_csv(to_frame(design_rows()), tmp_path)
    table = pd.read_csv(path)
    assert list(table.columns) == COLUMNS and path.name == "effects.csv"
    assert len(table) == 30 and set(table.response) == {"test_loss", "gap"}
    assert "dropout:batchnorm" in set(table.term)


def test_the_section_renders_with_rows_and_says_so_without(tmp_path):
    df = to_frame(design_rows())
    lines = interactions_section(df, tmp_path, "", {"batchnorm": "#ff0000"})
    text = "\n".join(lines)
    assert text.startswith("## Interactions (factorial design)")
    assert "weight_decay=0.1" in text and "full 2^5; 32 cells × 3 seeds" in text
    assert "**dropout and batch norm conflict**: **supported**" in text
    assert "sub-additive (hurts): `dropout:batchnorm`" in text
    assert "![interactions_mlp.png](interactions_mlp.png)" in text
    assert (tmp_path / "interactions_mlp.png").stat().st_size > 5000
    assert "`cifar`: no factorial rows" in text
    empty = interactions_section(df[df.grid != "factorial"], tmp_path, "_x", {})
    assert all("no factorial rows" in ln for ln in empty if ln.startswith("- `"))
    assert pd.read_csv(tmp_path / "effects_x.csv").empty


def test_an_incomplete_design_is_named_in_the_section_and_nothing_breaks(tmp_path):
    text = "\n".join(interactions_section(to_frame(design_rows(skip=("none",))), tmp_path))
    assert "`mlp`: no effects: task mlp: the factorial design is incomplete" in text
    assert all_effects(to_frame(design_rows(skip=("none",))))[0].empty


def test_the_half_fraction_generator_gives_16_cells_with_I_equal_to_the_product_of_all_factors():
    combos = factorial_levels(list(FACTORS), "half")
    codes = np.array([[1 if on else -1 for on in c] for c in combos])
    assert len(combos) == 16 and (codes.prod(axis=1) == 1).all()
    columns = [codes[:, i] * codes[:, j] for i, j in ((i, j) for i in range(5) for j in range(i + 1, 5))]
    model = np.column_stack([np.ones(16), codes, *columns])  # intercept, 5 mains, 10 two-factor interactions
    assert np.linalg.matrix_rank(model) == 16  # every main effect and 2fi estimable
    assert len(factorial_levels(list(FACTORS), "full")) == 32


def test_factorial_cells_switch_on_their_pieces_and_are_named_after_them():
    spec = {"fraction": "full", "factors": {"dropout": {"p": 0.25}, "l2": {"weight_decay": 0.1}}}
    assert factorial_cells(spec) == [
        ["technique=none"],
        ["technique=[dropout]", "technique.name=dropout", "technique.dropout.p=0.25"],
        ["technique=[l2]", "technique.name=l2", "technique.l2.weight_decay=0.1"],
        ["technique=[l2,dropout]", "technique.name=l2+dropout", "technique.l2.weight_decay=0.1",
         "technique.dropout.p=0.25"]]


def without_rows_and_interactions(text: str) -> str:
    """REPORT.md less where the rows come from (row counts, grids), the Interactions section and the two claims
    judged from it."""
    lines = [ln for ln in text.split("## Interactions (factorial design)")[0].splitlines() if "(factorial: " not in ln]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Built by"))
    end = next(i for i, ln in enumerate(lines) if ln in ("## What is missing or was flagged", "## How to read this"))
    return "\n".join(lines[:start] + lines[end:])


def test_factorial_rows_change_nothing_else_in_the_report(tmp_path):
    from bench.report import build_report
    from tests.fake_rows import small_rows, write_rows

    rows = small_rows()
    fx = design_rows(seeds=4, epochs=20) + design_rows("cifar", half=True, grid="factorial_cifar", epochs=6)
    plain = build_report(write_rows(tmp_path / "a" / "runs", rows), tmp_path / "a" / "out").read_text()
    both = build_report(write_rows(tmp_path / "b" / "runs", rows + fx), tmp_path / "b" / "out").read_text()
    assert "### `mlp`" in both.split("## Interactions")[1] and "### `cifar`" in both.split("## Interactions")[1]
    assert without_rows_and_interactions(plain) == without_rows_and_interactions(both)


def test_each_level_is_checked_against_the_reports_choice_on_validation():
    from bench.effects import levels_line
    from tests.fake_rows import small_rows

    line = levels_line(to_frame(small_rows() + design_rows(seeds=4, epochs=20)), "mlp")
    assert "`l2` weight_decay=0.1 (differs from this report's choice on validation, 0.001)" in line
    assert "`augment` strength=1 (this report's choice on validation, = the article default)" in line
    assert "`batchnorm` momentum=0.1 (no sweep: the article default)" in line
    assert "no article-grid rows here" in levels_line(to_frame(design_rows()), "mlp")


def test_the_interaction_claims_are_judged_per_task_and_combined():
    from bench.effects import all_effects, factorial_claims

    df = to_frame(design_rows(seeds=4, epochs=20))
    stack, conflict = factorial_claims(all_effects(df)[0], ["mlp", "cifar"])
    effects = all_effects(df)[0].set_index(["response", "term"])
    db = effects.loc[("test_loss", "dropout:batchnorm")]
    assert conflict.verdict == ("supported" if db.verdict == "hurts" else "not supported")
    assert "mlp dropout:batchnorm" in conflict.short and "n=4 seeds" in conflict.short
    assert "cifar" not in conflict.short  # a task without factorial rows is no part
    empty = factorial_claims(pd.DataFrame(columns=COLUMNS), ["mlp"])  # what all_effects gives without rows
    assert all(v.verdict.startswith("not tested in this preset") for v in empty)
