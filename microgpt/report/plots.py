"""What every plot of the report shares: its file name, matplotlib without a display, log axes, small PNGs.

Each section draws its own plots beside its tables (sweep.py, kernels.py, ...); the file
names of all of them are here, so the report's folder is listed in one place.
"""

from __future__ import annotations

PLOTS = {  # a plot's name -> its file in the report's folder
    "steps": "steps_per_s.png",
    "tokens": "tokens_per_s.png",
    "kernels": "kernels.png",
    "gflops": "gflops.png",
    "losses": "loss_curves.png",
    "scaling_cost": "scaling_cost.png",
    "scaling_mfu": "scaling_mfu.png",
    "roofline": "roofline.png",
    "quality": "quality_per_second.png",
}


def save_png(fig, path: str) -> None:
    """Write a figure as a 256-colour PNG: a quarter of the size of matplotlib's RGBA one, and committed reports
    stay small. Falls back to the plain PNG without Pillow."""
    import io

    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    try:
        from PIL import Image
    except ImportError:
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        return
    Image.open(buf).convert("RGB").quantize(colors=256).save(path, optimize=True)


def pyplot():
    """matplotlib.pyplot on the Agg backend: the report draws into files, never onto a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def log_axis(ax, which: str = "x") -> None:
    """Log scale with plain numbers (0.5, 20, 3000) at the decades, nothing at the minor ticks."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())

