"""microgpt: the smallest real GPT, in dependency-free Python, and the same model made fast.

Importing the package imports nothing outside the standard library; the array backends load
numpy and numba only when asked for (see microgpt.backends).
"""

__version__ = "0.1.0"
