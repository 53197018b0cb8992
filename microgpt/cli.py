"""What the command-line entry points share: error handling, scenario flags, progress."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from . import envvars
from .config import SIZE_KEYS, Config, describe_keys, load_config, load_scenario, scenario_names, sizes_of
from .errors import MicrogptError


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop: stop as Ctrl-C does, with exit code 143."""


def _terminate(signum, frame):
    raise Terminated


def run_main(main, argv=None) -> int:
    """Run `main(argv)`; a MicrogptError becomes one line on stderr and exit code 1.

    Ctrl-C or SIGTERM outside the training loop (which saves first, see train.StopSignal) exits
    130 / 143 with one line; a closed pipe (`... | head`) ends the output quietly.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: signals are not ours to handle
        previous = None
    try:
        envvars.check_all()
        return main(argv) or 0
    except MicrogptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:  # e.g. `... | head`
        # the interpreter flushes stdout again at exit; point it at /dev/null so that flush cannot fail
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def add_scenario_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scenario", "-s", default=None,
                   help=f"built-in scenario from configs/ ({', '.join(scenario_names())}; default: names)")
    g.add_argument("--config", metavar="PATH", help="your own scenario JSON file (keys as in configs/names.json)")


def scenario_from_args(args) -> Config:
    if args.config:
        return load_config(args.config)
    return load_scenario(args.scenario or "names")


def config_origin(args) -> str:
    """Where scenario_from_args's config came from, in words: "scenario names" or "PATH"."""
    return args.config if args.config else f"scenario {args.scenario or 'names'}"


def flag_of(key: str) -> str:
    return "--" + key.replace("_", "-")


def require_positive(args, names) -> None:
    """Each of these integer flags, where given, is >= 1; else the one line every entry point prints for it.

    Checked before the config takes them: its own check would name the config file for a flag's value.
    """
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise MicrogptError(f"{flag_of(name)} must be >= 1, got {value}")


def add_size_args(p: argparse.ArgumentParser) -> None:
    """--n-embd, --n-head, --n-layer, --block-size, --batch-size: a sweep's point without a file of its own."""
    # the line breaks are the text's own: the scripts' help is formatted raw, to keep their examples' layout
    g = p.add_argument_group("model size", "each flag overrides one value of the --scenario or --config file, which\n"
                             "keeps everything else (data, learning rate, schedule, seed); a value is checked\n"
                             "as the file's own would be")
    meta = {"n_embd": ("C", "model.n_embd, the embedding width (a multiple of n_head)"),
            "n_head": ("H", "model.n_head, the attention heads (must divide n_embd)"),
            "n_layer": ("L", "model.n_layer, the transformer blocks"),
            "block_size": ("T", "model.block_size, the context length; on a chunks corpus (alice) the chunks "
                           "follow: chunk_size T, overlap T/2, so every position is trained"),
            "batch_size": ("B", "training.batch_size, documents per forward/backward")}
    for key in SIZE_KEYS:
        metavar, what = meta[key]
        g.add_argument(flag_of(key), type=int, metavar=metavar, dest=key, help=f"overrides {what}")


def size_overrides(args, cfg: Config) -> dict:
    """The size flags given, checked against each other and `cfg`; a MicrogptError in the flags' terms.

    Config.replace would check them too, but would blame the config file for a flag's value.
    """
    require_positive(args, SIZE_KEYS)
    given = {k: getattr(args, k) for k in SIZE_KEYS if getattr(args, k, None) is not None}
    full = {**sizes_of(cfg), **given}
    C, H = full["n_embd"], full["n_head"]
    if C % H:
        origin = config_origin(args)

        def named(key):
            return f"{flag_of(key)} {full[key]}" if key in given else f"{key} {full[key]} of {origin}"

        # a dozen head counts to pick from, the smallest; searched only so far, so a huge width answers at once
        divisors = [d for d in range(1, min(C, 4096) + 1) if C % d == 0][:12]
        raise MicrogptError(f"{named('n_embd')} is not divisible by {named('n_head')}: the heads split the width; "
                            f"give an --n-head that divides {C} ({', '.join(map(str, divisors))}), or an --n-embd "
                            f"that is a multiple of {H}")
    return given


def config_epilog() -> str:
    return "config keys (JSON, section.key = default: meaning):\n" + describe_keys()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


class Progress:
    """Progress lines for a long loop.

    On a terminal one line is rewritten in place; otherwise a line is printed
    every `every` steps (about 5% of the run by default), always including the
    first and the last step.
    """

    def __init__(self, total: int, start: int = 0, every: int | None = None, quiet: bool = False, stream=None):
        self.total, self.start = total, start
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() and every is None
        self.every = every or max(1, total // 20)
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.last_draw = 0.0

    def wants(self, step: int) -> bool:
        """Whether 1-based `step` should print a line (off a terminal)."""
        return step == self.start + 1 or step == self.total or step % self.every == 0

    def next_stop(self, step: int) -> int:
        """The next 1-based step at or after `step` that prints (training runs up to it in one go)."""
        if self.tty or self.quiet:
            return self.total
        if step <= self.start + 1:
            return self.start + 1
        return min(self.total, ((step + self.every - 1) // self.every) * self.every)

    def update(self, step: int, text: str) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.t0
        done = step - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else 0.0
        line = f"step {step:4d} / {self.total:4d} | {text} | {rate:8.1f} steps/s | ETA {format_duration(eta)}"
        if self.tty:
            now = time.perf_counter()
            if now - self.last_draw > 0.1 or step == self.total:
                self.stream.write("\r" + line)
                self.stream.flush()
                self.last_draw = now
        elif self.wants(step):
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
