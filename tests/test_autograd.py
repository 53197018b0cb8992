"""The Value engine: each operation's gradient against central finite differences."""

import math
import random
import sys

import pytest

from microgpt.autograd import Value, topological_order


def numeric_grad(f, xs, h=1e-6):
    grads = []
    for i in range(len(xs)):
        up = list(xs); up[i] += h
        dn = list(xs); dn[i] -= h
        grads.append((f(*up) - f(*dn)) / (2 * h))
    return grads


EXPRESSIONS = {
    "add_mul": lambda a, b, c: a * b + c * a,
    "sub_neg": lambda a, b, c: a - b - (-c) * 2,
    "div": lambda a, b, c: a / b + 3 / c,
    "rsub_pow": lambda a, b, c: 1 - a ** 3 + b ** -0.5,
    "exp_log": lambda a, b, c: (a * b).exp() + (c * c).log(),
    "relu": lambda a, b, c: (a - b).relu() * c + (b - a).relu(),
    "shared_node": lambda a, b, c: (lambda d: d * d + d * c)(a * b + 1),
}


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_gradients_match_finite_differences(name):
    f = EXPRESSIONS[name]
    rng = random.Random(0)
    for _ in range(5):
        xs = [rng.uniform(0.3, 2.0), rng.uniform(0.3, 2.0), rng.uniform(0.3, 2.0)]
        vals = [Value(x) for x in xs]
        out = f(*vals)
        out.backward()
        expected = numeric_grad(lambda *a: f(*[Value(x) for x in a]).data, xs)
        for v, g in zip(vals, expected):
            assert v.grad == pytest.approx(g, rel=1e-6, abs=1e-8), name


def test_forward_values_are_plain_arithmetic():
    a, b = Value(1.5), Value(-2.0)
    assert (a * b + a).data == 1.5 * -2.0 + 1.5
    assert (a / b).data == 1.5 * (-2.0) ** -1
    assert a.relu().data == 1.5 and b.relu().data == 0
    assert a.exp().data == math.exp(1.5)


def _recursive_order(root):
    topo, seen = [], set()

    def visit(v):
        if v not in seen:
            seen.add(v)
            for c in v._children:
                visit(c)
            topo.append(v)
    visit(root)
    return topo


def test_iterative_order_equals_recursive_depth_first_order():
    rng = random.Random(1)
    xs = [Value(rng.random()) for _ in range(6)]
    out = Value(0.0)
    for i in range(40):  # a graph with shared nodes and varied fan-in
        out = out * xs[i % 6] + xs[(i * 5) % 6].exp() * 0.1
    assert [id(v) for v in topological_order(out)] == [id(v) for v in _recursive_order(out)]


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Value(1.0)
    y = x
    for _ in range(sys.getrecursionlimit() * 3):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0
