"""What the reliability tests share: a tiny data set and config, real subprocesses, output parsing.

The data are generated here (a few hundred made-up names from a seeded RNG) so that these tests
need neither the network nor ../shared/data, and so that the python backend trains at ~100 steps/s.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

from conftest import ROOT, cli_env, tiny_config_dict

from microgpt import envvars
from microgpt.backends.registry import REGISTRY, missing_modules

LOSS_LINE = re.compile(r"^step +(\d+) / +(\d+) \| loss (\S+) \|", re.M)


def printed_losses(stdout: str) -> list[tuple[int, str]]:
    """(step, loss as printed) for every progress line; the text, so that comparisons are exact."""
    return [(int(step), loss) for step, _, loss in LOSS_LINE.findall(stdout)]


def write_names(path, n: int = 300, seed: int = 1) -> str:
    """n made-up lowercase names, one per line: a small, fixed training set."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    names = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 7))) for _ in range(n)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")
    return str(path)


def small_config_dict(num_steps: int = 200, **training) -> dict:
    """tiny_config_dict made smaller still (C=2, 2 heads, T=4): ~250 python steps/s on a busy core."""
    d = tiny_config_dict(n_embd=2, n_head=2, block_size=4)
    d["training"].update(num_steps=num_steps, **training)
    d["sampling"] = {"num_samples": 3, "temperature": 0.5}
    return d


def write_config(path, d: dict) -> str:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f)
    return str(path)


def backend_params():
    """Every registered backend; skipped, with the reason, only when its third-party packages are not installed.

    A backend that is installed but does not import is not skipped: its tests fail (a skip there would
    hide the breakage behind a passing run).
    """
    import pytest

    out = []
    for name in REGISTRY:
        missing = missing_modules(name)
        marks = [pytest.mark.skip(reason=f"backend {name!r} needs {', '.join(missing)} (not installed)")] \
            if missing else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def backend_dtype_params():
    """(backend, dtype) for every dtype each available backend declares."""
    import pytest

    out = []
    for p in backend_params():
        name = p.values[0]
        dtypes = ("float64",)
        if not p.marks:
            dtypes = REGISTRY[name].dtypes
        for dtype in dtypes:
            out.append(pytest.param(name, dtype, marks=p.marks, id=f"{name}-{dtype}"))
    return out


def popen_cli(args: list[str], cwd: str | None = None, **kw) -> subprocess.Popen:
    """Start `python <args>` like conftest.run_cli, but without waiting (to signal or kill it)."""
    return subprocess.Popen([sys.executable, *args], cwd=cwd or ROOT, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


class LineReader:
    """Collects a pipe's lines on a thread, so a test can wait for one without blocking on the pipe."""

    def __init__(self, stream):
        import threading

        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        for line in stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append(None)  # end of stream
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        """The first line matching `pattern` (a regex), waiting for it up to `timeout` seconds."""
        rx = re.compile(pattern)
        with self.changed:
            ok = self.changed.wait_for(lambda: any(l is None or rx.search(l) for l in self.lines), timeout)
            hit = next((l for l in self.lines if l is not None and rx.search(l)), None)
        if not ok or hit is None:
            raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got: {self.snapshot()[-2000:]}")
        return hit

    def snapshot(self) -> str:
        with self.changed:
            return "".join(l for l in self.lines if l is not None)

    def text(self, timeout: float = 60.0) -> str:
        """Everything read so far (after the stream closed, once `timeout` allows the thread to finish)."""
        self.thread.join(timeout)
        return self.snapshot()


def read_json(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# -- hypothesis settings ----------------------------------------------------------------------------
# The default run gives each property 500 examples (a few seconds each); `MICROGPT_HYPOTHESIS_PROFILE=ci-long`
# gives each 5,000 (~1.5 min for test_fuzz.py on 2 cores), for CI. Explicit settings objects, so other tests'
# hypothesis settings are left alone; an unknown profile name is an error, not a silent default.

PROFILES = {"reliability-default": 500, "ci-long": 5000}


def _profiles():
    from hypothesis import HealthCheck, settings

    quick = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    for name, examples in PROFILES.items():
        settings.register_profile(name, max_examples=examples, **quick)
    return settings.get_profile(envvars.choice("MICROGPT_HYPOTHESIS_PROFILE", tuple(PROFILES), "reliability-default"))


FUZZ = _profiles()
