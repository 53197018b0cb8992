"""The Numba disk cache is keyed by the compiled sources, so an edit in one kernel file never reuses stale code."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("numba")

from conftest import ROOT  # noqa: E402
from microgpt import kernels  # noqa: E402

PROBE = "import json, numba, microgpt.kernels as k; print(json.dumps([k.CACHE_FOLDER, numba.config.CACHE_DIR]))"


def probe(**env):
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env}, capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)


def test_digest_changes_with_any_compiled_file(tmp_path):
    copies = []
    for path in kernels.compiled_sources():
        copies.append(tmp_path / os.path.basename(path))
        shutil.copyfile(path, copies[-1])
    before = kernels.sources_digest(copies)
    assert before == kernels.sources_digest(kernels.compiled_sources())
    with open(copies[len(copies) // 2], "a") as f:
        f.write("# an edit\n")
    assert kernels.sources_digest(copies) != before


def test_the_cache_folder_is_named_after_the_sources_and_older_ones_go():
    root = os.path.join(ROOT, "microgpt", "__pycache__", "numba")
    stale = os.path.join(root, "0000000000000000")
    os.makedirs(stale, exist_ok=True)
    folder, numba_dir = probe()
    assert folder == numba_dir == os.path.join(root, kernels.sources_digest(kernels.compiled_sources()))
    assert not os.path.exists(stale)


def test_a_users_numba_cache_dir_is_left_alone(tmp_path):
    folder, numba_dir = probe(NUMBA_CACHE_DIR=str(tmp_path))
    assert folder is None and os.path.abspath(numba_dir) == str(tmp_path)
