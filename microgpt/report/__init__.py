"""The benchmark report: what the benchmark tools wrote, as reports/<date>-<commit>/report.md with its plots.

`python -m microgpt.report` runs command_line.py; scripts/make_report.py runs every tool first.
The package is laid out by idea:

    command_line.py  the flags, the report's folder and --latest
    document.py      the sections in order (SECTIONS), report.md and the raw inputs in its data/
    results.py       reading each tool's result files into rows; ReportInputs, what every section reads
    formatting.py    how a number, a duration and a Markdown table are written
    plots.py         the plots' file names and what every plot shares
    sweep.py         Headline, Matmul peak, Compile, Threads (scripts/thread_sweep.py)
    kernels.py       Kernels (pytest-benchmark)
    gflops.py        GFLOP/s and MFU (the kernels and the sweep against the matmul peak)
    losses.py        Loss curves
    step_timings.py  pyperf and asv
    scaling.py       Scaling (scripts/scale_sweep.py)
    quality.py       Quality per second (scripts/pareto.py)

To add a section, write one function `def x_section(inputs: ReportInputs) -> list[str]` in the
module of the results it reads (for a new tool: a new module, with its reader in results.py and
its flag in command_line.py). It returns the section's Markdown lines, none when its input was
not given, and draws any plot into `inputs.out_dir` under a file name added to plots.PLOTS.
Then put the function in document.SECTIONS where the section should appear.
"""
