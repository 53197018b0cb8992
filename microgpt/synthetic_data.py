"""A seeded stand-in for a scenario's data file, of the same shape: what benchmarks train on without it.

Benchmarks never download: where the real file is not found they train on this corpus
(`synthetic_dataset`), and tools that take a --data path get it as a file (`write_synthetic_data`),
so that both train on the same documents.
"""

from __future__ import annotations

import hashlib
import os
import random

from .data import Dataset, text_to_docs


def synthetic_text(cfg, seed: int = 1234) -> str:
    """A seeded stand-in for the scenario's data file: short lowercase names one per line, or
    word-like text (inside Gutenberg markers when the scenario strips them)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    if cfg.data.format == "lines":
        return "\n".join("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(4000))
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 8))) for _ in range(400)]
    text = " ".join(rng.choice(words) for _ in range(25_000))
    if cfg.data.gutenberg:
        text = f"*** START OF THE PROJECT GUTENBERG EBOOK SYNTHETIC ***\n{text}\n*** END OF THE PROJECT GUTENBERG EBOOK SYNTHETIC ***\n"
    return text


SYNTHETIC_SOURCE = "synthetic (microgpt.synthetic_data.synthetic_text, seed 1234)"


def write_synthetic_data(cfg, folder: str) -> str:
    """Write the synthetic stand-in as <folder>/<data file> (for tools that take --data); its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, cfg.data.file)
    with open(path, "w", encoding="utf-8") as f:
        f.write(synthetic_text(cfg))
    return path


def synthetic_dataset(cfg) -> Dataset:
    """The synthetic corpus as documents, as load_dataset would make them of its file."""
    text = synthetic_text(cfg)
    return Dataset(text_to_docs(text, cfg.data), SYNTHETIC_SOURCE, hashlib.sha256(text.encode()).hexdigest())
