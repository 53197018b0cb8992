"""Training speed of a backend on a scenario's real schedule, without saving anything.

    python scripts/benchmark_train.py --scenario names --backend numpy --steps 1000
    python scripts/benchmark_train.py --scenario alice --backend numpy --steps 200 --json reports/alice_numpy.json
    python scripts/benchmark_train.py --scenario alice --backend numpy --steps 50 --profile
    python scripts/benchmark_train.py --config my.json --backend fused --steps 100
    python scripts/benchmark_train.py --scenario names --n-embd 64 --n-head 4 --n-layer 2 --batch-size 16 --steps 50

A configuration is a built-in --scenario or your own --config file (checked as training checks
it); the model-size flags change single values of it, so a point of a size sweep needs no file.

Runs steps 0..N-1 exactly as training would (same documents, same learning
rates from the scenario's schedule over its full `num_steps`), timing the
steps in train_steps() calls of --chunk steps (default 10, microgpt.bench.STEP_CHUNK,
the chunk every timing tool here uses). The first --warmup steps are run but not counted; compile
time (`backend.compile()`) is measured separately and never counted.

Prints steps/s (from the median step time), tokens/s (positions trained per
second over the timed steps), model GFLOP/s (microgpt.flops's FLOP count), the
estimated time of the scenario's full run, and the p10/p50/p90 step times of
each tenth of the timed steps, so a slow-down during the run is visible.
--json writes the same figures with the machine, library versions, thread
variables and Numba's threading layer. --profile (numpy backend) adds where
the time of a step goes, kernel by kernel.

Thread settings are whatever the environment says: set NUMBA_NUM_THREADS and
the BLAS variables (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS)
before running, e.g. `NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python scripts/...`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from microgpt.bench import STEP_CHUNK, percentile  # noqa: E402
from microgpt.flops import flops_for_docs, flops_per_token  # noqa: E402
from microgpt.machine import compile_kind, numba_cache_stats, run_metadata  # noqa: E402
from microgpt.threads import thread_settings  # noqa: E402
from microgpt.backends.registry import AUTO_RULE, backend_choices  # noqa: E402
from microgpt.cli import (add_scenario_args, add_size_args, config_epilog, config_origin,  # noqa: E402
                          require_positive, run_main, scenario_from_args, size_overrides)
from microgpt.config import DTYPES, sizes_of, with_sizes  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.experiment import prepare  # noqa: E402
from microgpt.output_path import check_file, write_json  # noqa: E402
from microgpt.report.formatting import fmt_time  # noqa: E402
from microgpt.schedule import docs_per_step, step_doc_indices  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/benchmark_train.py", description=__doc__.split("\n\n")[0],
                                epilog=config_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scenario_args(p)  # as training: --scenario or --config, not both
    p.add_argument("--backend", "-b", choices=backend_choices(),
                   help=f"overrides training.backend, as training does (every scenario says auto: {AUTO_RULE})")
    p.add_argument("--steps", "-n", type=int, default=200, help="steps to run, warm-up included (default 200)")
    p.add_argument("--warmup", type=int, help="first steps run but not timed (default 5, or steps - 1 when fewer: "
                   "the seed's README runs --steps 5 and --steps 2)")
    p.add_argument("--dtype", choices=DTYPES, help="overrides training.dtype")
    p.add_argument("--grad-accum", type=int, help="overrides training.grad_accum")
    p.add_argument("--chunk", type=int, default=STEP_CHUNK,
                   help=f"steps per train_steps() call, timed together (default {STEP_CHUNK}, as every tool "
                   "here times a step: microgpt.bench.STEP_CHUNK); a step's time is its chunk's time / chunk")
    p.add_argument("--data", metavar="PATH", help="the data file (default: $MICROGPT_DATA_DIR, data/<scenario>/)")
    p.add_argument("--profile", action="store_true", help="numpy backend: time each kernel of a step")
    p.add_argument("--json", metavar="PATH", help="write the figures and the run's metadata here (with the "
                   "effective config, its origin and the sizes changed by flags)")
    add_size_args(p)
    return p


def tenths(step_times: list[float]) -> list[dict]:
    """p10/p50/p90 of each tenth of the timed steps, in order (fewer parts for short runs)."""
    parts = min(10, len(step_times))
    out = []
    for i in range(parts):
        lo, hi = i * len(step_times) // parts, (i + 1) * len(step_times) // parts
        chunk = sorted(step_times[lo:hi])
        out.append({"steps": [lo, hi], "p10": percentile(chunk, 0.1), "p50": percentile(chunk, 0.5),
                    "p90": percentile(chunk, 0.9)})
    return out


def positions(tokens: list[int], block_size: int) -> int:
    return min(block_size, len(tokens) - 1)


def benchmark(args) -> dict:
    cfg = scenario_from_args(args)
    require_positive(args, ("steps", "chunk", "grad_accum"))
    sized = size_overrides(args, cfg)
    cfg = with_sizes(cfg, sized)
    overrides = {k: v for k, v in {"backend": args.backend, "dtype": args.dtype,
                                   "grad_accum": args.grad_accum}.items() if v is not None}
    cfg = cfg.replace("training", **overrides)
    t = cfg.training
    if args.warmup is None:
        args.warmup = max(0, min(5, args.steps - 1))
    if args.warmup < 0:
        raise MicrogptError(f"--warmup must be >= 0, got {args.warmup}")
    if args.warmup >= args.steps:
        raise MicrogptError(f"--warmup ({args.warmup}) must be less than --steps ({args.steps})")
    if args.steps > t.num_steps:
        raise MicrogptError(f"--steps ({args.steps}) exceeds the run of {config_origin(args)} ({t.num_steps} steps)")

    exp = prepare(cfg, args.data, quiet=True)
    load_before = os.getloadavg()[0]  # other processes on a small machine show up in every figure
    backend = exp.make_backend()
    compile_s = backend.compile()
    cache = numba_cache_stats()  # right after compile(): was compile_s a compile or a load from disk?

    T, V = cfg.model.block_size, exp.tokenizer.vocab_size
    per_step = docs_per_step(t)
    n_docs = len(exp.train_tokens)

    def step_docs(step):
        return [exp.train_tokens[i] for i in step_doc_indices(step, per_step, n_docs)]

    # run: the first `warmup` steps untimed, then chunks of `chunk` steps, each chunk timed
    step_times, losses = [], []
    if args.warmup:
        losses += backend.train_steps(0, args.warmup)
    step = args.warmup
    t_start = time.perf_counter()
    while step < args.steps:
        count = min(args.chunk, args.steps - step)
        t0 = time.perf_counter()
        losses += backend.train_steps(step, count)
        dt = time.perf_counter() - t0
        step_times += [dt / count] * count
        step += count
    wall = time.perf_counter() - t_start

    timed = range(args.warmup, args.steps)
    tokens = sum(positions(d, T) for s in timed for d in step_docs(s))
    flops = sum(flops_for_docs(cfg.model, V, [positions(d, T) for d in step_docs(s)]) for s in timed)
    median = statistics.median(step_times)
    total_time = sum(step_times)
    result = {
        "scenario": cfg.name, "backend": backend.name, "dtype": t.dtype,
        # what was timed, so that a sweep's points describe themselves: where the config came from, the sizes
        # the flags changed, the sizes in effect and the whole effective config
        "config_source": {"file": os.path.abspath(args.config)} if args.config else {"scenario": cfg.name},
        "size_overrides": sized, "sizes": sizes_of(cfg), "config": cfg.to_dict(),
        "batch_size": t.batch_size, "grad_accum": t.grad_accum, "chunk": args.chunk,
        "steps": args.steps, "warmup": args.warmup, "timed_steps": len(step_times),
        "compile_s": compile_s, "compile_kind": compile_kind(cache), "numba_cache": cache,
        "median_step_s": median, "mean_step_s": total_time / len(step_times),
        # the spread of the timed chunks: the report claims a thread effect only beyond it
        "p25_step_s": percentile(step_times, 0.25), "p75_step_s": percentile(step_times, 0.75),
        "steps_per_s": 1.0 / median,
        "tokens_per_s": tokens / total_time,
        "model_gflops_per_s": flops / total_time / 1e9,
        "flops_per_token": flops_per_token(cfg.model, V),
        "full_run_steps": t.num_steps,
        "full_run_estimate_s": median * t.num_steps,
        "wall_s": wall,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "final_loss": losses[-1],
        "tenths": tenths(step_times),
        "step_times_s": step_times,
    }
    if args.profile:
        result["profile"] = profile_numpy(backend, [step_docs(s) for s in timed])
    return result


# -- where the time goes (numpy backend) -------------------------------------------


def profile_numpy(backend, steps_docs: list, sample: int = 10, reps: int = 10) -> dict:
    """Where a numpy-backend step's time goes: each compiled piece's own work, Adam, and the calls.

    position_forward/backward are compositions of pieces (embed, rmsnorm+qkv, attention,
    wo+mlp, lm_head+xent and their backwards). Each piece is run inside compiled code,
    `reps` and `2 reps` times in a row (the difference cancels the cost of the call; the
    fastest of 3 tries resists other processes' noise), at every position of the
    documents of the first `sample` timed steps. The cost of one call into compiled code
    from Python is measured with an empty compiled function taking position_forward's
    arguments. The whole step is timed the same way (fastest of 3) on the same documents,
    and what the pieces do not account for is the Python loop around the calls.
    """
    import numpy as np
    from numba import njit

    from microgpt.backends import numpy_seq as ns
    from microgpt.kernels import attention as attn

    if backend.name != "numpy":
        raise MicrogptError("--profile is only implemented for the numpy backend")

    @njit
    def repeat(fn, reps, args):
        for _ in range(reps):
            fn(*args)

    @njit
    def empty8(a, b, c, d, e, f, g, h):
        pass

    m = backend.cfg.model
    L, H, act = m.n_layer, m.n_head, backend.act
    theta, grad, ofs = backend.theta, np.zeros_like(backend.theta), backend.offsets
    acts = backend._new_activations()
    bufs = acts.bufs
    q, k, v, att, ao = bufs[4:9]
    dk, dv, _, dao, dq = bufs[16:21]
    clock = time.perf_counter_ns
    spent: dict[str, float] = {}

    def fastest(fn, *args, tries=3):
        best = None
        for _ in range(tries):
            t0 = clock()
            fn(*args)
            dt = clock() - t0
            best = dt if best is None else min(best, dt)
        return best

    def piece(name, fn, *args):
        repeat(fn, 1, args)  # compile this specialisation outside the timing
        once, twice = fastest(repeat, fn, reps, args), fastest(repeat, fn, 2 * reps, args)
        spent[name] = spent.get(name, 0.0) + max(0, twice - once) / reps

    calls = 0
    for docs in steps_docs[:sample]:
        for tokens in docs:
            n = positions(tokens, m.block_size)
            calls += 2 * n  # position_forward and position_backward at each position
            for pos in range(n):
                t = pos + 1
                tok, target = tokens[pos], tokens[pos + 1]
                piece("embed+rmsnorm (fwd)", ns.embed_forward, theta, ofs, tok, pos, bufs)
                for l in range(L):
                    piece("rmsnorm+qkv (fwd)", ns.attention_input_forward, theta, ofs, l, pos, bufs)
                    piece("attention (fwd)", attn.attention_forward_into,
                          ao[l, pos], att[l, pos], q[l, pos], k[l, :t], v[l, :t], H)
                    piece("wo+rmsnorm+mlp (fwd)", ns.attention_output_forward, theta, ofs, act, l, pos, bufs)
                piece("lm_head+xent (fwd)", ns.logits_forward, theta, ofs, pos, target, bufs)
            dk[:, :n] = 0.0
            dv[:, :n] = 0.0
            for pos in range(n - 1, -1, -1):
                t = pos + 1
                tok, target = tokens[pos], tokens[pos + 1]
                piece("lm_head+xent (bwd)", ns.logits_backward, theta, grad, ofs, pos, target, 0.1, bufs)
                for l in range(L - 1, -1, -1):
                    piece("mlp+rmsnorm+wo (bwd)", ns.attention_output_backward, theta, grad, ofs, act, l, pos, bufs)
                    piece("attention (bwd)", attn.attention_backward_into,
                          dq, dk[l, :t], dv[l, :t], dao, q[l, pos], k[l, :t], v[l, :t], att[l, pos, :, :t], H)
                    piece("qkv+rmsnorm (bwd)", ns.attention_input_backward, theta, grad, ofs, l, pos, bufs)
                piece("embed+rmsnorm (bwd)", ns.embed_backward, grad, ofs, tok, pos, bufs)
    steps_seen = len(steps_docs[:sample])
    per_step = {name: t_ns / steps_seen / 1e9 for name, t_ns in spent.items()}

    t_cfg = backend.cfg.training
    adam = (theta.copy(), grad, np.zeros_like(theta), np.zeros_like(theta), 0.01, t_cfg.beta1, t_cfg.beta2, t_cfg.eps, 0)
    spent.clear()
    piece("adam", ns.adam_step_fused, *adam)
    per_step["adam"] = spent["adam"] / 1e9

    call_args = (theta, ofs, H, act, 0, 0, 1, bufs)  # position_forward's argument types
    empty8(*call_args)
    one_call_ns = min(fastest(lambda: [empty8(*call_args) for _ in range(100)]) / 100 for _ in range(3))
    per_step["calls into compiled code"] = one_call_ns * calls / steps_seen / 1e9

    def whole_step(docs):
        backend.gradient(docs)
        ns.adam_step_fused(*adam)

    saved = backend.grad.copy()
    step_s = sum(fastest(whole_step, docs) for docs in steps_docs[:sample]) / steps_seen / 1e9
    backend.grad[:] = saved
    accounted = sum(per_step.values())
    return {"seconds_per_step": per_step, "accounted_s": accounted, "step_s": step_s,
            "rest_s": step_s - accounted, "one_call_s": one_call_ns / 1e9, "calls_per_step": calls / steps_seen,
            "sampled_steps": steps_seen, "reps": reps}

# -- output -------------------------------------------------------------------------


def report(r: dict) -> str:
    th = thread_settings()
    env = " ".join(f"{k}={v}" for k, v in th["env"].items() if v is not None) or "no thread variables set"
    size = r["sizes"]
    changed = f", {len(r['size_overrides'])} set by flags" if r["size_overrides"] else ""
    lines = [
        f"{r['scenario']} {size['n_embd']}/{size['n_head']}/{size['n_layer']}/{size['block_size']} (C/H/L/T{changed}) "
        f"/ {r['backend']} ({r['dtype']}, batch {r['batch_size']} x accum {r['grad_accum']}): "
        f"{r['timed_steps']} timed steps after {r['warmup']} warm-up",
        f"threads: {env}; numba threads {th['numba_num_threads']}, layer {th['numba_threading_layer']}; "
        f"load average {r['load_average_1min'][0]:.2f} before, {r['load_average_1min'][1]:.2f} after",
        f"compile (not counted):  {r['compile_s']:.2f} s ({r['compile_kind']})",
        f"steps/s (median):       {r['steps_per_s']:,.1f}   ({fmt_time(r['median_step_s'])} per step, "
        f"mean {fmt_time(r['mean_step_s'])})",
        f"tokens/s:               {r['tokens_per_s']:,.0f}",
        f"model GFLOP/s:          {r['model_gflops_per_s']:.3f}   (flops_for_docs: 6 x matmul weights per "
        "position + the causal half of the attention square)",
        f"full run estimate:      {fmt_time(r['full_run_estimate_s'])} for {r['full_run_steps']} steps "
        f"(median step x steps, compile excluded)",
        f"final loss:             {r['final_loss']:.4f}",
        "step time by tenth of the run:   p10 / p50 / p90",
    ]
    for part in r["tenths"]:
        lo, hi = part["steps"]
        lines.append(f"  steps {lo + r['warmup']:5d}-{hi + r['warmup'] - 1:5d}:  {fmt_time(part['p10']):>9} / "
                     f"{fmt_time(part['p50']):>9} / {fmt_time(part['p90']):>9}")
    if "profile" in r:
        prof = r["profile"]
        step = prof["step_s"]
        lines.append(f"where a step's time goes ({prof['sampled_steps']} steps sampled: a step there takes "
                     f"{fmt_time(step)}, fastest of 3; pieces timed inside compiled code; "
                     f"{prof['calls_per_step']:.0f} calls per step at {fmt_time(prof['one_call_s'])} each):")
        for name, sec in sorted(prof["seconds_per_step"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:26s} {fmt_time(sec):>10}  {100 * sec / step:5.1f} %")
        lines.append(f"  {'Python loop, rest':26s} {fmt_time(prof['rest_s']):>10}  "
                     f"{100 * prof['rest_s'] / step:5.1f} %  (the step minus the above)")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.json:
            check_file(args.json, "--json")  # now, not after the minutes of benchmarking
        r = benchmark(args)
    except MicrogptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report(r))
    if args.json:
        meta = run_metadata()
        layer = None  # the python backend never imports numba
        if "numba" in sys.modules:
            try:
                layer = sys.modules["numba"].threading_layer()
            except ValueError:
                layer = "not started (nothing parallel ran)"
        out = {**r, "metadata": meta, "numba_threading_layer": layer}
        write_json(args.json, out, "--json")  # a failure is one line from run_main
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # as every entry point: `... | head` ends quietly, Ctrl-C is one line
