"""Training data: where the file comes from, how it becomes documents and tokens.

    file on disk ──read──▶ text ──(gutenberg body, whitespace)──▶ documents ──▶ token ids

Resolution order for the data file (SPEC §4): an explicit path (`--data`),
`$MICROGPT_DATA_DIR/<file>`, the local cache `data/<scenario>/<file>`, then a
download into that cache. `MICROGPT_OFFLINE=1` forbids the download. `find_data_file` is the
same search without the download, with extra folders after the cache (the benchmarks' own).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from . import envvars
from .config import Config, DataConfig, load_scenario, scenario_names
from .errors import DataError

CACHE_DIR = "data"
CENSUS_SOURCE = "US Census first names (the 'names' package on PyPI)"


@dataclass
class Dataset:
    docs: list[str]  # documents in file order (before the shuffle)
    source: str  # where the text came from: a path, a URL, or the census fallback
    sha256: str  # of the raw bytes that were read


# ----------------------------------------------------------------------------
# text -> documents


_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.I | re.M)
_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.I | re.M)
_END_NOTE = re.compile(r"^\s*End of (?:the )?Project Gutenberg", re.I | re.M)
_FIRST_CHAPTER = re.compile(r"^CHAPTER (?:I|1)\b", re.M)


def gutenberg_body(text: str) -> str:
    """The book between the Gutenberg START and END markers, front matter dropped.

    Works for every edition in shared/data: curly or straight apostrophes,
    'THE'/'THIS', bare 'EBOOK 11' markers, with or without a header before
    the START marker. When the book has an unindented first-chapter heading,
    the body starts there (a table of contents indents its entries).
    """
    text = text.lstrip("\ufeff")
    start, end = _START.search(text), _END.search(text)
    if start is None or end is None or end.start() < start.end():
        missing = "START" if start is None else "END"
        raise DataError(f"not a Project Gutenberg text: no '*** {missing} OF THE PROJECT GUTENBERG EBOOK ... ***' "
                        "marker found (set data.gutenberg to false for a plain text file)")
    body = text[start.end():end.start()]
    note = _END_NOTE.search(body)  # older editions end with 'End of Project Gutenberg's ...'
    if note:
        body = body[:note.start()]
    chapter = _FIRST_CHAPTER.search(body)
    if chapter:
        body = body[chapter.start():]
    return body


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def chunk_text(text: str, size: int, overlap: int) -> list[str]:
    """Chunks of `size` characters starting every `size - overlap` characters.

    The last chunk may be shorter; a chunk made only of characters the previous
    chunk already had is not emitted.
    """
    stride = size - overlap
    last_start = max(len(text) - overlap, 1)
    return [text[i:i + size] for i in range(0, last_start, stride) if text[i:i + size]]


def split_lines(text: str) -> list[str]:
    # exactly the reference: strip the file, split on newlines, strip each, drop empties
    return [line.strip() for line in text.strip().split("\n") if line.strip()]


def text_to_docs(text: str, dcfg: DataConfig) -> list[str]:
    if dcfg.gutenberg:
        text = gutenberg_body(text)
    if dcfg.format == "lines":
        return split_lines(text)
    return chunk_text(collapse_whitespace(text), dcfg.chunk_size, dcfg.chunk_overlap)


# ----------------------------------------------------------------------------
# finding the file


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def download(url: str, dest: str, sha256: str | None = None, timeout: float = 30.0) -> bytes:
    """Fetch `url` into `dest` atomically; verify the sha256 when one is given."""
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=timeout) as r:
        raw = r.read()
    if sha256 is not None and _sha256(raw) != sha256:
        raise DataError(f"{url}: sha256 {_sha256(raw)} does not match the expected {sha256}; not saved")
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    tmp = f"{dest}.part{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(raw)
    os.replace(tmp, dest)
    return raw


def census_names() -> list[str] | None:
    """First names from the US Census lists the `names` package ships, or None without it."""
    try:
        import names  # noqa: F401  (optional extra 'data')
    except ImportError:
        return None
    folder = os.path.dirname(names.__file__)
    out = set()
    for fname in ("dist.female.first", "dist.male.first"):
        path = os.path.join(folder, fname)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out.update(line.split()[0].lower() for line in f if line.strip())
    return sorted(out) or None


def cache_path(cfg: Config) -> str:
    """Where a download of the scenario's file goes: data/<scenario>/<file>."""
    return os.path.join(CACHE_DIR, cfg.name, cfg.data.file)


def sibling_caches(cfg: Config) -> list[str]:
    """Other scenarios' downloads of the same file from the same sources (alice_v2 reads alice's), sorted.

    Only the cache folders of built-in scenarios count, and only those whose config names the same file
    and the same download URLs: a folder that merely holds a file of that name is not the same data.
    """
    found = []
    for name in scenario_names():
        if name == cfg.name:
            continue
        path = os.path.join(CACHE_DIR, name, cfg.data.file)
        if os.path.isfile(path):
            other = load_scenario(name).data
            if (other.file, list(other.urls)) == (cfg.data.file, list(cfg.data.urls)):
                found.append(path)
    return found


def candidate_paths(cfg: Config, data_path: str | None = None, extra_dirs=()) -> list[str]:
    """The places the data file is looked for, in order; `extra_dirs` (folders) come after the cache.

    The cache is the scenario's own folder, then (where they exist) other scenarios' downloads of the
    same file from the same sources, so a derived scenario offline finds what its parent downloaded.
    """
    if data_path:
        return [data_path]
    paths = []
    env = envvars.folder("MICROGPT_DATA_DIR")
    if env:
        paths.append(os.path.join(env, cfg.data.file))
    paths.append(cache_path(cfg))
    paths += sibling_caches(cfg) if cfg.data.urls else []
    paths += [os.path.join(folder, cfg.data.file) for folder in extra_dirs]
    return paths


def find_data_file(cfg: Config, extra_dirs=()) -> str | None:
    """The first of `candidate_paths` that is a file, or None: a lookup that never downloads."""
    return next((path for path in candidate_paths(cfg, extra_dirs=extra_dirs) if os.path.isfile(path)), None)


def _offline_message(cfg: Config, paths: list[str], why: str) -> str:
    where = " or ".join(paths)
    urls = ", ".join(cfg.data.urls) or "(no download URL in the config)"
    return (f"no data for scenario '{cfg.name}': {why}. Place {cfg.data.file} at {where} "
            f"(from {urls}), set MICROGPT_DATA_DIR to a folder holding it, or pass --data PATH")


def load_dataset(cfg: Config, data_path: str | None = None, quiet: bool = False) -> Dataset:
    """Find (or download) the scenario's file and turn it into documents."""
    paths = candidate_paths(cfg, data_path)
    for path in paths:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                raw = f.read()
            return Dataset(_docs(raw, path, cfg), os.path.abspath(path), _sha256(raw))
    if data_path:
        what = "a folder, not a file" if os.path.isdir(data_path) else "no such file"
        raise DataError(f"--data {data_path}: {what}")

    cache = cache_path(cfg)
    errors = []
    if envvars.flag("MICROGPT_OFFLINE"):
        errors.append("MICROGPT_OFFLINE=1 forbids downloads")
    else:
        for url in cfg.data.urls:
            try:
                raw = download(url, cache, cfg.data.sha256)
                return Dataset(_docs(raw, cache, cfg), url, _sha256(raw))
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
        if not cfg.data.urls:
            errors.append("the config has no download URL")

    if cfg.data.format == "lines" and cfg.data.file == "names.txt":
        docs = census_names()
        if docs is not None:
            if not quiet:
                print(f"offline: using the {CENSUS_SOURCE} instead of names.txt ({len(docs)} names)")
            return Dataset(docs, CENSUS_SOURCE, _sha256("\n".join(docs).encode()))
        errors.append("the 'names' package (pip install 'microgpt[data]') is not installed for the offline fallback")
    raise DataError(_offline_message(cfg, paths, "; ".join(errors)))


def _docs(raw: bytes, path: str, cfg: Config) -> list[str]:
    text = _decode(raw, path)  # its error already names the file
    try:
        docs = text_to_docs(text, cfg.data)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    if not docs:
        raise DataError(f"{path}: contains no documents")
    return docs


# ----------------------------------------------------------------------------
# documents -> tokens


class Tokenizer:
    """Characters to ids: `uchars` sorted, BOS is the id after the last character."""

    def __init__(self, uchars: list[str]):
        self.uchars = list(uchars)
        self.index = {c: i for i, c in enumerate(self.uchars)}
        self.bos = len(self.uchars)
        self.vocab_size = len(self.uchars) + 1

    @classmethod
    def from_docs(cls, docs: list[str]) -> "Tokenizer":
        return cls(sorted(set("".join(docs))))

    def encode(self, text: str) -> list[int]:
        for ch in text:
            if ch not in self.index:
                raise DataError(f"character {ch!r} is not in the model's vocabulary "
                                f"({''.join(self.uchars)!r})")
        return [self.index[ch] for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.uchars[i] for i in ids if i != self.bos)

    def doc_tokens(self, doc: str, trailing_bos: bool = True) -> list[int]:
        return [self.bos] + self.encode(doc) + ([self.bos] if trailing_bos else [])


def split_train_val(docs: list) -> tuple[list, list]:
    """The last min(1000, 10%) of the (shuffled) documents are held out."""
    n_val = min(1000, len(docs) // 10)
    return docs[:len(docs) - n_val], docs[len(docs) - n_val:]
