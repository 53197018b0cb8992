"""The python backend: the whole GPT's gradients against finite differences, the float path, a batch's loss.

The RNG order of the initialisation it trains from is tests/test_experiment.py's.
"""

import random

import pytest

from conftest import tiny_config_dict
from microgpt.autograd import Value
from microgpt.backends.python import PythonBackend, doc_loss_graph, gpt
from microgpt.config import config_from_dict
from microgpt.params import init_weights, param_shapes


@pytest.mark.parametrize("model", [
    {}, {"activation": "relu2", "n_layer": 2}, {"n_head": 1}, {"n_embd": 4, "n_head": 4},
])
def test_every_parameter_gradient_matches_central_differences(model):
    cfg = config_from_dict(tiny_config_dict(**model))
    V = 5
    rng = random.Random(3)
    w = init_weights(cfg.model, V, rng)
    tokens = [4, 0, 2, 1, 3, 0, 4]
    sd = {n: [[Value(x) for x in row] for row in m] for n, m in w.items()}
    loss = doc_loss_graph(sd, cfg, tokens)
    loss.backward()
    h = 1e-5
    for name, (rows, cols) in param_shapes(cfg.model, V).items():
        for r, c in [(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 3)]:
            old = w[name][r][c]
            w[name][r][c] = old + h
            up = doc_loss_graph(w, cfg, tokens)
            w[name][r][c] = old - h
            dn = doc_loss_graph(w, cfg, tokens)
            w[name][r][c] = old
            assert sd[name][r][c].grad == pytest.approx((up - dn) / (2 * h), rel=1e-5, abs=1e-8), (name, r, c)


def test_float_path_is_bit_identical_to_the_value_path():
    cfg = config_from_dict(tiny_config_dict(n_layer=2, activation="relu2"))
    w = init_weights(cfg.model, 6, random.Random(5))
    sd = {n: [[Value(x) for x in row] for row in m] for n, m in w.items()}
    kv_f = ([[] for _ in range(2)], [[] for _ in range(2)])
    kv_v = ([[] for _ in range(2)], [[] for _ in range(2)])
    for pos, tok in enumerate([5, 1, 2, 3, 0, 4]):
        lf = gpt(w, cfg, tok, pos, *kv_f)
        lv = gpt(sd, cfg, tok, pos, *kv_v)
        assert lf == [v.data for v in lv]
    tokens = [5, 1, 2, 3, 5]
    assert doc_loss_graph(w, cfg, tokens) == doc_loss_graph(sd, cfg, tokens).data


def test_batch_step_averages_document_losses():
    cfg = config_from_dict(tiny_config_dict())
    w = init_weights(cfg.model, 5, random.Random(2))
    docs = [[4, 0, 1, 4], [4, 2, 3, 1, 0, 4]]
    be = PythonBackend(cfg, 5, w, docs)
    loss = be.step(docs, 0.0, 0)
    singles = [PythonBackend(cfg, 5, w, docs).doc_loss(d) for d in docs]
    assert loss == pytest.approx(sum(singles) / 2, rel=1e-12)
