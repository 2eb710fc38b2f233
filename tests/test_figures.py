"""Figures: colours from the rows, the Pareto front, rendering with one seed, a missing task or a new technique."""
import matplotlib.pyplot as plt
from matplotlib.colors import to_hex
from PIL import Image

from bench.analysis import curves_frame, to_frame
from bench.comparisons import tables_vs_none
from bench.figures import (pareto_front, plot_curves, plot_delta_heatmap, plot_pareto, plot_sweep, save_figures,
                           technique_colours)
from bench.tables import effect_table, side_by_side
from tests.fake_rows import new_technique_row, result_set, small_rows

NEW = {"label_smoothing": {"label_smoothing": {"eps": 0.1}},  # a piece this checkout's config may know
       "shake_shake": {"shake_shake": {"alpha": 0.5}}}  # a piece no config knows


def test_one_colour_per_technique_found_in_the_rows():
    rows = small_rows()
    colours = technique_colours(to_frame(rows))
    names = {r["technique"] for r in rows}
    assert set(colours) == names and colours["none"] == "#000000"
    assert len(set(colours.values())) == len(colours)  # distinct
    assert technique_colours(to_frame(rows[::-1])) == colours  # the rows' order does not matter
    many = to_frame([new_technique_row("mlp", f"t{i:02d}", 0, {f"t{i:02d}": {}}, epochs=3) for i in range(70)])
    assert len(set(technique_colours(many).values())) == 71  # past the named palettes too (and none)


def _with_new_techniques(seeds=3, epochs=4):
    """The cifar article grid plus two one-piece techniques no code names, in the `extended` grid."""
    rows = result_set(seeds={"cifar": seeds}, tasks=("cifar",), epochs={"cifar": epochs}, grids=("article",))
    for name, pieces in NEW.items():
        rows += [new_technique_row("cifar", name, s, pieces, epochs=epochs, val_acc=0.9) for s in range(seeds)]
    return to_frame(rows)


def test_a_new_technique_appears_in_tables_and_figures(tmp_path):
    df = _with_new_techniques()
    tables = tables_vs_none(df)
    for kind in ("default", "tuned"):
        names = list(tables["cifar", kind].technique)
        assert set(NEW) <= set(names)
        singles_end = names.index("lr_plateau")  # after the known singles, before every combination
        assert all(singles_end < names.index(n) < names.index("l2_es") for n in NEW)
    assert tables["cifar", "tuned"].set_index("technique").chosen["label_smoothing"][3] == "no sweep: default"
    text = effect_table(tables["cifar", "default"], "cifar", False) + side_by_side(tables["cifar", "default"],
                                                                              tables["cifar", "tuned"], "cifar")
    assert all(f"| `{n}` |" in text for n in NEW)
    colours = technique_colours(df)
    pareto = plot_pareto(tables, df, "cifar", colours)
    assert set(NEW) <= {t.get_text() for t in pareto.axes[0].get_legend().get_texts()}
    points = {c.get_label(): to_hex(c.lines[0].get_color()) for c in pareto.axes[0].containers}
    assert all(points[n] == colours[n] for n in NEW)
    curves = plot_curves(curves_frame(df), df, "cifar", colours)
    drawn = {ln.get_label(): to_hex(ln.get_color()) for ln in curves.axes[1].get_lines()}
    assert all(drawn[n] == colours[n] for n in NEW)  # the same colour in every figure
    names = save_figures(df, tables, curves_frame(df), tmp_path, colours=colours)
    assert {"pareto_cifar.png", "curves_cifar.png", "delta_heatmap.png"} <= set(names)
    heat = plot_delta_heatmap(tables)
    assert set(NEW) <= {t.get_text() for t in heat.axes[0].get_yticklabels()}
    plt.close("all")


def test_pareto_front_keeps_only_undominated_points():
    x = [1.0, 2.0, 3.0, 1.5, 4.0]
    y = [0.50, 0.40, 0.45, 0.60, 0.30]  # lower is better: (1.5, 0.6) and (3, 0.45) are dominated
    assert pareto_front(x, y, higher=False) == [0, 1, 4]
    assert pareto_front(x, [-v for v in y], higher=True) == [0, 1, 4]


def test_figures_render_with_one_seed_and_a_missing_task(tmp_path):
    df = to_frame(result_set(seeds={"mlp": 1}, tasks=("mlp",), epochs={"mlp": 10}, grids=("article", "l2", "depth")))
    tables = tables_vs_none(df)
    names = save_figures(df, tables, curves_frame(df), tmp_path)
    assert set(names) == {"pareto_mlp.png", "delta_heatmap.png", "curves_mlp.png", "sweep_l2.png", "depth.png"}
    for name in names:
        with Image.open(tmp_path / name) as img:
            assert img.width > 500 and img.height > 300


def test_figures_with_only_the_baseline(tmp_path):
    df = to_frame(result_set(seeds={"cifar": 2}, tasks=("cifar",), epochs={"cifar": 4}, grids=("article",)))
    df = df[df.technique == "none"]
    names = save_figures(df, tables_vs_none(df), curves_frame(df), tmp_path)
    assert names == ["pareto_cifar.png", "curves_cifar.png"]  # no heatmap: nothing to compare with none


def test_figure_details(tmp_path):
    df = to_frame(result_set(seeds={"mlp": 3}, tasks=("mlp",), epochs={"mlp": 30}, grids=("article", "l2")))
    tables = tables_vs_none(df)
    heat = plot_delta_heatmap(tables)
    assert any("*" in t.get_text() for ax in heat.axes for t in ax.texts)  # Holm significance marks
    sweep = plot_sweep(df, "l2", tables)
    ax = sweep.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "l2: chosen on validation" in [h.get_label() for h in ax.get_legend().legend_handles]
    curves = plot_curves(curves_frame(df), df, "mlp")
    train, val = curves.axes
    assert "training" in train.get_title() and "validation" in val.get_title()
    assert train.get_yscale() == "log"
    assert train.get_lines()[0].get_color() == technique_colours(df)["none"]
    plt.close("all")
