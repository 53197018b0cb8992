"""microgpt.synthetic_data: a seeded stand-in corpus of each scenario's shape, as text, file and documents."""

from __future__ import annotations

import hashlib

from microgpt.config import load_scenario
from microgpt.data import load_dataset
from microgpt.synthetic_data import SYNTHETIC_SOURCE, synthetic_dataset, synthetic_text, write_synthetic_data

NAMES, ALICE = load_scenario("names"), load_scenario("alice")


def test_the_text_is_the_same_for_a_seed_and_another_for_another():
    """Seeded: two calls give the same corpus (benchmarks compare runs on it), another seed another."""
    assert synthetic_text(NAMES) == synthetic_text(NAMES)
    assert synthetic_text(NAMES, seed=1) != synthetic_text(NAMES)


def test_names_is_lowercase_names_one_a_line():
    """The lines format: 4,000 names of 3 to 9 letters a..z."""
    lines = synthetic_text(NAMES).split("\n")
    assert len(lines) == 4000
    assert all(line.isalpha() and line.islower() and 3 <= len(line) <= 9 for line in lines)


def test_alice_is_words_inside_the_gutenberg_markers_the_scenario_strips():
    """The chunks format with gutenberg on: the START/END markers around 25,000 words of lowercase letters."""
    assert ALICE.data.gutenberg
    text = synthetic_text(ALICE)
    assert text.startswith("*** START OF THE PROJECT GUTENBERG EBOOK SYNTHETIC ***\n")
    assert text.endswith("\n*** END OF THE PROJECT GUTENBERG EBOOK SYNTHETIC ***\n")
    words = text.split("\n")[1].split(" ")
    assert len(words) == 25_000 and all(w.isalpha() and w.islower() for w in words)


def test_the_file_and_the_dataset_are_the_same_documents(tmp_path):
    """write_synthetic_data's file, read by load_dataset, gives synthetic_dataset's documents and hash."""
    for cfg in (NAMES, ALICE):
        path = write_synthetic_data(cfg, str(tmp_path / cfg.name))
        assert path == str(tmp_path / cfg.name / cfg.data.file)
        from_file = load_dataset(cfg, path, quiet=True)
        ds = synthetic_dataset(cfg)
        assert ds.docs == from_file.docs and ds.source == SYNTHETIC_SOURCE
        assert ds.sha256 == from_file.sha256 == hashlib.sha256(synthetic_text(cfg).encode()).hexdigest()
