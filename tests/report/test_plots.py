"""microgpt/report/plots.py: the plots' file names, matplotlib without a display, log axes, small PNGs."""

from __future__ import annotations

import pytest

from microgpt.report.plots import PLOTS, log_axis, pyplot, save_png


def test_every_plot_has_its_own_png_file():
    """Two plots never overwrite each other's file in the report's folder."""
    files = list(PLOTS.values())
    assert len(set(files)) == len(files) and all(f.endswith(".png") and "/" not in f for f in files)


def test_plots_draw_on_agg_and_log_axes_label_decades_with_plain_numbers():
    """pyplot() never opens a display; log_axis writes 0.5, 20, 3000 (not 10^3) and nothing at minor ticks."""
    pytest.importorskip("matplotlib")
    plt = pyplot()
    assert plt.get_backend().lower() == "agg"
    fig, ax = plt.subplots()
    ax.plot([0.5, 3000], [1, 2])
    log_axis(ax)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    formatter = ax.xaxis.get_major_formatter()
    assert [formatter(v, 0) for v in (0.5, 20, 3000)] == ["0.5", "20", "3000"]
    assert ax.xaxis.get_minor_formatter()(2.0, 0) == ""
    log_axis(ax, "y")
    assert ax.get_yscale() == "log"
    plt.close(fig)


def test_save_png_writes_a_palette_png_and_closes_the_figure(tmp_path):
    """With Pillow the PNG has 256 colours (a quarter of RGBA's size); the figure is closed after it."""
    pytest.importorskip("matplotlib")
    image = pytest.importorskip("PIL.Image")
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot(range(10), [x * x for x in range(10)])
    path = tmp_path / "p.png"
    save_png(fig, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.open(path).mode == "P"
    assert not plt.fignum_exists(fig.number)
