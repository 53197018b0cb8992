"""The reference backend: the GPT on scalar `Value`s, one position at a time.

This is the algorithm of the reference microgpt, line for line, with its RNG
order and its arithmetic, so it reproduces that program's numbers exactly. It
needs nothing but the standard library.

The same model functions also run on plain floats (validation, sampling): no
graph is built and the numbers are bit-identical to the `Value` path, because
every operation below is written the way `Value` computes it (a division is
`a * b ** -1`, sums are left folds starting from 0).
"""

from __future__ import annotations

import math

from .. import dropout
from ..autograd import Value
from ..config import Config
from ..params import param_shapes
from .base import Backend, Matrix


def _exp(x):
    # math.exp on both paths (Value.exp calls it), as the reference does: not the kernels' vector exp
    # (fused_simd.vexp), whose last bit may differ and which gives 0 where the result would be denormal
    return x.exp() if isinstance(x, Value) else math.exp(x)


def _log(x):
    if _data(x) <= 0:  # a probability that underflowed to 0: its loss is inf (training stops), never log(0)
        return Value(-math.inf, (x,), (math.inf,)) if isinstance(x, Value) else -math.inf
    return x.log() if isinstance(x, Value) else math.log(x)


def _relu(x):
    if isinstance(x, Value):
        return x.relu()
    return max(0, x)


def _data(x):
    return x.data if isinstance(x, Value) else x


def _sum(xs):
    # a left fold from 0, like sum() over Values (Python >= 3.12's float sum() compensates)
    acc = 0
    for x in xs:
        acc = acc + x
    return acc


def linear(x, w):
    """y = W x for a row-major [out][in] matrix."""
    return [_sum(wi * xi for wi, xi in zip(row, x)) for row in w]


def softmax(logits):
    max_val = max(_data(v) for v in logits)
    exps = [_exp(v - max_val) for v in logits]
    total = _sum(exps)
    return [e * total ** -1 for e in exps]  # a power node per element, as the reference builds it


def rmsnorm(x):
    ms = _sum(xi * xi for xi in x) * len(x) ** -1
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def activation(x, kind):
    if kind == "relu":
        return [_relu(xi) for xi in x]
    return [_relu(xi) ** 2 for xi in x]  # relu2


def _dropped(x, cfg: Config, drop_doc, li, site, pos):
    """x times its dropout mask (microgpt/dropout.py); x itself when nothing is dropped."""
    if drop_doc is None:
        return x
    seed, step, doc = drop_doc
    key = dropout.row_key(seed, step, doc, li, site, pos)
    return [xi * m for xi, m in zip(x, dropout.row_mask(key, len(x), cfg.training.dropout))]


def gpt(sd, cfg: Config, token, pos, keys, values, drop_doc=None):
    """Logits for the next token; appends this position's k, v to the caches.

    drop_doc: (seed, step, document of the step) in training with dropout, else None.
    """
    m = cfg.model
    hd = m.head_dim
    att_scale = (hd ** 0.5) ** -1
    x = [t + p for t, p in zip(sd["wte"][token], sd["wpe"][pos])]
    x = rmsnorm(x)  # not redundant: the residual stream starts from here
    for li in range(m.n_layer):
        residual = x
        x = rmsnorm(x)
        q = linear(x, sd[f"layer{li}.attn_wq"])
        k = linear(x, sd[f"layer{li}.attn_wk"])
        v = linear(x, sd[f"layer{li}.attn_wv"])
        keys[li].append(k)
        values[li].append(v)
        x_attn = []
        for h in range(m.n_head):
            s = h * hd
            q_h = q[s:s + hd]
            k_h = [kt[s:s + hd] for kt in keys[li]]
            v_h = [vt[s:s + hd] for vt in values[li]]
            att_logits = [_sum(q_h[j] * k_h[t][j] for j in range(hd)) * att_scale for t in range(len(k_h))]
            att = softmax(att_logits)
            x_attn.extend(_sum(att[t] * v_h[t][j] for t in range(len(v_h))) for j in range(hd))
        x = _dropped(linear(x_attn, sd[f"layer{li}.attn_wo"]), cfg, drop_doc, li, dropout.ATTN, pos)
        x = [a + b for a, b in zip(x, residual)]
        residual = x
        x = rmsnorm(x)
        x = linear(x, sd[f"layer{li}.mlp_fc1"])
        x = activation(x, m.activation)
        x = _dropped(linear(x, sd[f"layer{li}.mlp_fc2"]), cfg, drop_doc, li, dropout.MLP, pos)
        x = [a + b for a, b in zip(x, residual)]
    return linear(x, sd["lm_head"])


def doc_loss_graph(sd, cfg: Config, tokens, drop_doc=None):
    """Mean of -log p(target) over the document's n = min(T, len-1) positions (drop_doc: as for gpt)."""
    n = min(cfg.model.block_size, len(tokens) - 1)
    keys = [[] for _ in range(cfg.model.n_layer)]
    values = [[] for _ in range(cfg.model.n_layer)]
    losses = []
    for pos in range(n):
        probs = softmax(gpt(sd, cfg, tokens[pos], pos, keys, values, drop_doc))
        losses.append(-_log(probs[tokens[pos + 1]]))
    return (1 / n) * _sum(losses)


class PythonBackend(Backend):
    name = "python"

    def __init__(self, cfg: Config, vocab_size: int, weights: dict[str, Matrix], train_docs=None):
        super().__init__(cfg, vocab_size, weights, train_docs)
        self.names = list(param_shapes(cfg.model, vocab_size))
        self.sd = {n: [[Value(float(w)) for w in row] for row in weights[n]] for n in self.names}
        self.params = [p for n in self.names for row in self.sd[n] for p in row]
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)

    def step(self, docs, lr, step):
        t = self.cfg.training
        drop = t.dropout > 0
        doc_losses = [doc_loss_graph(self.sd, self.cfg, d, (t.seed, step, j) if drop else None)
                      for j, d in enumerate(docs)]
        loss = doc_losses[0] if len(doc_losses) == 1 else _sum(doc_losses) * (1 / len(doc_losses))
        loss.backward()
        b1, b2, decay = t.beta1, t.beta2, lr * t.weight_decay
        c1, c2 = 1 - b1 ** (step + 1), 1 - b2 ** (step + 1)
        m, v = self.m, self.v
        for i, p in enumerate(self.params):
            m[i] = b1 * m[i] + (1 - b1) * p.grad
            v[i] = b2 * v[i] + (1 - b2) * p.grad ** 2
            m_hat = m[i] / c1
            v_hat = v[i] / c2
            if decay:  # AdamW: from the weight before this step's update
                p.data -= decay * p.data
            p.data -= lr * m_hat / (v_hat ** 0.5 + t.eps)
            p.grad = 0
        return loss.data

    def float_weights(self):
        return {n: [[p.data for p in row] for row in self.sd[n]] for n in self.names}

    def doc_loss(self, tokens):
        return doc_loss_graph(self.float_weights(), self.cfg, tokens)

    def eval_loss(self, docs):
        w = self.float_weights()
        return _sum(doc_loss_graph(w, self.cfg, d) for d in docs) / len(docs)

    def new_cache(self):
        L = self.cfg.model.n_layer
        return {"w": self.float_weights(), "keys": [[] for _ in range(L)], "values": [[] for _ in range(L)]}

    def next_logits(self, cache, token, pos):
        return gpt(cache["w"], self.cfg, token, pos, cache["keys"], cache["values"])

    def get_weights(self):
        return self.float_weights()

    def _unflatten(self, flat):
        out, i = {}, 0
        for n in self.names:
            rows = []
            for row in self.sd[n]:
                rows.append(flat[i:i + len(row)])
                i += len(row)
            out[n] = rows
        return out

    def get_adam(self):
        return self._unflatten(list(self.m)), self._unflatten(list(self.v))

    def set_adam(self, m, v):
        self.m = [float(x) for n in self.names for row in m[n] for x in row]
        self.v = [float(x) for n in self.names for row in v[n] for x in row]
