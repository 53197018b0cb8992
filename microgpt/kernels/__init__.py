"""Kernels: pure array functions, each a *_forward / *_backward pair, testable and timeable alone.

Importing a kernel module compiles nothing and writes nothing (every @njit compiles at its first
call). Where Numba caches the compilations is microgpt/compile_cache.py's choice, made before a
kernel module is imported.
"""
