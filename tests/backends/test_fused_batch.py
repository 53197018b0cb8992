"""The fused backend's batch path (kernels/fused_batch.py) against numpy_batched, and its thread independence.

Every step with more than one document goes through each layer as one matrix
product per group of documents; float64 is held to numpy_batched at 1e-10
relative on every loss and every parameter, with one group and several, with
gradient accumulation, and on a wider model.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from equivalence import alice_exp, names_exp  # noqa: E402,F401  (fixtures)
from equivalence import assert_train_agree, make_backend  # noqa: E402
from microgpt.backends import fused as fm  # noqa: E402
from microgpt.experiment import prepare  # noqa: E402
from microgpt.kernels import fused_batch  # noqa: E402

RTOL, ATOL = 1e-10, 1e-15


def _pair(exp, **training):
    return make_backend(exp, "numpy_batched", **training), make_backend(exp, "fused", **training)


@pytest.mark.parametrize("batch_size, grad_accum", [(1, 1), (3, 1), (12, 1), (16, 1), (4, 3), (20, 2)])
def test_names_batches_match_numpy_batched(names_exp, batch_size, grad_accum):
    ref, cand = _pair(names_exp, batch_size=batch_size, grad_accum=grad_accum)
    assert_train_agree(ref, cand, 6, RTOL, ATOL)


@pytest.mark.parametrize("batch_size, grad_accum", [(16, 1), (3, 2)])
def test_alice_batches_match_numpy_batched(alice_exp, batch_size, grad_accum):
    ref, cand = _pair(alice_exp, batch_size=batch_size, grad_accum=grad_accum)
    assert cand.groups > 1
    assert_train_agree(ref, cand, 3, RTOL, ATOL)


def test_a_wider_model_in_two_groups_matches_numpy_batched(alice_exp):
    # C = 64, 8 documents of 64 positions: 2 groups of 256 rows
    cfg = alice_exp.cfg.replace("model", n_embd=64, n_head=4, n_layer=1, block_size=64)
    exp = prepare(cfg, dataset=alice_exp.dataset, quiet=True)
    ref, cand = _pair(exp, batch_size=8)
    assert cand.groups == 2
    assert_train_agree(ref, cand, 3, RTOL, ATOL)


def test_many_documents_a_group_go_through_in_passes_of_bounded_memory(alice_exp):
    # 32 documents of 128 positions: 8 groups of 4, each in 2 passes of 2 documents (GROUP_ROWS = 256 positions)
    ref, cand = _pair(alice_exp, batch_size=4, grad_accum=8)
    assert cand.groups == 8 and cand.batch.docs.shape[1] == 2 and cand.batch.emb.shape[1] == fused_batch.GROUP_ROWS
    assert_train_agree(ref, cand, 2, RTOL, ATOL)


@pytest.mark.parametrize("scenario, batch_size", [("names", 40), ("alice", 16)])
def test_threaded_batch_loop_gives_the_serial_loops_numbers(request, scenario, batch_size):
    exp = request.getfixturevalue(f"{scenario}_exp")
    serial, threaded = (make_backend(exp, "fused", batch_size=batch_size) for _ in range(2))
    assert serial.groups > 1
    a = [serial._run(serial.tokens, serial.offsets, s, n, serial.hyper, threads=False) for s, n in [(0, 2), (2, 1)]]
    b = [threaded._run(threaded.tokens, threaded.offsets, s, n, threaded.hyper, threads=True)
         for s, n in [(0, 2), (2, 1)]]
    assert a == b
    for x, y in ((serial.w, threaded.w), (serial.m, threaded.m), (serial.v, threaded.v)):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("k, T", [(2, 16), (12, 16), (16, 16), (40, 16), (4, 128), (16, 128), (64, 128), (3, 512)])
def test_groups_depend_on_the_step_alone_and_hold_every_document_once(k, T, monkeypatch):
    G = fused_batch.group_count(k, T)
    assert 1 <= G <= min(k, fused_batch.MAX_GROUPS)
    assert G == 1 or k * T // G >= fused_batch.GROUP_ROWS  # no group smaller than needed to share out
    blocks = [fm.fused_train.slot_docs(j, G, k) for j in range(G)]
    assert blocks[0][0] == 0 and blocks[-1][1] == k and all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    monkeypatch.setattr(fm.numba, "get_num_threads", lambda: 1)
    assert fused_batch.group_count(k, T) == G


def test_compile_runs_only_the_loop_the_run_uses(names_exp, monkeypatch):
    called = []
    monkeypatch.setattr(fm.fused_train, "train_loop", lambda *a: called.append("train_loop"))
    for name in ("batch_loop", "batch_loop_threads"):
        monkeypatch.setattr(fm.fused_batch, name, lambda *a, name=name: called.append(name))
    monkeypatch.setattr(fm.numba, "get_num_threads", lambda: 1)
    make_backend(names_exp, "fused").compile()
    make_backend(names_exp, "fused", batch_size=16).compile()
    assert called == ["train_loop", "batch_loop"]


def test_the_batch_path_gives_scipys_blas_one_thread_whatever_the_variables_say(names_exp, monkeypatch):
    # np.dot runs inside the groups' threads: BLAS threads of its own would only spin (a step 50x slower)
    import ctypes

    from scipy.linalg import cython_blas

    lib = ctypes.CDLL(cython_blas.__file__)
    if getattr(lib, "scipy_openblas_get_num_threads", None) is None:
        pytest.skip("scipy's BLAS is not its bundled OpenBLAS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    lib.scipy_openblas_set_num_threads(2)
    make_backend(names_exp, "fused", batch_size=2)
    assert lib.scipy_openblas_get_num_threads() == 1
