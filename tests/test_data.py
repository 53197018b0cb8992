"""Data: Gutenberg stripping of every Alice edition, chunking, lines, tokenizer, split, resolution order."""

import hashlib
import os

import pytest

from conftest import shared_file
from microgpt.config import load_scenario
from microgpt.data import (CENSUS_SOURCE, Tokenizer, candidate_paths, chunk_text, collapse_whitespace, find_data_file,
                           gutenberg_body, load_dataset, split_lines, split_train_val, text_to_docs)
from microgpt.errors import DataError

LICENCE_WORDS = ("Project Gutenberg", "PROJECT GUTENBERG", "License", "LICENSE", "license", "eBook", "EBOOK")


@pytest.mark.parametrize("fname", ["alice.txt", "alice_ascii.txt", "alice_2025.txt"])
def test_every_alice_edition_gives_a_clean_body(fname):
    with open(shared_file(fname), encoding="utf-8") as f:
        text = f.read()
    body = collapse_whitespace(gutenberg_body(text))
    assert body.startswith("CHAPTER I. Down the Rabbit-Hole Alice was beginning to get very tired")
    assert body.endswith("and the happy summer days. THE END")
    for word in LICENCE_WORDS:
        assert word not in body, word
    assert "\ufeff" not in body and "  " not in body and "\n" not in body
    docs = text_to_docs(text, load_scenario("alice").data)
    assert all(len(d) == 128 for d in docs[:-1]) and 0 < len(docs[-1]) <= 128
    assert docs[1][:64] == docs[0][64:]


def test_gutenberg_body_without_markers_is_an_error():
    with pytest.raises(DataError, match="START"):
        gutenberg_body("just some text\nwithout markers\n")


def test_chunking_stride_overlap_and_tail():
    text = "abcdefghij"
    assert chunk_text(text, 4, 2) == ["abcd", "cdef", "efgh", "ghij"]
    assert chunk_text(text, 4, 0) == ["abcd", "efgh", "ij"]
    assert chunk_text(text, 20, 5) == [text]
    assert chunk_text("ab", 4, 3) == ["ab"]


def test_lines_are_stripped_and_empty_lines_dropped():
    assert split_lines("  emma\n\nolivia \n\n ava\n") == ["emma", "olivia", "ava"]


def test_tokenizer_ids_bos_and_unknown_characters():
    tok = Tokenizer.from_docs(["emma", "bob"])
    assert tok.uchars == ["a", "b", "e", "m", "o"]
    assert tok.bos == 5 and tok.vocab_size == 6
    assert tok.doc_tokens("bob") == [5, 1, 4, 1, 5]
    assert tok.doc_tokens("bob", trailing_bos=False) == [5, 1, 4, 1]
    assert tok.decode(tok.encode("mob")) == "mob"
    with pytest.raises(DataError, match="'z' is not in the model's vocabulary"):
        tok.encode("zed")


def test_split_holds_out_the_last_ten_percent_at_most_1000():
    assert [len(x) for x in split_train_val(list(range(32033)))] == [31033, 1000]
    assert [len(x) for x in split_train_val(list(range(50)))] == [45, 5]
    train, val = split_train_val(list(range(9)))
    assert len(train) == 9 and val == []


def test_resolution_order(tmp_path, monkeypatch):
    cfg = load_scenario("names")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROGPT_DATA_DIR", str(tmp_path / "env"))
    assert candidate_paths(cfg, "x.txt") == ["x.txt"]
    assert candidate_paths(cfg) == [str(tmp_path / "env" / "names.txt"), os.path.join("data", "names", "names.txt")]
    (tmp_path / "data" / "names").mkdir(parents=True)
    (tmp_path / "data" / "names" / "names.txt").write_text("cache\n")
    assert load_dataset(cfg).docs == ["cache"]
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "names.txt").write_text("env\n")
    ds = load_dataset(cfg)
    assert ds.docs == ["env"] and ds.sha256 == hashlib.sha256(b"env\n").hexdigest()
    (tmp_path / "mine.txt").write_text("explicit\n")
    assert load_dataset(cfg, "mine.txt").docs == ["explicit"]
    with pytest.raises(DataError, match="--data nope.txt: no such file"):
        load_dataset(cfg, "nope.txt")


def test_a_lookup_without_download_tries_the_extra_folders_after_the_cache(tmp_path, monkeypatch):
    cfg = load_scenario("names")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROGPT_DATA_DIR", str(tmp_path / "env"))
    extra = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert candidate_paths(cfg, extra_dirs=extra) == [str(tmp_path / "env" / "names.txt"),
                                                      os.path.join("data", "names", "names.txt"),
                                                      str(tmp_path / "a" / "names.txt"), str(tmp_path / "b" / "names.txt")]
    assert find_data_file(cfg, extra) is None
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "names.txt").write_text("b\n")
    assert find_data_file(cfg, extra) == str(tmp_path / "b" / "names.txt")
    (tmp_path / "data" / "names").mkdir(parents=True)
    (tmp_path / "data" / "names" / "names.txt").write_text("cache\n")
    assert find_data_file(cfg, extra) == os.path.join("data", "names", "names.txt")


def test_offline_names_falls_back_to_census_lists(tmp_path, monkeypatch, capsys):
    pytest.importorskip("names", reason="the 'data' extra provides the census fallback")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MICROGPT_DATA_DIR", raising=False)
    monkeypatch.setenv("MICROGPT_OFFLINE", "1")
    ds = load_dataset(load_scenario("names"))
    assert ds.source == CENSUS_SOURCE
    assert len(ds.docs) > 4000 and "mary" in ds.docs and all(d == d.lower() for d in ds.docs)
    assert "offline: using the US Census" in capsys.readouterr().out


def test_offline_alice_names_what_to_place_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MICROGPT_DATA_DIR", raising=False)
    monkeypatch.setenv("MICROGPT_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        load_dataset(load_scenario("alice"))
    msg = str(e.value)
    assert "alice.txt" in msg and os.path.join("data", "alice", "alice.txt") in msg and "MICROGPT_DATA_DIR" in msg


def test_a_derived_scenario_finds_its_parents_download_of_the_same_file(tmp_path, monkeypatch):
    """alice_v2 offline reads data/alice/alice.txt (same file, same URLs); a same-named file elsewhere does not count."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MICROGPT_DATA_DIR", raising=False)
    monkeypatch.setenv("MICROGPT_OFFLINE", "1")
    v2 = load_scenario("alice_v2")
    assert (v2.data.file, v2.data.urls) == (load_scenario("alice").data.file, load_scenario("alice").data.urls)
    (tmp_path / "data" / "alice").mkdir(parents=True)
    parent = os.path.join("data", "alice", v2.data.file)
    assert candidate_paths(v2) == [os.path.join("data", "alice_v2", v2.data.file)]  # nothing downloaded yet
    (tmp_path / parent).write_text("*** START OF THE PROJECT GUTENBERG EBOOK X ***\nAlice was here.\n"
                                   "*** END OF THE PROJECT GUTENBERG EBOOK X ***\n")
    assert candidate_paths(v2) == [os.path.join("data", "alice_v2", v2.data.file), parent]
    assert load_dataset(v2).source == os.path.abspath(parent)
    # a scenario of another file, or a user's config with other sources, does not borrow it
    names = load_scenario("names")
    (tmp_path / "data" / "alice" / names.data.file).write_text("not the names\n")
    assert os.path.join("data", "alice", names.data.file) not in candidate_paths(names)
    mine = v2.replace("data", urls=["https://example.org/other.txt"])
    assert parent not in candidate_paths(mine)
