"""Every case of bad_inputs.CASES behaves as its row says, and docs/bad-inputs.md is that table.

An error is one line on stderr, `error: ...` (argparse's usage errors: exit 2), never a traceback;
a success prints what its row says. The doc's table is regenerated from the outcomes and must be
identical: `python tests/reliability/bad_inputs.py --write` rewrites it after a change.
"""

import re

import pytest

from bad_inputs import CASES, DOC, Workspace, command_line, doc_table, run_case, table, what_user_sees


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(str(tmp_path_factory.mktemp("bad-inputs")))


@pytest.fixture(scope="module")
def outcomes(ws):
    return {}


def outcome_of(ws, outcomes, i):
    if i not in outcomes:
        outcomes[i] = run_case(ws, CASES[i])
    return outcomes[i]


IDS = [f"{i + 1}-{c.cmd}-{re.sub(r'[^a-z0-9]+', '_', c.bad.lower())[:40]}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_case_behaves_as_its_row_says(ws, outcomes, i):
    case = CASES[i]
    out = outcome_of(ws, outcomes, i)
    where = f"{case.cmd} {command_line(case, ws)}\nstdout: {out.stdout[-1500:]}\nstderr: {out.stderr[-1500:]}"
    assert out.code == case.code, where
    assert "Traceback" not in out.stderr + out.stdout, where
    if case.expect:
        seen = what_user_sees(case, out, ws)
        assert re.search(case.expect, seen), (case.expect, where)
        if case.code == 1:  # a MicrogptError: exactly one line
            assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), where
        elif case.code == 2:  # argparse: usage, then the error
            assert out.stderr.startswith("usage: "), where
    else:
        assert out.stderr == "", where
        case.check(ws, out.stdout)


def test_the_doc_table_is_current(ws, outcomes):
    current = table(ws, {i: outcome_of(ws, outcomes, i) for i in range(len(CASES))})
    assert doc_table() is not None, f"{DOC} has no generated table: python tests/reliability/bad_inputs.py --write"
    assert doc_table() == current, f"{DOC} is out of date: python tests/reliability/bad_inputs.py --write"
