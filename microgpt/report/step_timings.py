"""The pyperf and asv sections: one training step as the two other timing tools measured it."""

from __future__ import annotations

import os

from ..bench import STEP_CHUNK
from .formatting import fmt, fmt_time, table
from .results import ReportInputs, load_json

ASV_COLUMNS = {  # training benchmark -> (column, how to print a value)
    "training.TrainStep.time_chunk": (f"time per step (chunks of {STEP_CHUNK})",
                                      lambda v: fmt_time(v / STEP_CHUNK)),
    "training.TrainStep.time_step": ("time_step (older suites: 1 step per call)", fmt_time),
    "training.Throughput.track_tokens_per_s": ("tokens/s", fmt),
    "training.Throughput.track_mfu": ("MFU", lambda v: f"{v:.2f} %"),
    "training.PeakMem.peakmem_train_short": ("peak memory", lambda v: f"{v / 2 ** 20:.0f} MiB"),
}


def asv_table(rows: list[dict]) -> list[str]:
    """One line per backend x dtype x scenario that ran, one column per training benchmark."""
    names = [n for n in ASV_COLUMNS if any(r["name"] == n for r in rows)]
    cells: dict = {}
    for r in rows:
        if r["name"] in ASV_COLUMNS and r["value"] is not None:
            cells.setdefault(" ".join(r["params"]), {})[r["name"]] = ASV_COLUMNS[r["name"]][1](r["value"])
    body = [[key] + [got.get(n, "") for n in names] for key, got in cells.items()]
    return table(["backend dtype scenario"] + [ASV_COLUMNS[n][0] for n in names], body)


def pyperf_section(inputs: ReportInputs) -> list[str]:
    pyperf = inputs.pyperf
    if not pyperf:
        return []
    lines = ["## pyperf", "", "One training step, pyperf worker processes (mean ± std over all values):", ""]
    lines += table(["file", "benchmark", "mean", "std", "values"],
                   [[r["file"], r["name"], fmt_time(r["mean_s"]), fmt_time(r["std_s"]), r["values"]]
                    for r in pyperf], "llrrr")
    lines.append("")
    return lines


def asv_section(inputs: ReportInputs) -> list[str]:
    if not inputs.asv:
        return []
    asv_file = inputs.asv_file
    info = load_json(asv_file)
    lines = ["## asv", "", f"From `{os.path.basename(asv_file)}`, the most recently run file with training results in `{inputs.asv_dir}`: commit "
             f"{str(info.get('commit_hash'))[:8]}, environment {info.get('env_name')} (it may predate this "
             "report's commit). MFU against the higher of this machine's two float64 or float32 matmul probes "
             "as asv measured them; combinations skipped in setup are left out:", ""]
    lines += asv_table(inputs.asv)
    lines.append("")
    return lines
