"""Kernels: pure array functions, each a *_forward / *_backward pair, testable and timeable alone."""
