"""Every MICROGPT_* environment variable, read and checked here and nowhere else.

An environment variable is input like a flag: a bad value is a MicrogptError
that names the variable, the value and what it accepts (one line and exit 1
from the command lines), never a traceback from deep inside an import.
`VARIABLES` is the list docs/bad-inputs.md and the tests go by.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from .errors import MicrogptError


class Variable(NamedTuple):
    name: str
    accepts: str  # what a good value looks like, for the error message
    meaning: str


VARIABLES = {v.name: v for v in (
    Variable("MICROGPT_DATA_DIR", "a folder", "where data files are looked up before data/<scenario>/"),
    Variable("MICROGPT_OFFLINE", "1 or 0", "1 forbids downloads"),
    Variable("MICROGPT_VERIFY_JIT", "1 or 0", "1: the numpy backend checks that its kernels run compiled"),
    Variable("MICROGPT_PARALLEL_MIN_WORK", "a whole number >= 0",
             "multiply-adds per call from which the numpy backend's attention kernel runs in parallel"),
    Variable("MICROGPT_CAUSAL_PARALLEL_MIN_SCORES", "a whole number >= 0",
             "score entries per call from which numpy_batched's causal attention runs in parallel"),
    Variable("MICROGPT_AUTO_TABLE", "an existing file (scripts/scale_sweep.py --write-auto-table)",
             "the measured table --backend auto chooses by, instead of the shipped one"),
    Variable("MICROGPT_HYPOTHESIS_PROFILE", "a profile of tests/reliability/reliability_support.PROFILES",
             "how many examples the fuzz tests try; the test suite only"),
)}


def _raw(name: str) -> str | None:
    """The variable's value, None when unset; empty counts as unset (`VAR= cmd` is how a shell clears one)."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not in microgpt.envvars.VARIABLES")  # a bug here, not a user's input
    value = os.environ.get(name)
    return value if value else None


def _bad(name: str, value: str, why: str) -> MicrogptError:
    v = VARIABLES[name]
    return MicrogptError(f"environment variable {name}={value!r} {why}: it takes {v.accepts} ({v.meaning}); "
                         "change it or unset it")


def whole_number(name: str, default: int) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "is not a whole number") from None
    if number < 0:
        raise _bad(name, value, "is negative")
    return number


def flag(name: str) -> bool:
    value = _raw(name)
    if value is None:
        return False
    if value.strip() not in ("0", "1"):
        raise _bad(name, value, "is neither 1 nor 0")
    return value.strip() == "1"


def choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = _raw(name)
    if value is None:
        return default
    if value not in choices:
        raise _bad(name, value, f"is not one of {', '.join(choices)}")
    return value


def folder(name: str) -> str | None:
    """A folder to look in. One that does not exist is allowed (the data lookup's own error then says what to
    place where); a file is not, since nothing can ever be found inside it."""
    value = _raw(name)
    if value is not None and os.path.isfile(value):
        raise _bad(name, value, "is a file, not a folder")
    return value


def file_path(name: str) -> str | None:
    """A file to read: it must exist (unlike a folder to look in, nothing else would say what is wrong)."""
    value = _raw(name)
    if value is not None and not os.path.isfile(value):
        raise _bad(name, value, "is not a file")
    return value


def check_all() -> None:
    """Read every variable the package itself uses, so a bad one stops a command at once, whichever backend
    (the kernels read theirs only when a numpy backend is imported, and a python run would ignore them)."""
    folder("MICROGPT_DATA_DIR")
    flag("MICROGPT_OFFLINE")
    flag("MICROGPT_VERIFY_JIT")
    file_path("MICROGPT_AUTO_TABLE")
    whole_number("MICROGPT_PARALLEL_MIN_WORK", 0)
    whole_number("MICROGPT_CAUSAL_PARALLEL_MIN_SCORES", 0)
