"""What the command-line entry points share: error handling, scenario flags, progress."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from . import envvars
from .config import Config, describe_keys, load_config, load_scenario, scenario_names
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
