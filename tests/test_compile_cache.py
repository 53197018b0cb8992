"""The Numba disk cache is keyed by the compiled sources, so an edit in one kernel file never reuses stale code;
the folder is chosen when a backend is built, never when microgpt or a kernel module is imported."""

import json
import os
import shutil
import subprocess
import sys

import pytest

numba = pytest.importorskip("numba")

from conftest import ROOT  # noqa: E402
from microgpt import compile_cache  # noqa: E402

PROBE = ("import json, numba; from microgpt.compile_cache import use_source_keyed_cache; "
         "print(json.dumps([use_source_keyed_cache(), numba.config.CACHE_DIR]))")


def probe(code=PROBE, cwd=ROOT, **env):
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**base, **env}, capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    """The policy's folders under tmp_path, Numba's CACHE_DIR restored afterwards: nothing written in the checkout."""
    root = tmp_path / "numba"
    monkeypatch.setattr(compile_cache, "CACHE_ROOT", str(root))
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    return root


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the microgpt package to import from, so that anything written at import would show there."""
    shutil.copytree(os.path.join(ROOT, "microgpt"), tmp_path / "microgpt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_digest_changes_with_any_compiled_file(tmp_path):
    copies = []
    for path in compile_cache.compiled_sources():
        copies.append(tmp_path / os.path.basename(path))
        shutil.copyfile(path, copies[-1])
    before = compile_cache.sources_digest(copies)
    assert before == compile_cache.sources_digest(compile_cache.compiled_sources())
    with open(copies[len(copies) // 2], "a") as f:
        f.write("# an edit\n")
    assert compile_cache.sources_digest(copies) != before


def test_the_cache_folder_is_named_after_the_sources_and_older_ones_go(cache_root):
    root = str(cache_root)
    stale = os.path.join(root, "0000000000000000")
    os.makedirs(stale, exist_ok=True)
    folder, numba_dir = compile_cache.use_source_keyed_cache(), numba.config.CACHE_DIR
    assert folder == numba_dir == os.path.join(root, compile_cache.sources_digest(compile_cache.compiled_sources()))
    assert not os.path.exists(stale)


def test_a_read_only_install_keeps_numbas_own_cache(cache_root, monkeypatch):
    def read_only(path, *args, **kwargs):
        raise PermissionError(13, "Read-only file system", path)

    monkeypatch.setattr(compile_cache.os, "makedirs", read_only)
    before = numba.config.CACHE_DIR
    assert compile_cache.use_source_keyed_cache() is None and numba.config.CACHE_DIR == before


def test_a_users_numba_cache_dir_is_left_alone(tmp_path):
    folder, numba_dir = probe(NUMBA_CACHE_DIR=str(tmp_path))
    assert folder is None and os.path.abspath(numba_dir) == str(tmp_path)


def test_importing_microgpt_and_every_kernel_module_writes_nothing_and_leaves_numba_alone(package_copy):
    kernels = sorted(name[:-3] for name in os.listdir(package_copy / "microgpt" / "kernels")
                     if name.endswith(".py") and name != "__init__.py")
    code = ("import json, numba; before = numba.config.CACHE_DIR; import microgpt, microgpt.kernels; "
            + "; ".join(f"import microgpt.kernels.{k}" for k in kernels)
            + "; print(json.dumps([before, numba.config.CACHE_DIR]))")
    before, after = probe(code, cwd=str(package_copy), PYTHONPATH=str(package_copy), PYTHONDONTWRITEBYTECODE="1")
    assert after == before, "importing a kernel module moved Numba's cache folder"
    assert not (package_copy / "microgpt" / "__pycache__").exists(), "importing wrote into the package"


def test_building_a_backend_that_compiles_chooses_the_folder_first(package_copy):
    code = ("import json, numba; from microgpt.backends import get_backend_class; get_backend_class('numpy'); "
            "from microgpt.compile_cache import CACHE_ROOT, compiled_sources, sources_digest; "
            "print(json.dumps([numba.config.CACHE_DIR, CACHE_ROOT, sources_digest(compiled_sources())]))")
    numba_dir, root, digest = probe(code, cwd=str(package_copy), PYTHONPATH=str(package_copy),
                                    PYTHONDONTWRITEBYTECODE="1")
    assert root == str(package_copy / "microgpt" / "__pycache__" / "numba")
    assert numba_dir == os.path.join(root, digest)


def test_a_compiled_variant_is_warm_once_marked_and_cold_again_after_an_edit(cache_root, monkeypatch):
    assert compile_cache.is_warm("fused-float32-doc") is False
    compile_cache.mark_warm("fused-float32-doc")
    assert compile_cache.is_warm("fused-float32-doc") is True
    assert compile_cache.is_warm("fused-float64-doc") is False  # each variant is a compilation of its own
    # an edit to a compiled source keys a new folder: the marker went with the old compilations
    monkeypatch.setattr(compile_cache, "sources_digest", lambda paths: "after-an-edit")
    compile_cache._CHOSEN.clear()
    assert compile_cache.is_warm("fused-float32-doc") is False


def test_a_users_numba_cache_dir_holds_the_markers(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert compile_cache.is_warm("numpy-float64") is False
    compile_cache.mark_warm("numpy-float64")
    assert (tmp_path / "compiled-numpy-float64").exists() and compile_cache.is_warm("numpy-float64")
