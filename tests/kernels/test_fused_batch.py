"""microgpt/kernels/fused_batch.py: how a step's documents are dealt to groups, and each group's buffers."""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from microgpt.kernels import fused_batch, fused_train  # noqa: E402
from microgpt.kernels.fused_layers import RELU  # noqa: E402
from microgpt.kernels.fused_model import Model  # noqa: E402
from microgpt.kernels.fused_simd import VECTOR_BYTES  # noqa: E402


@pytest.mark.parametrize("k, T", [(2, 16), (12, 16), (16, 16), (40, 16), (4, 128), (16, 128), (64, 128), (3, 512)])
def test_groups_depend_on_the_step_alone_and_hold_every_document_once(k, T, monkeypatch):
    G = fused_batch.group_count(k, T)
    assert 1 <= G <= min(k, fused_batch.MAX_GROUPS)
    assert G == 1 or k * T // G >= fused_batch.GROUP_ROWS  # no group smaller than needed to share out
    blocks = [fused_train.slot_docs(j, G, k) for j in range(G)]
    assert blocks[0][0] == 0 and blocks[-1][1] == k and all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert fused_batch.group_count(k, T) == G


@pytest.mark.parametrize("k, T", [(4, 16), (40, 16), (8, 128), (32, 128)])
def test_a_groups_buffers_hold_one_pass_of_at_most_group_rows_positions(k, T):
    """new_batch: a leading axis of group_count(k, T) groups; a pass of D documents, D·T <= GROUP_ROWS unless one
    document alone is longer; rows rounded up to whole vectors; the index buffers are integers."""
    model = Model(27, 16, 4, 1, T, RELU, 0.5)
    batch = fused_batch.new_batch(model, np.float32, k)
    G = fused_batch.group_count(k, T)
    D = batch.docs.shape[1]
    assert batch.emb.shape[0] == G and D == min(-(-k // G), max(1, fused_batch.GROUP_ROWS // T))
    rows = batch.emb.shape[1]
    assert rows >= D * T and rows % (VECTOR_BYTES // 4) == 0 and (D == 1 or D * T <= fused_batch.GROUP_ROWS)
    assert batch.starts.shape == (G, D + 1) and batch.docs.dtype == np.int64 and batch.targets.dtype == np.int32
    assert batch.emb.dtype == np.float32 and batch.logitsT.shape == (G, 27 * rows)
