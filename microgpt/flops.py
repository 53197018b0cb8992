"""The model's FLOPs and MFU: what a benchmark's time is measured against.

The formula and why it is written so are in docs/benchmarking.md; tests/test_flops.py
checks it against an operation-by-operation count.
"""

from __future__ import annotations


def matmul_params(model_cfg, vocab_size: int) -> int:
    """Weights that multiply activations: 12 C^2 per layer and lm_head (V x C).

    wte and wpe are looked up (one row per token), not multiplied, so they
    cost no FLOPs in the forward pass and a scatter-add in the backward.
    """
    C, L = model_cfg.n_embd, model_cfg.n_layer
    return L * 12 * C * C + vocab_size * C


def attention_flops(model_cfg, n: int) -> int:
    """Forward+backward FLOPs of the attention scores and weighted sums over a causal sequence of n positions.

    The query at position t attends to t+1 keys: q.k over C channels (all
    heads together) is 2C(t+1) FLOPs, att @ v another 2C(t+1); the backward
    is twice the forward. Summed over t = 0..n-1 and the L layers:
    12 L C * n(n+1)/2 = 6 L C n (n+1).
    """
    return 6 * model_cfg.n_layer * model_cfg.n_embd * n * (n + 1)


def flops_per_doc(model_cfg, vocab_size: int, n: int) -> int:
    """Forward+backward FLOPs of one document of n predicted positions (n = min(T, len - 1))."""
    return 6 * matmul_params(model_cfg, vocab_size) * n + attention_flops(model_cfg, n)


def flops_per_token(model_cfg, vocab_size: int, seq_len: int | None = None) -> int:
    """Forward+backward FLOPs per position of a sequence of `seq_len` positions (default block_size).

    6 N_matmul (2 for the forward multiply-add, 4 for the two backward
    products dx and dW) plus the causal attention term 6 L C (seq_len + 1).
    Softmax, rmsnorm, activation and Adam are not counted (as in the usual
    MFU convention); neither are embedding lookups.
    """
    n = model_cfg.block_size if seq_len is None else int(seq_len)
    if n < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    return 6 * matmul_params(model_cfg, vocab_size) + 6 * model_cfg.n_layer * model_cfg.n_embd * (n + 1)


def flops_for_docs(model_cfg, vocab_size: int, lengths) -> int:
    """Forward+backward FLOPs of a list of documents given their positions n (exact, no average)."""
    return sum(flops_per_doc(model_cfg, vocab_size, n) for n in lengths)


def mfu(tokens_per_s: float, flops_per_token: float, peak_gflops: float) -> float:
    """Model FLOP utilisation: achieved FLOP/s over the peak, a fraction (0.01 = 1 %)."""
    if peak_gflops <= 0:
        raise ValueError(f"peak_gflops must be > 0, got {peak_gflops}")
    return tokens_per_s * flops_per_token / (peak_gflops * 1e9)
