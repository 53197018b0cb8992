"""microgpt.errors: one exception type a user sees, whose subclasses say what kind of input is wrong."""

from __future__ import annotations

import inspect

import pytest

from microgpt import errors
from microgpt.cli import run_main

KINDS = [errors.ConfigError, errors.DataError, errors.CheckpointError, errors.TrainingDiverged]


def test_every_error_of_the_module_is_a_microgpt_error():
    """The module holds MicrogptError and the four kinds; each is caught by `except MicrogptError`."""
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert sorted(c.__name__ for c in classes) == sorted(["MicrogptError"] + [k.__name__ for k in KINDS])
    assert all(issubclass(c, errors.MicrogptError) for c in classes)
    assert errors.MicrogptError.__bases__ == (Exception,)  # not a KeyboardInterrupt, not an OSError: input only


@pytest.mark.parametrize("kind", [errors.MicrogptError] + KINDS)
def test_a_command_line_prints_the_message_on_one_line_and_exits_1(kind, capsys):
    """What the docstring promises of every entry point: `error: <message>` on stderr, exit code 1."""

    def main(argv):
        raise kind("data.file: no such file 'x.txt'; pass --data PATH")

    assert run_main(main, []) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == "error: data.file: no such file 'x.txt'; pass --data PATH\n"
