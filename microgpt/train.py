"""Train a scenario and print samples: python -m microgpt.train --help"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import signal
import sys
import time

from . import checkpoint
from .checkpoint import Checkpoint
from .budget import describe as describe_budget, plan as plan_budget
from .cli import (Progress, add_scenario_args, config_epilog, format_duration, require_positive, run_main,
                  scenario_from_args)
from .config import DTYPES, Config
from .errors import CheckpointError, MicrogptError, TrainingDiverged
from .backends.registry import AUTO_RULE, backend_choices, resolve_name
from .experiment import Experiment, prepare
from .sampling import decode, sample


PROG = "python -m microgpt.train"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command's flags; `prog` is the command the usage line names (the root shims name their own)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train the character-level GPT on a scenario, save models/<scenario>/model.json, "
                    "print the validation loss and samples.",
        epilog=config_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scenario_args(p)
    p.add_argument("--backend", "-b", choices=backend_choices(), help=f"overrides training.backend (auto: {AUTO_RULE})")
    p.add_argument("--dtype", choices=DTYPES, help="overrides training.dtype (array backends)")
    p.add_argument("--steps", type=int, metavar="N", help="overrides training.num_steps (the schedule's horizon)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS", help="train for about this long (compile "
                   "excluded): the step rate is timed first and sets the schedule's horizon; overrides "
                   "training.time_budget, and --steps overrides both")
    p.add_argument("--seed", type=int, metavar="S", help="overrides training.seed")
    p.add_argument("--batch-size", type=int, metavar="B", help="overrides training.batch_size")
    p.add_argument("--grad-accum", type=int, metavar="G", help="overrides training.grad_accum")
    p.add_argument("--num-samples", type=int, metavar="K", help="overrides sampling.num_samples")
    p.add_argument("--data", metavar="PATH", help="the data file to train on (default: $MICROGPT_DATA_DIR, "
                   "data/<scenario>/, then a download)")
    p.add_argument("--output", "-o", metavar="PATH", help="checkpoint path (default: models/<scenario>/model.json)")
    p.add_argument("--log-every", type=int, metavar="K", help="print a progress line every K steps "
                   "(default: in place on a terminal, every ~5%% otherwise)")
    p.add_argument("--resume", action="store_true", help="continue from the training state in --output")
    p.add_argument("--stop-after", type=int, metavar="K", help="stop at step K, saving the training state")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final figures and samples")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="where --backend torch computes "
                   "(default auto: cuda when available, else cpu)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (--backend torch; "
                   "its compile time is reported apart)")
    return p


def silence_other_ranks() -> None:
    """Under torchrun every process runs this command; rank 0 speaks (and saves) for the job."""
    if int(os.environ.get("RANK", "0") or 0) > 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            os.dup2(devnull, stream.fileno())


def backend_options(args, backend: str) -> dict:
    """The torch-only flags as backend keyword arguments; an error where they would be silently ignored."""
    world = os.environ.get("WORLD_SIZE", "1")
    if backend != "torch":
        used = [flag for flag, value in (("--device", args.device), ("--compile", args.compile)) if value]
        if used:
            raise MicrogptError(f"{' and '.join(used)}: for --backend torch only (this run uses {backend})")
        if world not in ("", "1"):
            raise MicrogptError(f"this is a torchrun job of {world} processes: data-parallel training needs "
                                "--backend torch")
        return {}
    return {"device": args.device, "compile": args.compile}


def apply_overrides(cfg: Config, args) -> Config:
    training = {k: v for k, v in {
        "backend": args.backend, "dtype": args.dtype, "num_steps": args.steps, "seed": args.seed,
        "batch_size": args.batch_size, "grad_accum": args.grad_accum}.items() if v is not None}
    if training:
        cfg = cfg.replace("training", **training)
    if args.num_samples is not None:
        cfg = cfg.replace("sampling", num_samples=args.num_samples)
    return cfg


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the training loop checks between chunks of steps."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C while saving: let it through
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def make_checkpoint(exp: Experiment, backend, step: int) -> Checkpoint:
    m, v = backend.get_adam()
    state = {"step": step, "adam_m": m, "adam_v": v,
             "rng_state": checkpoint.rng_state_to_json(exp.rng.getstate())}
    dataset = {"source": exp.dataset.source, "sha256": exp.dataset.sha256, "num_docs": len(exp.docs)}
    return Checkpoint(exp.cfg, exp.tokenizer.uchars, backend.get_weights(), dataset,
                      backend.name, exp.cfg.training.dtype, state)


def _broke_down(e: BaseException) -> bool:
    """Arithmetic that failed on absurd numbers (overflow, log/sqrt of a bad value), not a bug elsewhere."""
    return isinstance(e, ArithmeticError) or (isinstance(e, ValueError) and "math domain error" in str(e))


def train(exp: Experiment, backend, start: int, stop: int, args, signals: StopSignal,
          kept: str = "", deadline: float | None = None) -> tuple[int, list[float]]:
    """Steps start..stop-1, printing progress; returns the steps done and their losses.

    A NaN or infinite loss (or arithmetic that overflows on the way to one) raises TrainingDiverged
    naming the step; `kept` says what happened to the checkpoint file, for that message. With a
    `deadline` (time.perf_counter()), no chunk starts after it: a time budget's run ends there.
    """
    total = exp.cfg.training.num_steps
    progress = Progress(total, start, args.log_every, quiet=args.quiet)
    losses: list[float] = []
    step = start
    chunk = 1
    backend.received_signal = lambda: signals.signum  # under torchrun, the ranks agree on it
    while step < stop and backend.stop_signal(signals.signum) is None:
        if deadline is not None and step > start and time.perf_counter() >= deadline:
            break
        # run up to the next line to print, in chunks of ~0.1 s so signals (and a deadline) are seen promptly
        target = min(stop, progress.next_stop(step + 1), step + chunk)
        t0 = time.perf_counter()
        try:
            chunk_losses = backend.train_steps(step, target - step)
        except (ArithmeticError, ValueError) as e:
            if not _broke_down(e):
                raise
            progress.close()
            where = f"step {step + 1}" if target - step == 1 else f"steps {step + 1}-{target}"
            raise TrainingDiverged(f"the arithmetic overflowed ({e}) at {where}; stopped without saving{kept} "
                                   "(lower training.learning_rate?)") from None
        dt = time.perf_counter() - t0
        for i, loss in enumerate(chunk_losses):
            if not math.isfinite(loss):
                progress.close()
                raise TrainingDiverged(f"the loss became {loss} at step {step + i + 1}; stopped without saving"
                                       f"{kept} (lower training.learning_rate?)")
        losses += chunk_losses
        step += len(chunk_losses)  # fewer than asked when the ranks of a torchrun job stop together
        progress.update(step, f"loss {chunk_losses[-1]:.4f}")
        chunk = max(1, min(10_000, int(chunk * min(4.0, 0.1 / max(dt, 1e-6)))))
    progress.close()
    return step, losses


def announce_compile(exp: Experiment, backend) -> None:
    """Before a compilation that is not in Numba's cache yet, say so, and how long the sweep found it takes."""
    from .auto_choice import load_table, per_backend, table_path
    from .compile_cache import is_warm

    variant = type(backend).compiled_variant(exp.cfg, exp.tokenizer.vocab_size)
    if not variant or is_warm(variant) is not False:
        return
    cold_s = per_backend(load_table(table_path()).cold_compile_s, exp.cfg.training.dtype).get(backend.name)
    took = f" (it took {cold_s:.1f} s in the scale sweep behind auto's table)" if cold_s else ""
    print(f"compiling {variant} with Numba: not in the cache yet{took}; later runs load it", flush=True)


def resume_backend(exp: Experiment, resumed: Checkpoint, path: str):
    """A backend holding the checkpoint's weights and Adam moments, `exp.rng` at its position; and its step.

    Refuses a checkpoint that would silently continue another run: other data (vocabulary or
    file contents), another seed (another shuffle) or another number of documents per step.
    """
    if resumed.uchars != exp.tokenizer.uchars:
        raise CheckpointError(f"{path}: its vocabulary differs from this data's; resume with the same data")
    recorded = resumed.dataset.get("sha256")
    if isinstance(recorded, str) and recorded != exp.dataset.sha256:
        source = resumed.dataset.get("source")
        raise CheckpointError(f"{path}: was trained on other data ({source}, sha256 {recorded[:12]}...) than "
                              f"{exp.dataset.source}; resume with the same --data")
    saved, now = resumed.config.training, exp.cfg.training
    if now.seed != saved.seed:
        raise MicrogptError(f"--seed {now.seed}: {path} was trained with seed {saved.seed}, which "
                            "fixes its document order; a resumed run keeps it (leave out --seed)")
    if (now.batch_size, now.grad_accum) != (saved.batch_size, saved.grad_accum):
        # which documents step s trains on depends on the documents per step
        raise MicrogptError(f"{path} was trained with {saved.batch_size} doc(s) x {saved.grad_accum} accumulation "
                            f"per step, this run asks for {now.batch_size} x {now.grad_accum}; resume with "
                            f"--batch-size {saved.batch_size} --grad-accum {saved.grad_accum}")
    exp.weights = resumed.weights
    state = resumed.train_state
    if state.get("rng_state"):
        exp.rng.setstate(checkpoint.rng_state_from_json(state["rng_state"]))
    backend = exp.make_backend()
    backend.set_adam(state["adam_m"], state["adam_v"])
    return backend, state["step"]


def resolve_budget(cfg: Config, args, resuming: bool) -> float | None:
    """The run's time budget in seconds, or None: --steps beats a budget; a resumed run keeps its steps."""
    if args.time_budget is not None:
        if args.steps is not None:
            raise MicrogptError("--time-budget and --steps both set the schedule's horizon; give one")
        if resuming:
            raise MicrogptError("--time-budget with --resume: the run's horizon was fixed when it started; "
                                "resume without --time-budget")
        if not (args.time_budget > 0 and math.isfinite(args.time_budget)):
            raise MicrogptError(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
        return args.time_budget
    if args.steps is not None or resuming:
        return None
    return cfg.training.time_budget


def main(argv=None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    silence_other_ranks()
    require_positive(args, ("steps", "batch_size", "grad_accum", "log_every", "stop_after"))
    if args.num_samples is not None and args.num_samples < 0:  # 0 is allowed: train and save, print no samples
        raise MicrogptError(f"--num-samples must be >= 0 (0: no samples), got {args.num_samples}")
    cfg = apply_overrides(scenario_from_args(args), args)
    output = checkpoint.default_path(cfg.name) if args.output is None else args.output
    checkpoint.check_output(output)  # before any work: a run must not end in a save that was bound to fail

    resumed = None
    if args.resume:
        resumed = checkpoint.load(output)
        if resumed.train_state is None:
            raise CheckpointError(f"{output}: has no training state to resume from")
        cfg = apply_overrides(resumed.config, args)

    budget, budget_plan = resolve_budget(cfg, args, resumed is not None), None
    if cfg.training.time_budget is not None:  # the horizon is fixed below: the saved config holds steps, not seconds
        cfg = cfg.replace("training", time_budget=None)
    exp = prepare(cfg, args.data, quiet=args.quiet)
    exp.backend_options = backend_options(args, resolve_name(cfg.training.backend))
    if cfg.training.backend == "auto" and importlib.util.find_spec("numba") is None and not args.quiet:
        print("note: numba is not installed, so training uses the python backend "
              "(pip install 'microgpt[numpy]' for the fast ones)", file=sys.stderr)
    if not args.quiet:  # --quiet: the final figures and the samples only
        print(f"num docs: {len(exp.docs)}")
        print(f"vocab size: {exp.tokenizer.vocab_size}")
        print(f"num params: {exp.num_params}")
    start = 0
    if resumed is not None:
        backend, start = resume_backend(exp, resumed, output)
    else:
        if budget is not None:
            budget_plan = plan_budget(exp, budget)
            exp.cfg = cfg = cfg.replace("training", num_steps=budget_plan.steps)
            if not args.quiet:
                print(describe_budget(budget_plan))
        backend = exp.make_backend()
    total = cfg.training.num_steps
    stop = min(total, args.stop_after) if args.stop_after else total
    if start > total:
        raise MicrogptError(f"--steps {total}: {output} is already at step {start}; give a larger --steps "
                            "to train further")
    if args.stop_after is not None and args.stop_after <= start < total:
        raise MicrogptError(f"--stop-after {args.stop_after}: {output} is already at step {start}; "
                            "give a later step")
    if not args.quiet:
        t = cfg.training
        print(f"backend: {backend.name} ({t.dtype}), {t.batch_size} doc(s) x {t.grad_accum} accumulation per step, "
              f"{len(exp.train_tokens)} train / {len(exp.val_tokens)} val docs, data: {exp.dataset.source}")
        if exp.auto is not None:
            print(f"auto chose {exp.auto.backend}: {exp.auto.reason}")
        if 0 < start < total:
            print(f"resuming from step {start} of {total} ({output})")
    if not args.quiet:
        announce_compile(exp, backend)
    compile_s = backend.compile()
    if compile_s > 0.05 and not args.quiet:
        print(f"compiled in {compile_s:.2f} s (not counted below)")

    kept = f"; {output} is as it was" if os.path.exists(output) else ""
    t0 = time.perf_counter()
    # the budget ends the run even where the steps ran slower than the first ones timed
    deadline = t0 + budget_plan.budget_s - budget_plan.measure_s if budget_plan is not None else None
    with StopSignal() as signals:
        try:
            step, losses = train(exp, backend, start, stop, args, signals, kept, deadline)
            elapsed = time.perf_counter() - t0
            saves = step > start or resumed is None  # a resume with no step left rewrites nothing
            if saves and backend.writes_checkpoints:  # under torchrun, rank 0 only
                checkpoint.save_or_rescue(output, make_checkpoint(exp, backend, step))
            backend.checkpoint_written()
        except KeyboardInterrupt:  # a second signal: stop at once; a save it cut short left the old file whole
            signum = signals.signum or signal.SIGINT
            where = f"{output} holds the last completed save" if os.path.exists(output) else "nothing was saved"
            print(f"{signal.Signals(signum).name} again: stopped at once; {where}", file=sys.stderr)
            return 128 + signum
    signum = backend.stop_signal(signals.signum)  # under torchrun, maybe one that reached another rank only
    if signum is not None:
        name = signal.Signals(signum).name
        print(f"{name}: stopped after step {step} of {total}; saved {output} "
              f"(continue with --resume)", file=sys.stderr)
        return 128 + signum
    if not saves:
        print(f"already trained {step} of {total} steps ({output}); nothing to resume")
    steps_done = step - start
    if steps_done:
        print(f"trained {steps_done} steps in {format_duration(elapsed)} ({elapsed:.2f} s, "
              f"{steps_done / elapsed:.1f} steps/s); final loss {losses[-1]:.4f}")
        if budget_plan is not None:
            print(f"time budget {budget_plan.budget_s:g} s: spent {budget_plan.measure_s + elapsed:.2f} s "
                  f"({budget_plan.measure_s:.2f} s timing the first steps, {elapsed:.2f} s training)")
    if saves and not args.quiet:
        print(f"saved {output}")
    if budget_plan is not None and step < stop:
        print(f"time budget {budget_plan.budget_s:g} s: spent after step {step} of the {total} planned (the steps "
              f"ran at {steps_done / elapsed:.1f} steps/s, the first ones at {budget_plan.steps_per_s:.1f}); "
              f"replay with --steps {total} --stop-after {step}")
    elif step < total:
        print(f"stopped after step {step} of {total}; continue with --resume")
        return 0

    if exp.val_tokens:
        print(f"val loss: {backend.eval_loss(exp.val_tokens):.4f} ({len(exp.val_tokens)} held-out docs)")
    s = cfg.sampling
    if s.num_samples:
        print(f"--- samples (temperature {s.temperature}) ---")
    for i in range(s.num_samples):
        ids = sample(backend, exp.rng, [], s.temperature, s.max_tokens)
        print(f"sample {i + 1:2d}: {decode(exp.tokenizer, ids)}")
    return 0


def cli(prog: str = PROG) -> None:
    sys.exit(run_main(lambda argv: main(argv, prog)))


if __name__ == "__main__":
    cli()
