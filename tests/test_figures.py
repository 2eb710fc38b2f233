"""Figures: fixed colours, the Pareto front, and rendering with one seed and a missing task."""
import matplotlib.pyplot as plt
from PIL import Image

from bench.analysis import curves_frame, to_frame
from bench.claims import tables_vs_none
from bench.figures import COLOURS, pareto_front, plot_curves, plot_delta_heatmap, plot_sweep, save_figures
from tests.rows_v2 import TECHNIQUES, result_set


def test_one_fixed_colour_per_technique():
    assert set(TECHNIQUES) <= set(COLOURS)
    assert len(set(COLOURS.values())) == len(COLOURS)


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
    assert train.get_lines()[0].get_color() == COLOURS["none"]
    plt.close("all")
