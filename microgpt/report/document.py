"""The report as a whole: its sections in order, the report.md they make, and the raw inputs kept beside it."""

from __future__ import annotations

import json
import os

from .gflops import gflops_section
from .kernels import kernels_section
from .losses import losses_section
from .quality import quality_section
from .results import ReportInputs, read_inputs, slim
from .scaling import scaling_section
from .step_timings import asv_section, pyperf_section
from .sweep import compile_section, headline_section, load_sentence, matmul_peak_section, threads_section


def heading_section(inputs: ReportInputs) -> list[str]:
    """The title, the machine the numbers came from, what each figure is, and how loaded the machine was."""
    src_meta = inputs.source_meta
    git = src_meta.get("git", {})
    commit = (git.get("commit") or "unknown")[:12] + ("+dirty" if git.get("dirty") else "")
    v = src_meta.get("versions", {})
    blas = src_meta.get("blas") or {}
    lines = [
        f"# microgpt benchmark report — {src_meta.get('date', '?')[:10]}, commit {commit}",
        "",
        f"Machine: {src_meta.get('cpu')}, {src_meta.get('usable_cores')} usable cores "
        f"({src_meta.get('platform')}); Python {src_meta.get('python')}, numpy {v.get('numpy')}, "
        f"numba {v.get('numba')}, scipy {v.get('scipy')}; BLAS {blas.get('name')} {blas.get('version', '')}.",
        "",
        "How to read this and how to reproduce it: `docs/benchmarking.md`. Everything is timed after "
        "compilation (compile time is its own column). What each figure is: steps/s = 1 / the median step "
        "time (steps timed in chunks, the same way for every tool); tokens/s and model GFLOP/s = the timed "
        "steps' positions and FLOPs over their total time (a mean rate, not a median); kernels: "
        "pytest-benchmark medians; pyperf: mean ± std; matmul peak: the fastest of 9.",
        "",
    ]
    return lines + load_sentence(inputs.sweep_runs, src_meta.get("usable_cores"))


def reproduce_section(inputs: ReportInputs) -> list[str]:
    return ["## Reproduce", "", "```bash", *inputs.reproduce, "```", "",
            "Raw inputs of this report are in `data/`.", ""]


# the report's sections, top to bottom; a section without its input returns no lines
SECTIONS = (heading_section, headline_section, matmul_peak_section, compile_section, threads_section, kernels_section,
            gflops_section, losses_section, pyperf_section, asv_section, scaling_section, quality_section,
            reproduce_section)


def write_report(args, out_dir: str, files: dict, meta: dict) -> str:
    """reports/<...>/report.md from `files` ({path: its JSON}, every input file read once) and `meta` (this run)."""
    os.makedirs(out_dir, exist_ok=True)
    data_dir = os.path.join(out_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    inputs = read_inputs(args, out_dir, files, meta)
    with open(os.path.join(data_dir, "peaks.json"), "w", encoding="utf-8") as f:
        json.dump({"peaks_gflops": inputs.peaks, "metadata": meta}, f, indent=1)
    for src, data in files.items():
        if os.path.abspath(os.path.dirname(src)) != os.path.abspath(data_dir):
            with open(os.path.join(data_dir, os.path.basename(src)), "w", encoding="utf-8") as f:
                json.dump(slim(data), f, indent=None, separators=(",", ":"))

    lines = [line for section in SECTIONS for line in section(inputs)]
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path
