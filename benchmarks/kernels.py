"""Kernels alone (microgpt/kernels/): forward and backward, by size and dtype.

Sizes are those of the scenarios (`names`: T=16, C=16; `alice`: T=128, C=32)
and a `large` one where BLAS has work to do (common.SIZES). Inputs are seeded
standard normals; Numba kernels are compiled (or loaded from the cache) in
`setup`, so no timing includes a compile.

Where a backend runs another form of a kernel than the readable numpy one,
both are timed: the one the backend runs, and the plain numpy one as
`*_reference` (what it is checked against, not what trains). The fused
backend's own kernels are timed in tests/benchmarks/test_bench_kernels.py.
"""

from .common import DTYPES, SIZES, need, threading_layer_first

SIZE_NAMES = list(SIZES)


class _Kernel:
    params = (SIZE_NAMES, DTYPES)
    param_names = ["size", "dtype"]

    def setup(self, size, dtype):
        need("numpy", "numba")
        import numpy as np

        from microgpt.compile_cache import use_source_keyed_cache

        use_source_keyed_cache()  # before a kernel module is imported: Numba fixes its cache folder then

        self.np = np
        self.dims = SIZES[size]
        self.rng = np.random.default_rng(0)
        self.dtype = dtype

    def normal(self, *shape):
        return self.rng.standard_normal(shape).astype(self.dtype)


class Matmul(_Kernel):
    """The MLP's first matrix over a sequence: x (T, C) @ W^T, W (4C, C)."""

    def setup(self, size, dtype):
        super().setup(size, dtype)
        from microgpt.kernels.matmul import matmul_backward, matmul_forward

        T, C = self.dims["T"], self.dims["C"]
        self.fwd, self.bwd = matmul_forward, matmul_backward
        self.x, self.w, self.dy = self.normal(T, C), self.normal(4 * C, C), self.normal(T, 4 * C)

    def time_forward(self, size, dtype):
        self.fwd(self.x, self.w)

    def time_backward(self, size, dtype):
        self.bwd(self.dy, self.x, self.w)


class Attention(_Kernel):
    """One query over a full KV cache of T positions: the serial compiled kernel the `numpy` backend runs
    (`attention_*_into`, inside its position step), and the plain numpy reference."""

    def setup(self, size, dtype):
        super().setup(size, dtype)
        from microgpt.kernels import attention as A

        np = self.np
        T, C, H = self.dims["T"], self.dims["C"], self.dims["H"]
        self.A, self.H = A, H
        self.q, self.dout = self.normal(C), self.normal(C)
        self.k, self.v = self.normal(T, C), self.normal(T, C)
        _, self.att = A.attention_forward(self.q, self.k, self.v, H)
        self.out, self.att_out = np.empty(C, dtype), np.empty((H, T), dtype)
        self.dq, self.dk, self.dv = np.empty(C, dtype), np.zeros((T, C), dtype), np.zeros((T, C), dtype)
        # compile (or load) both kernels for this dtype before anything is timed
        self.time_forward(size, dtype)
        self.time_backward(size, dtype)

    def time_forward(self, size, dtype):
        self.A.attention_forward_into(self.out, self.att_out, self.q, self.k, self.v, self.H)

    def time_forward_reference(self, size, dtype):
        self.A.attention_forward(self.q, self.k, self.v, self.H)

    def time_backward(self, size, dtype):
        # dk, dv accumulate across calls, as a KV cache's gradient does: the same work every time
        self.A.attention_backward_into(self.dq, self.dk, self.dv, self.dout, self.q, self.k, self.v, self.att,
                                       self.H)

    def time_backward_reference(self, size, dtype):
        self.A.attention_backward(self.dout, self.q, self.k, self.v, self.att, self.H)


class CausalAttention(_Kernel):
    """All T queries of a sequence at once, masked: `causal_attention_*_fused`, what `numpy_batched` runs
    (BLAS products, a Numba softmax), and the plain numpy reference."""

    def setup(self, size, dtype):
        super().setup(size, dtype)
        from microgpt.kernels import causal_attention as CA

        T, C, H = self.dims["T"], self.dims["C"], self.dims["H"]
        self.CA, self.H = CA, H
        self.q, self.k, self.v, self.dout = (self.normal(T, C) for _ in range(4))
        _, self.att = CA.causal_attention_forward(self.q, self.k, self.v, H)
        threading_layer_first()  # the fused softmax may go parallel at the large size, as in training
        self.time_forward(size, dtype)  # compile (or load) the Numba softmax outside the timing
        self.time_backward(size, dtype)

    def time_forward(self, size, dtype):
        self.CA.causal_attention_forward_fused(self.q, self.k, self.v, self.H)

    def time_forward_reference(self, size, dtype):
        self.CA.causal_attention_forward(self.q, self.k, self.v, self.H)

    def time_backward(self, size, dtype):
        self.CA.causal_attention_backward_fused(self.dout, self.q, self.k, self.v, self.att, self.H)

    def time_backward_reference(self, size, dtype):
        self.CA.causal_attention_backward(self.dout, self.q, self.k, self.v, self.att, self.H)


class RMSNorm(_Kernel):
    def setup(self, size, dtype):
        super().setup(size, dtype)
        from microgpt.kernels.rmsnorm import rmsnorm_backward, rmsnorm_forward

        T, C = self.dims["T"], self.dims["C"]
        self.fwd, self.bwd = rmsnorm_forward, rmsnorm_backward
        self.x, self.dy = self.normal(T, C), self.normal(T, C)
        self.y, self.rstd = rmsnorm_forward(self.x)

    def time_forward(self, size, dtype):
        self.fwd(self.x)

    def time_backward(self, size, dtype):
        self.bwd(self.dy, self.y, self.rstd)


class CrossEntropy(_Kernel):
    """Softmax and cross-entropy of T predictions over V classes."""

    def setup(self, size, dtype):
        super().setup(size, dtype)
        from microgpt.kernels.xent import softmax_xent_backward, softmax_xent_forward

        T, V = self.dims["T"], self.dims["V"]
        self.fwd, self.bwd = softmax_xent_forward, softmax_xent_backward
        self.logits = self.normal(T, V)
        self.targets = self.rng.integers(0, V, size=T)
        self.dlosses = self.np.full(T, 1.0 / T, dtype=dtype)
        _, self.probs = softmax_xent_forward(self.logits, self.targets)

    def time_forward(self, size, dtype):
        self.fwd(self.logits, self.targets)

    def time_backward(self, size, dtype):
        self.bwd(self.dlosses, self.probs, self.targets)


class Adam:
    """One in-place Adam update over every parameter: the names model (4,192), alice (33,344), and 1M."""

    params = ([4192, 33344, 1_000_000], DTYPES)
    param_names = ["n_params", "dtype"]

    def setup(self, n_params, dtype):
        need("numpy", "numba")
        import numpy as np

        from microgpt.compile_cache import use_source_keyed_cache

        use_source_keyed_cache()  # before a kernel module is imported: Numba fixes its cache folder then

        from microgpt.kernels.adam import adam_step

        rng = np.random.default_rng(0)
        self.adam_step = adam_step
        self.p, self.g = (rng.standard_normal(n_params).astype(dtype) for _ in range(2))
        self.m = np.zeros(n_params, dtype=dtype)
        self.v = np.zeros(n_params, dtype=dtype)
        self.step = 0

    def time_step(self, n_params, dtype):
        self.adam_step(self.p, self.g, self.m, self.v, 1e-3, 0.9, 0.95, 1e-8, self.step)
        self.step += 1
