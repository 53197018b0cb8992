"""Time the fused attention kernels under each Numba threading layer and thread count.

    python scripts/attention_threads.py [--json PATH] [--markdown]

Every configuration runs in a fresh subprocess (the threading layer and the
thread count are fixed when Numba starts its pool): layers `omp` and
`workqueue` (and `omp` with OMP_WAIT_POLICY=passive), NUMBA_NUM_THREADS 1 and
2. In each, the parallel kernels (`attention_*_parallel_into`, prange over
heads) and their serial twins are timed per call on one query over a KV cache
of t positions: the names and alice shapes and larger ones, to find where a
parallel launch starts to pay. Figures are medians over calls after a
warm-up; compile time is excluded. The results are in docs/threads.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# (label, t cached positions, C, H)
SHAPES = [("names, t=8", 8, 16, 4), ("alice, t=64", 64, 32, 4), ("alice, t=128", 128, 32, 4),
          ("t=512, C=128, H=8", 512, 128, 8), ("t=2048, C=256, H=8", 2048, 256, 8)]
CONFIGS = [("workqueue", "1", None), ("workqueue", "2", None), ("omp", "1", None), ("omp", "2", None),
           ("omp", "2", "passive")]


def time_calls(fn, args, budget_s=0.4, max_calls=2000) -> float:
    """Median seconds per call: calls timed one by one until the budget or max_calls is spent."""
    fn(*args)
    times = []
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < 5 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def child() -> None:
    import numba
    import numpy as np

    from microgpt.compile_cache import use_source_keyed_cache

    use_source_keyed_cache()  # before the kernel module is imported: Numba fixes its cache folder then
    from microgpt.kernels import attention as A

    rows = []
    for label, t, C, H in SHAPES:
        rng = np.random.default_rng(0)
        q, dout = rng.standard_normal((2, C))
        k, v = rng.standard_normal((2, t, C))
        out, dq = np.empty(C), np.empty(C)
        att = np.empty((H, t))
        dk, dv = np.zeros((t, C)), np.zeros((t, C))
        fwd = (out, att, q, k, v, H)
        bwd = (dq, dk, dv, dout, q, k, v, att, H)
        row = {"shape": label, "t": t, "C": C, "H": H,
               "serial_fwd": time_calls(A.attention_forward_into, fwd),
               "parallel_fwd": time_calls(A.attention_forward_parallel_into, fwd),
               "serial_bwd": time_calls(A.attention_backward_into, bwd),
               "parallel_bwd": time_calls(A.attention_backward_parallel_into, bwd),
               "fused_api_fwd": time_calls(A.attention_forward_fused, (q, k, v, H))}
        rows.append(row)
    print(json.dumps({"layer": numba.threading_layer(), "threads": numba.get_num_threads(), "rows": rows,
                      "load_average_1min": os.getloadavg()[0]}))


def run_config(layer: str, threads: str, wait_policy: str | None) -> dict:
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS=threads,
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], env=env, capture_output=True,
                       text=True, timeout=900)
    if r.returncode:
        return {"layer": layer, "threads": int(threads), "error": r.stderr.strip().splitlines()[-1:]}
    result = json.loads(r.stdout.strip().splitlines()[-1])
    result["wait_policy"] = wait_policy
    return result


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def markdown(results: list[dict]) -> str:
    lines = ["| layer | threads | shape | serial fwd | parallel fwd | serial bwd | parallel bwd | fused API fwd | load |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for res in results:
        name = res["layer"] + (f" ({res['wait_policy']})" if res.get("wait_policy") else "")
        if "error" in res:
            lines.append(f"| {name} | {res['threads']} | failed: {res['error']} | | | | | | |")
            continue
        for row in res["rows"]:
            lines.append(f"| {name} | {res['threads']} | {row['shape']} | {us(row['serial_fwd'])} | "
                         f"{us(row['parallel_fwd'])} | {us(row['serial_bwd'])} | {us(row['parallel_bwd'])} | "
                         f"{us(row['fused_api_fwd'])} | {res['load_average_1min']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """A bad --json path is a MicrogptError: run_main prints it as one line and exits 1."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", metavar="PATH", help="write the raw figures (seconds per call) here")
    args = p.parse_args(argv)
    if args.child:
        child()
        return 0
    from microgpt.output_path import check_file, write_json

    if args.json:
        check_file(args.json, "--json")  # now, not after the runs
    results = []
    for layer, threads, wait in CONFIGS:
        print(f"running {layer} with {threads} thread(s){', OMP_WAIT_POLICY=' + wait if wait else ''} ...",
              file=sys.stderr, flush=True)
        results.append(run_config(layer, threads, wait))
    print("microseconds per call (median):")
    print(markdown(results))
    if args.json:
        from microgpt.machine import run_metadata

        write_json(args.json, {"results": results, "metadata": run_metadata()}, "--json")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    from microgpt.cli import run_main

    sys.exit(run_main(main))  # as every entry point: a MicrogptError is one line, `... | head` ends quietly
