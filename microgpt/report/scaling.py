"""The Scaling section: who is fastest where in a scale sweep (scripts/scale_sweep.py), against peers and roofs.

Pure functions of the sweep's JSON document, so the report, the tests and a notebook read it the
same way. Figures are tokens/s medians of a point's windows; "margin" is the fastest's tokens/s
over the runner-up's. The roofline's arithmetic intensity is the step's model FLOPs over its
minimum memory traffic: every weight read twice (forward, backward), its gradient written once,
and Adam reading weight, gradient and both moments and writing weight and moments back — 10
touches of each parameter per optimizer step. Activations are left out, so this is an upper
bound on the intensity (a point sits further left in reality).
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass

from ..scale_points import CACHE_LOAD_S, groups, ok_points, started_warm, tokens_per_step
from .formatting import table
from .plots import PLOTS, pyplot
from .results import ReportInputs

PEERS = ("torch", "torch_compile")
PARAM_TOUCHES_PER_STEP = 10
DTYPE_BYTES = {"float32": 4, "float64": 8}


@dataclass(frozen=True)
class Winner:
    """The fastest backend at one point of the sweep, and by how much it leads the next."""
    label: str
    size: str
    dtype: str
    threads: int
    fastest: str
    tokens_per_s: float
    runner_up: str | None
    margin: float | None  # fastest / runner-up


def size_of(point: dict) -> str:
    return f"{point['n_embd']}/{point['n_head']}/{point['n_layer']}/{point['block_size']} b{point['batch_size']}"


def crossovers(doc: dict) -> list[Winner]:
    """The fastest backend at every point (peers included) and its margin over the next."""
    rows = []
    for (label, dtype, threads), by_backend in groups(doc).items():
        ranked = sorted(by_backend.items(), key=lambda kv: -kv[1]["tokens_per_s"])
        (best, r), rest = ranked[0], ranked[1:]
        margin = r["tokens_per_s"] / rest[0][1]["tokens_per_s"] if rest else None
        rows.append(Winner(label, size_of(r["point"]), dtype, threads, best, r["tokens_per_s"],
                           rest[0][0] if rest else None, margin))
    return sorted(rows, key=lambda w: (w.dtype, w.threads, w.label))


def peers(doc: dict) -> list[dict]:
    """At each point: the project's fastest backend, and its speed over torch eager and torch compile."""
    rows = []
    for (label, dtype, threads), by_backend in sorted(groups(doc).items()):
        ours = {b: r for b, r in by_backend.items() if b not in PEERS}
        if not ours:
            continue
        best, r = max(ours.items(), key=lambda kv: kv[1]["tokens_per_s"])
        row = {"label": label, "size": size_of(r["point"]), "dtype": dtype, "threads": threads, "ours": best,
               "tokens_per_s": r["tokens_per_s"]}
        for peer in PEERS:
            theirs = by_backend.get(peer)
            row[f"over_{peer}"] = r["tokens_per_s"] / theirs["tokens_per_s"] if theirs else None
        rows.append(row)
    return rows


def peak_gflops(doc: dict, dtype: str, threads: int) -> float | None:
    """The matmul roof of the sweep's own run for this dtype and thread count ("all" beyond 1)."""
    probe = doc.get("roofs", {}).get("matmul_gflops", {}).get(dtype, {})
    return probe.get("1" if threads == 1 else "all")


def mfu(doc: dict, result: dict) -> float | None:
    p = result["point"]
    peak = peak_gflops(doc, p["dtype"], p["threads"])
    return result["model_gflops_per_s"] / peak if peak else None


def intensity(result: dict) -> float:
    """Model FLOPs per byte of minimum traffic of one optimizer step (see the module's docstring)."""
    p = result["point"]
    flops = result["flops_per_token"] * tokens_per_step(result)
    traffic = PARAM_TOUCHES_PER_STEP * result["num_params"] * DTYPE_BYTES[p["dtype"]]
    return flops / traffic


def axis_series(doc: dict, axis: str, dtype: str, threads: int) -> dict:
    """backend -> [(axis value, result)] along one axis of the sweep (the centre included), sorted."""
    out: dict = {}
    for r in ok_points(doc):
        p = r["point"]
        if p["dtype"] != dtype or p["threads"] != threads:
            continue
        if p["label"] == "centre" or p["label"].startswith(f"{axis}="):
            out.setdefault(p["backend"], []).append((p[axis], r))
    for backend in out:
        out[backend].sort(key=lambda vr: vr[0])
    return out


def auto_regrets(doc: dict) -> list[dict]:
    """At each point: what `--backend auto` picks from a table of this sweep, and its regret, both with the
    point in the table (what the shipped table does here) and with it left out (a size nobody measured)."""
    from ..auto_choice import regrets, table_from_sweep

    rows = table_from_sweep(doc)
    choosable = sorted({r.backend for r in rows})
    inside = regrets(doc, rows, choosable)
    outside = {(r["label"], r["dtype"], r["threads"]): r for r in regrets(doc, rows, choosable, leave_one_out=True)}
    return [{**r, "auto_left_out": outside[(r["label"], r["dtype"], r["threads"])]["auto"],
             "regret_left_out": outside[(r["label"], r["dtype"], r["threads"])]["regret"]} for r in inside]


@dataclass(frozen=True)
class Startup:
    """What a backend costs before its first step, and its memory, over the sweep's points."""
    backend: str
    dtype: str
    cold_compile_s: float | None  # an empty Numba cache, once per backend and dtype
    warm_start_s: list[float]  # process start to the first step done, at the points whose compile was a cache load
    point_compile_s: list[float]  # compile() at each point, the cache as the sweep left it
    peak_rss_bytes: int
    peak_rss_label: str


def startups(doc: dict) -> list[Startup]:
    out = []
    by_key: dict = {}
    for r in ok_points(doc):
        p = r["point"]
        by_key.setdefault((p["backend"], p["dtype"]), []).append(r)
    for (backend, dtype), results in sorted(by_key.items()):
        biggest = max(results, key=lambda r: r.get("peak_rss_bytes", 0))
        # a point that compiled (the first of its kind after the cold run, which used a throw-away cache) did not
        # start warm: only points whose compile() was a cache load count
        out.append(Startup(backend, dtype, doc.get("cold_compile_s", {}).get(f"{backend}|{dtype}"),
                           sorted(r["warm_start_s"] for r in results if started_warm(r)),
                           sorted(r.get("compile_s", 0.0) for r in results),
                           biggest.get("peak_rss_bytes", 0), f"{biggest['point']['label']} "
                           f"t{biggest['point']['threads']}"))
    return out


# -- plots ---------------------------------------------------------------------------------


def _axes(plt, title, xlabel, ylabel):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def _save(plt, fig, ax, path, xlog: int, ylog: bool, legend: str | None, xticks=None) -> bool:
    ax.set_xscale("log", base=xlog)
    if xticks:  # the measured values themselves, not powers of the base
        ax.set_xticks(xticks, [f"{v:g}" for v in xticks])
        ax.minorticks_off()
    if ylog:
        ax.set_yscale("log")
    ax.legend(title=legend, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_cost(doc: dict, path: str, dtype: str = "float32", threads: int = 1) -> bool:
    """µs per token against model FLOPs per token, along the width axis: one line per backend."""
    plt = pyplot()
    series = axis_series(doc, "n_embd", dtype, threads)
    if not series:
        return False
    fig, ax = _axes(plt, f"Cost per token as the model widens ({dtype}, {threads} thread(s))",
                    "model FLOPs per token (6 x weights + causal attention)", "µs per token (median)")
    lowest: dict = {}  # width -> the fastest point there, where its label goes (once, below every line)
    for backend, pts in sorted(series.items()):
        ax.plot([r["flops_per_token"] for _, r in pts], [r["us_per_token"] for _, r in pts], marker="o",
                label=backend)
        for v, r in pts:
            if v not in lowest or r["us_per_token"] < lowest[v]["us_per_token"]:
                lowest[v] = r
    for v, r in sorted(lowest.items()):
        ax.annotate(f"C={v}", (r["flops_per_token"], r["us_per_token"]), fontsize=7, xytext=(0, -12),
                    textcoords="offset points", ha="center")
    ax.set_yscale("log")
    ax.set_ylim(bottom=min(r["us_per_token"] for r in lowest.values()) / 1.8)  # room for the lowest label
    return _save(plt, fig, ax, path, xlog=10, ylog=True, legend="backend")


def plot_mfu(doc: dict, path: str, dtype: str = "float32", threads: int = 1) -> bool:
    plt = pyplot()
    series = axis_series(doc, "n_embd", dtype, threads)
    if not series or peak_gflops(doc, dtype, threads) is None:
        return False
    peak = peak_gflops(doc, dtype, threads)
    fig, ax = _axes(plt, f"MFU as the model widens ({dtype}, {threads} thread(s))\nagainst the numpy matmul "
                    f"peak measured in the same sweep: {peak:.1f} GFLOP/s", "n_embd (C)", "MFU (%)")
    for backend, pts in sorted(series.items()):
        ax.plot([v for v, _ in pts], [100 * mfu(doc, r) for _, r in pts], marker="o", label=backend)
    widths = sorted({v for pts in series.values() for v, _ in pts})
    return _save(plt, fig, ax, path, xlog=2, ylog=False, legend="backend", xticks=widths)


def plot_roofline(doc: dict, path: str, dtype: str = "float32", threads: int = 1) -> bool:
    """Achieved GFLOP/s against arithmetic intensity, under the measured compute and memory roofs."""
    plt = pyplot()
    roofs = doc.get("roofs", {})
    peak = peak_gflops(doc, dtype, threads)
    bw = roofs.get("triad_gbytes_per_s", {}).get("1" if threads == 1 else "all")
    pts = [r for r in ok_points(doc) if r["point"]["dtype"] == dtype and r["point"]["threads"] == threads]
    if not pts or not peak or not bw:
        return False
    fig, ax = _axes(plt, f"Roofline ({dtype}, {threads} thread(s)): every point of the sweep",
                    "arithmetic intensity (model FLOPs per byte of weight + Adam traffic; an upper bound)",
                    "achieved model GFLOP/s")
    xs = [intensity(r) for r in pts]
    ridge = peak / bw  # where the sloped memory roof meets the flat compute roof: drawn, so both roofs show
    lo, hi = min(min(xs), ridge) / 2, max(xs) * 2
    grid = [lo, ridge, hi]  # on log-log axes both roofs are straight lines
    ax.plot(grid, [min(peak, bw * x) for x in grid], color="black", linewidth=1.2,
            label=f"roofs: {peak:.0f} GFLOP/s matmul, {bw:.1f} GB/s triad")
    for backend in sorted({r["point"]["backend"] for r in pts}):
        mine = [r for r in pts if r["point"]["backend"] == backend]
        ax.scatter([intensity(r) for r in mine], [r["model_gflops_per_s"] for r in mine], s=18, label=backend)
    return _save(plt, fig, ax, path, xlog=10, ylog=True, legend=None)


# -- the report's section --------------------------------------------------------------------


def _ratio(x: float | None) -> str:
    return f"{x:.2f}x" if x is not None and math.isfinite(x) else "—"


def _at_commit(meta: dict) -> str:
    git = meta.get("git") or {}
    if not git.get("commit"):
        return ""
    return f" at commit {git['commit'][:8]}" + (" (with uncommitted changes)" if git.get("dirty") else "")


def _spread(values: list[float]) -> str:
    """A sorted list of seconds as `median s (min-max)`."""
    if not values:
        return "—"
    return f"{statistics.median(values):.2f} s ({values[0]:.2f}-{values[-1]:.2f})"


def section(doc: dict, plots: dict) -> str:
    """The report's "Scaling" section in Markdown; `plots` maps a plot's name to its file (or None)."""
    meta = doc.get("meta", {})
    roofs = doc.get("roofs", {})
    lines = ["## Scaling", "",
             f"From `scripts/scale_sweep.py`{_at_commit(meta)} on {meta.get('cpu', '?')} "
             f"({meta.get('usable_cores', '?')} cores, started {str(meta.get('date', '?'))[:16]}), "
             f"{len(ok_points(doc))} points finished of {len(doc.get('points', {}))} run. tokens/s is the median of "
             "each point's timed windows; the points ran one after another in this one sweep, so their ratios "
             "compare like with like.", ""]
    if roofs:
        mm = roofs.get("matmul_gflops", {})
        tb = roofs.get("triad_gbytes_per_s", {})
        lines += ["Roofs measured at the start of the sweep: matmul "
                  + ", ".join(f"{d} {v.get('1', 0):.1f} (1 thread) / {v.get('all', 0):.1f} (all) GFLOP/s"
                              for d, v in mm.items())
                  + f"; triad {tb.get('1', 0):.2f} / {tb.get('all', 0):.2f} GB/s.", ""]
    for name, caption in (("cost", "µs per token against FLOPs per token"), ("mfu", "MFU against width"),
                          ("roofline", "roofline")):
        if plots.get(name):
            lines += [f"![{caption}]({plots[name]})", ""]
    lines += ["### Fastest backend at each point", "",
              "| point | size | dtype | threads | fastest | tokens/s | runner-up | margin |",
              "| --- | --- | --- | ---: | --- | ---: | --- | ---: |"]
    for w in crossovers(doc):
        lines.append(f"| {w.label} | {w.size} | {w.dtype} | {w.threads} | {w.fastest} | {w.tokens_per_s:,.0f} | "
                     f"{w.runner_up or '—'} | {_ratio(w.margin)} |")
    rows = peers(doc)
    if rows:
        lines += ["", "### Against PyTorch", "",
                  "The project's fastest backend at each point, and its tokens/s over torch eager and torch "
                  "compile at the same point (above 1: ours is faster).", "",
                  "| point | size | dtype | threads | ours | tokens/s | / torch eager | / torch compile |",
                  "| --- | --- | --- | ---: | --- | ---: | ---: | ---: |"]
        for r in rows:
            lines.append(f"| {r['label']} | {r['size']} | {r['dtype']} | {r['threads']} | {r['ours']} | "
                         f"{r['tokens_per_s']:,.0f} | {_ratio(r['over_torch'])} | {_ratio(r['over_torch_compile'])} |")
    picks = auto_regrets(doc)
    if picks:
        worst = max(picks, key=lambda r: r["regret"])
        worst_out = max(picks, key=lambda r: r["regret_left_out"])
        within = sum(r["regret"] <= 1.10 for r in picks)
        lines += ["", "### What `--backend auto` picks", "",
                  "auto's regret is the fastest backend's tokens/s over that of the one auto picks (1.00: the right "
                  "pick), among the backends auto chooses from (torch compile is not one). \"table\": auto with this "
                  "sweep as its table, as `microgpt/auto_table.json` ships it when it comes from this sweep; "
                  "\"left out\": the point's own rows taken out of the table first, as for a size nobody measured. "
                  f"Worst: {worst['regret']:.2f}x with the table ({within}/{len(picks)} points within 1.10x), "
                  f"{worst_out['regret_left_out']:.2f}x left out ({worst_out['label']} {worst_out['dtype']} "
                  f"t{worst_out['threads']}).", ""]
        lines += table(["point", "dtype", "threads", "fastest", "auto (table)", "regret", "auto (left out)", "regret"],
                       [[r["label"], r["dtype"], r["threads"], r["fastest"], r["auto"], _ratio(r["regret"]),
                         r["auto_left_out"], _ratio(r["regret_left_out"])]
                        for r in sorted(picks, key=lambda r: (r["dtype"], r["threads"], r["label"]))], "llrllrlr")
    starts = startups(doc)
    if starts:
        lines += ["", "### Before the first step", "",
                  "Cold compile: the backend's compile() with an empty `NUMBA_CACHE_DIR`, once per backend and "
                  "dtype, at the first point (torch compile: torch.compile's tracing, whose own caches are not "
                  "emptied). Compile at a point: compile() in each point's process, the cache as the sweep left "
                  f"it (median, range). Warm start: process start to the first step done, over the points whose "
                  f"compile() was a cache load (≤ {CACHE_LOAD_S:g} s). Peak memory: the largest maximum resident "
                  "set of a point's process.", ""]
        lines += table(["backend", "dtype", "cold compile", "compile at a point", "warm start", "peak memory (point)"],
                       [[st.backend, st.dtype, f"{st.cold_compile_s:.1f} s" if st.cold_compile_s is not None else "—",
                         _spread(st.point_compile_s), _spread(st.warm_start_s),
                         f"{st.peak_rss_bytes / 2**20:,.0f} MiB ({st.peak_rss_label})"] for st in starts], "llrrrr")
    failed = [r for r in doc.get("points", {}).values() if r.get("status") != "ok"]
    if failed:
        lines += ["", "Points that did not finish (recorded, not dropped): "
                  + "; ".join(f"{r['point']['label']} {r['point']['backend']} {r['point']['dtype']} "
                              f"t{r['point']['threads']}: {r['status']}" for r in failed[:20])
                  + (f"; and {len(failed) - 20} more" if len(failed) > 20 else "")]
    return "\n".join(lines) + "\n"


def scaling_section(inputs: ReportInputs) -> list[str]:
    if not inputs.scaling:
        return []
    doc, out_dir = inputs.scaling, inputs.out_dir
    drawn = {"cost": (plot_cost, PLOTS["scaling_cost"]), "mfu": (plot_mfu, PLOTS["scaling_mfu"]),
             "roofline": (plot_roofline, PLOTS["roofline"])}
    plots = {name: (file if draw(doc, os.path.join(out_dir, file)) else None) for name, (draw, file) in drawn.items()}
    return section(doc, plots).splitlines() + [""]
