"""microgpt/kernels/fused_train.py: the compiled schedule against microgpt.schedule, and the documents' blocks."""

from __future__ import annotations

import pytest

pytest.importorskip("numba")

from microgpt.config import load_scenario  # noqa: E402
from microgpt.kernels import fused_train  # noqa: E402
from microgpt.schedule import learning_rate  # noqa: E402


@pytest.mark.parametrize("schedule", sorted(fused_train.SCHEDULES))
def test_the_compiled_learning_rate_is_schedules_bit_for_bit(schedule):
    """The same operations in the same order: every step of a run gets exactly schedule.learning_rate's rate."""
    t = load_scenario("alice").replace("training", schedule=schedule, num_steps=300).training
    code = fused_train.SCHEDULES[schedule]
    for step in range(0, 301, 7):
        assert fused_train.learning_rate(step, t.learning_rate, code, t.num_steps) == learning_rate(step, t), step


@pytest.mark.parametrize("k", [2, 7, 8, 12, 13, 40])
def test_slots_take_contiguous_blocks_that_share_the_documents_evenly(k):
    S = min(k, 8)  # k documents dealt to S blocks, as fused_batch deals a step to its groups
    blocks = [fused_train.slot_docs(j, S, k) for j in range(S)]
    assert blocks[0][0] == 0 and blocks[-1][1] == k
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))  # every document once, in order
    sizes = [hi - lo for lo, hi in blocks]
    assert max(sizes) - min(sizes) <= 1
    if S % 2 == 0:  # a prange over the S slots gives each of 2 threads one half of them: each holds its share
        assert abs(sum(sizes[: S // 2]) - sum(sizes[S // 2:])) <= 1
    if k == 12:
        assert sizes == [1, 2, 1, 2, 1, 2, 1, 2]
