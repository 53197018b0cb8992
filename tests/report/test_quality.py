"""microgpt/report/quality.py: the best validation loss at each budget, over widths and thread counts."""

from microgpt.report.quality import front, section


def result(backend, width, budget, val_loss, status="ok"):
    return {"status": status, "steps": 10, "wall_s": budget, "val_loss_f64": val_loss, "train_loss_f64": val_loss,
            "point": {"backend": backend, "n_embd": width, "budget_s": budget, "threads": 1}}


DOC = {"settings": {"scenario": "names"}, "points": {
    "fused/C16/1s": result("fused", 16, 1, 2.4), "fused/C32/1s": result("fused", 32, 1, 2.5),
    "fused/C32/10s": result("fused", 32, 10, 2.1), "torch/C16/1s": result("torch", 16, 1, 2.6),
    "torch/C16/10s": result("torch", 16, 10, None, status="diverged")}}


def test_the_front_keeps_the_best_finished_point_of_each_budget():
    fronts = front(DOC)
    assert [(p.budget_s, p.val_loss, p.key) for p in fronts["fused"]] == [(1, 2.4, "fused/C16/1s"),
                                                                          (10, 2.1, "fused/C32/10s")]
    assert [p.budget_s for p in fronts["torch"]] == [1]


def test_the_section_lists_every_point_the_failed_ones_too():
    text = section(DOC, "q.png")
    assert "![validation loss against training time](q.png)" in text
    assert "| torch/C16/10s | diverged | | | |" in text and "| fused | 2.4000 | 2.1000 |" in text
