"""A scalar autograd engine: every number remembers how it was made.

Each `Value` keeps its children and the local derivative of itself with
respect to each child. `backward()` walks the graph in reverse topological
order and applies the chain rule. This is the whole of backpropagation; the
array backends do the same thing by hand, many numbers at a time.

The arithmetic (including `a / b == a * b**-1` and the order in which
gradients accumulate) is that of the reference microgpt, so its losses are
reproduced bit for bit.
"""

from __future__ import annotations

import math


class Value:
    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data  # the number, set by the forward pass
        self.grad = 0  # d(loss)/d(this), set by backward()
        self._children = children
        self._local_grads = local_grads  # d(this)/d(child) for each child

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1, 1))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, k):  # k is a plain number
        return Value(self.data ** k, (self,), (k * self.data ** (k - 1),))

    def log(self):
        return Value(math.log(self.data), (self,), (1 / self.data,))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def relu(self):
        return Value(max(0, self.data), (self,), (float(self.data > 0),))

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other ** -1

    def __rtruediv__(self, other):
        return other * self ** -1

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    def backward(self):
        """Fill `.grad` of every node this value depends on."""
        self.grad = 1
        for v in reversed(topological_order(self)):
            for child, local in zip(v._children, v._local_grads):
                child.grad += local * v.grad


def topological_order(root: Value) -> list[Value]:
    """Depth-first post-order of the graph below `root` (children before parents).

    Iterative, so deep graphs (long documents, many layers) do not hit
    Python's recursion limit, but it visits nodes in exactly the order a
    recursive depth-first search would, which fixes the order in which
    gradients are summed.
    """
    order, visited = [], {id(root)}
    stack = [(root, iter(root._children))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if id(child) not in visited:
                visited.add(id(child))
                stack.append((child, iter(child._children)))
                break
        else:
            stack.pop()
            order.append(node)
    return order
