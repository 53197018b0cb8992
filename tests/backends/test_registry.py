"""microgpt/backends/registry.py: one declaration per backend, which every list of backends in the lab reads."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from conftest import ROOT, run_cli, tiny_config_dict

from microgpt import generate, train
from microgpt.backends import get_backend_class
from microgpt.backends.python import PythonBackend
from microgpt.backends.registry import (DTYPES, REGISTRY, Entry, available_backends, backend_choices,
                                        missing_modules, resolve_name, skip_reason)
from microgpt.config import config_from_dict

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import common, startup, training  # noqa: E402


def registered():
    marks = {name: [pytest.mark.skip(reason=f"backend {name!r} needs {', '.join(missing_modules(name))}")]
             for name in REGISTRY if missing_modules(name)}
    return [pytest.param(name, marks=marks.get(name, []), id=name) for name in REGISTRY]


@pytest.mark.parametrize("name", registered())
def test_each_entry_declares_the_dtypes_of_its_class(name):
    # declared so that asking needs no import; this keeps the declaration and the class from drifting apart
    assert REGISTRY[name].dtypes == get_backend_class(name).dtypes


def test_the_config_and_the_registry_import_no_array_library():
    code = ("import sys, microgpt.config, microgpt.backends.registry; "
            "print(sorted(m for m in ('numpy', 'numba', 'torch') if m in sys.modules))")
    r = run_cli(["-c", code])
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


@pytest.mark.parametrize("backend,dtype,block_size,why", [
    ("python", "float32", 16, "backend 'python' has no float32"),
    ("python", "float64", 128, "backend 'python': about a minute per step at T=128; timed on names only (T <= 16)"),
    ("python", "float64", 16, None),
])
def test_skip_reason(backend, dtype, block_size, why):
    assert skip_reason(backend, dtype, block_size) == why


def test_a_backend_not_installed_is_not_run(monkeypatch):
    monkeypatch.setitem(REGISTRY, "absent", Entry("microgpt.backends.absent", "AbsentBackend", (), DTYPES))
    assert skip_reason("absent", "float64", 16) == "backend 'absent' is not installed or not written yet"
    assert "absent" not in available_backends()


def test_the_benchmark_parameters_are_the_registry():
    assert common.BACKENDS == list(REGISTRY) and common.DTYPES == list(DTYPES)
    assert training.TrainStep.params[:2] == (common.BACKENDS, common.DTYPES)
    assert startup.BackendColdStart.params[0] == list(REGISTRY)  # every backend's start (issue 15)


def test_a_backend_registered_once_appears_everywhere(monkeypatch):
    """The config, every --backend, the sweep's grid and the skip rule all read the entry."""
    monkeypatch.setitem(REGISTRY, "toy", Entry("microgpt.backends.python", "PythonBackend", (), ("float64",)))
    monkeypatch.syspath_prepend(os.path.join(ROOT, "scripts"))
    thread_sweep = importlib.import_module("thread_sweep")
    benchmark_train = importlib.import_module("benchmark_train")

    assert backend_choices()[-1] == "toy"
    d = tiny_config_dict()
    d["training"]["backend"] = "toy"
    assert config_from_dict(d).training.backend == "toy"
    for parser in (train.build_parser(), generate.build_parser(), benchmark_train.build_parser()):
        assert parser.parse_args(["--backend", "toy"]).backend == "toy"
    assert resolve_name("toy") == "toy" and get_backend_class("toy") is PythonBackend

    args = thread_sweep.build_parser().parse_args(["--scenarios", "names"])
    assert args.backends[-1] == "toy"
    runs = {r["dtype"]: r["skipped"] for r in thread_sweep.configurations(args) if r["backend"] == "toy"}
    assert runs == {"float64": None, "float32": "backend 'toy' has no float32"}
