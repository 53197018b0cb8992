"""Shared test fixtures: the data folder, subprocess runs of the CLIs, tiny configs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from microgpt import envvars
from microgpt.compile_cache import use_source_keyed_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))

# Tests read the reference copies in ../shared/data when they exist (CI has them);
# otherwise tests that need the real files build small fixtures or skip with a reason.
if os.path.isdir(SHARED_DATA) and "MICROGPT_DATA_DIR" not in os.environ:
    os.environ["MICROGPT_DATA_DIR"] = SHARED_DATA
os.environ.setdefault("MICROGPT_OFFLINE", "1")  # tests never download
# `--backend auto` by the fixed rule (fused), not the shipped measurements: with those, what auto picks
# would hang on whether another test had already filled Numba's cache (tests/test_auto_choice.py tests them)
NO_AUTO_TABLE = os.path.join(ROOT, "tests", "auto_table_without_rows.json")
os.environ.setdefault("MICROGPT_AUTO_TABLE", NO_AUTO_TABLE)
use_source_keyed_cache()  # tests import kernel modules directly, before any backend is built


# under CI a skipped golden, equivalence or thread test fails (tests/ci_guard.py)
pytest_plugins = ["ci_guard"]


def shared_file(name: str) -> str:
    folder = envvars.folder("MICROGPT_DATA_DIR") or SHARED_DATA
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not found in {folder} (set MICROGPT_DATA_DIR or place ../shared/data beside the "
                    "checkout)")
    return path


@pytest.fixture
def names_path() -> str:
    return shared_file("names.txt")


def cli_env(extra: dict | None = None) -> dict:
    """This process's environment with the repository importable, and `extra` on top: what run_cli runs with."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def run_cli(args: list[str], cwd: str | None = None, env: dict | None = None, block: tuple[str, ...] = (),
            timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m ...` (or `python -c`) with the repo importable; `block` makes modules unimportable."""
    if block:
        # sys.modules[name] = None makes `import name` raise ImportError
        prelude = "import sys, runpy; " + "; ".join(f"sys.modules[{m!r}] = None" for m in block)
        module = args[1] if args[0] == "-m" else None
        assert module, "block= needs a -m invocation"
        code = f"{prelude}; sys.argv = [{module!r}] + {args[2:]!r}; runpy.run_module({module!r}, run_name='__main__')"
        args = ["-c", code]
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=cli_env(env), capture_output=True, text=True,
                          timeout=timeout, input=input)


def tiny_config_dict(**model) -> dict:
    """A names-style config small enough for gradient checks and fast CLI tests."""
    m = {"n_embd": 8, "n_head": 2, "n_layer": 1, "block_size": 8, "activation": "relu", "init_std": 0.3,
         "zero_init_proj": False}
    m.update(model)
    return {"name": "tiny", "data": {"file": "names.txt", "format": "lines"}, "model": m,
            "training": {"num_steps": 5, "backend": "python"}, "sampling": {"num_samples": 2}}


def pytest_configure(config):
    # pyproject's addopts has --benchmark-disable (benchmarks run once, as tests); an explicit
    # --benchmark-only asks for timing, so turn them back on (pytest-benchmark refuses both otherwise)
    if config.getoption("benchmark_only", default=False):
        config.option.benchmark_enable = True
