"""Fuzzing the two loaders of user files, config JSON and model.json, with hypothesis.

Whatever the bytes (random JSON, a valid file with one key mutated, deleted or added, NaN/Infinity
literals, huge and overlong numbers, deep nesting, truncation, garbled bytes), `load_config` either
returns a Config or raises ConfigError, and `checkpoint.load` either returns a Checkpoint that the
program can really use (a backend built from it samples and trains a step) or raises
CheckpointError: each time with one line that starts with the file's path and, for a mutated
key, names it. Never another exception.

Default: 500 examples per property. Longer: MICROGPT_HYPOTHESIS_PROFILE=ci-long (5,000 each).
"""

import copy
import json
import math
import os
import random
import re
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import tiny_config_dict
from reliability_support import FUZZ

from microgpt import checkpoint
from microgpt.backends.python import PythonBackend
from microgpt.checkpoint import Checkpoint
from microgpt.config import config_from_dict, load_config, load_scenario
from microgpt.errors import CheckpointError, ConfigError, MicrogptError
from microgpt.params import init_weights
from microgpt.sampling import sample
from microgpt.train import _broke_down

# -- what the fuzzer feeds ---------------------------------------------------------------------------

leaves = st.one_of(
    st.none(), st.booleans(), st.text(max_size=12),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.sampled_from([0, 1, -1, 2 ** 53, 2 ** 53 + 1, 10 ** 400, -(10 ** 400), 4, 16, 27]),
    st.floats(),  # NaN and +-inf included: json.dumps writes them as NaN / Infinity literals
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.5, 1e-8]),
)
json_values = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                              max_size=4),
                           max_leaves=12)
# literals that replace a number in the text (some are not even Python-json-encodable values)
literals = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, "-" + "9" * 5000,
                            "1" * 400, "1e-400", "-0", "0.0", "true", "null", '""', "[]", "{}", '"\\ud800"',
                            '"a\\u0000b"', '"\\n"', "[" * 3000 + "]" * 3000, "[" * 100_000 + "]" * 100_000])


def draw_path(data, doc):
    """A random path into `doc` (root included), descending one level at a time."""
    path, node = [], doc
    while isinstance(node, (dict, list)) and node and data.draw(st.integers(0, 3)) > 0:
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    return path


def mutate(data, doc):
    """One mutation of `doc` (a deep copy): (kind, path, extra key or None, new document)."""
    doc = copy.deepcopy(doc)
    path = draw_path(data, doc)
    kind = data.draw(st.sampled_from(["replace", "delete", "add"]))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    node = parent[path[-1]] if path else doc
    extra = None
    if kind == "delete" and path:
        del parent[path[-1]]
    elif kind == "add" and isinstance(node, dict):
        extra = data.draw(st.text(max_size=10).filter(lambda k: k not in node))
        node[extra] = data.draw(json_values)
    elif kind == "add" and isinstance(node, list):
        node.append(data.draw(json_values))
    else:
        kind = "replace"
        value = data.draw(json_values)
        if path:
            parent[path[-1]] = value
        else:
            doc = value
    return kind, path, extra, doc


def garble(data, text: str) -> bytes:
    """Text-level damage: truncation, random bytes, or a number replaced by a strange literal."""
    raw = text.encode("utf-8")
    how = data.draw(st.sampled_from(["truncate", "bytes", "insert", "literal"]))
    if how == "truncate":
        return raw[:data.draw(st.integers(0, len(raw)))]
    if how in ("bytes", "insert"):
        at = data.draw(st.integers(0, len(raw)))
        junk = data.draw(st.binary(min_size=1, max_size=8))
        return raw[:at] + junk + raw[at + (len(junk) if how == "bytes" else 0):]
    numbers = [m.span() for m in re.finditer(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text)]
    start, end = data.draw(st.sampled_from(numbers))
    return (text[:start] + data.draw(literals) + text[end:]).encode("utf-8")


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield d


def write(folder, name, payload) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass"))
    return path


def dumps(doc) -> str:
    return json.dumps(doc, allow_nan=True)


def assert_good_message(e: MicrogptError, path: str, *names: str):
    msg = str(e)
    assert msg.startswith(path + ": "), msg
    assert "\n" not in msg and "\r" not in msg and len(msg) < 600, msg
    if names:
        assert any(n in msg for n in names), (names, msg)


# -- the config loader ----------------------------------------------------------------------------------

VALID_CONFIGS = [load_scenario("names").to_dict(), load_scenario("alice").to_dict(), tiny_config_dict()]
RELATED = {"n_embd": ["n_head"], "n_head": ["n_embd"], "format": ["chunk_size"], "chunk_size": ["format"],
           "chunk_overlap": ["chunk_size"]}


def load_config_or_error(path):
    try:
        cfg = load_config(path)
    except ConfigError as e:
        return e
    assert config_from_dict(cfg.to_dict()) == cfg  # what loads is valid through and through
    return None


@FUZZ
@given(doc=json_values)
def test_config_loader_random_json(scratch, doc):
    path = write(scratch, "random.json", dumps(doc))
    e = load_config_or_error(path)
    if e is not None:
        assert_good_message(e, path)


def key_names(path, extra):
    """What a message about a mutation at `path` must mention: the key, or one it is checked against."""
    keys = [k for k in path if isinstance(k, str)]
    if extra is not None:  # shown bare, or quoted and cut to 40 characters
        return [extra, json.dumps(extra)[:30]]
    if not keys:
        return []
    return [keys[-1], *RELATED.get(keys[-1], [])]


@FUZZ
@given(data=st.data(), which=st.integers(0, len(VALID_CONFIGS) - 1))
def test_config_loader_one_mutation_names_the_key(scratch, data, which):
    kind, key_path, extra, doc = mutate(data, VALID_CONFIGS[which])
    path = write(scratch, "mutated.json", dumps(doc))
    e = load_config_or_error(path)
    if e is not None:
        assert_good_message(e, path, *key_names(key_path, extra))


@FUZZ
@given(data=st.data(), which=st.integers(0, len(VALID_CONFIGS) - 1))
def test_config_loader_damaged_text(scratch, data, which):
    path = write(scratch, "damaged.json", garble(data, json.dumps(VALID_CONFIGS[which], indent=1)))
    e = load_config_or_error(path)
    if e is not None:
        assert_good_message(e, path)


@pytest.mark.parametrize("depth", [1, 10, 500, 900, 990, 1000, 5000, 200_000])
@pytest.mark.parametrize("where", ["model.n_embd", "data.urls", "name", "top"])
def test_config_loader_deep_nesting(scratch, depth, where):
    doc = copy.deepcopy(VALID_CONFIGS[0])
    nest = "[" * depth + "1" + "]" * depth
    if where == "top":
        text = nest
    else:
        marker = "__NEST__"
        section, _, key = where.rpartition(".")
        (doc[section] if section else doc)[key] = marker
        text = json.dumps(doc).replace(f'"{marker}"', nest)
    path = write(scratch, "deep.json", text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert_good_message(e.value, path, *(["nested too deeply", where.split(".")[-1]] if where != "top" else []))


@pytest.mark.parametrize("payload, fragment", [
    (b"", "not valid JSON"),
    (b"\xff\xfe{}", "cannot read"),
    (b"\x00" * 10, "not valid JSON"),
    (b'{"name": "x\\u0000y"}', "name"),
    (b'{"name": "\\ud800"}', "name"),
    (b'{"name": "' + b"n" * 300 + b'"}', "name"),
    (b'{"data": {"file": "a\\u0000b"}}', "data.file"),
    (b'{"model": {"n_embd": ' + b"9" * 5000 + b"}}", "5000 digits"),
    (b'{"training": {"learning_rate": NaN}}', "training.learning_rate"),
    (b'{"training": {"learning_rate": 1e999}}', "training.learning_rate"),
    (b'{"training": {"num_steps": 1e3}}', "training.num_steps"),
    (b'{"model": {"\\n": 1}}', '"\\n": unknown key'),
    (b"[1, 2]", "top level must be an object"),
], ids=["empty", "utf16-bom", "nul-bytes", "nul-in-name", "surrogate-name", "long-name", "nul-in-file",
        "5000-digits", "nan", "1e999", "float-steps", "newline-key", "list"])
def test_config_loader_named_cases(scratch, payload, fragment):
    path = write(scratch, "case.json", payload)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert_good_message(e.value, path, fragment)


def test_config_with_a_byte_order_mark_loads(scratch):
    """Editors on Windows save UTF-8 with a BOM: that is still the same JSON."""
    path = write(scratch, "bom.json", b"\xef\xbb\xbf" + json.dumps(VALID_CONFIGS[2]).encode())
    assert load_config(path).model.n_embd == 8


# -- the checkpoint loader ------------------------------------------------------------------------------


def tiny_checkpoint_doc() -> dict:
    cfg = config_from_dict(tiny_config_dict(n_embd=2, n_head=2, block_size=4))
    uchars = list("abcde")
    rng = random.Random(3)
    weights = init_weights(cfg.model, len(uchars) + 1, rng)
    moments = init_weights(cfg.model, len(uchars) + 1, rng)
    squares = {n: [[x * x for x in row] for row in m] for n, m in moments.items()}
    state = {"step": 3, "adam_m": moments, "adam_v": squares,
             "rng_state": checkpoint.rng_state_to_json(rng.getstate())}
    ck = Checkpoint(cfg, uchars, weights, {"source": "test", "sha256": "0" * 64}, "python", "float64", state)
    with tempfile.TemporaryDirectory() as d:
        checkpoint.save(os.path.join(d, "m.json"), ck)
        with open(os.path.join(d, "m.json")) as f:
            return json.load(f)


VALID_CHECKPOINT = tiny_checkpoint_doc()


def use(ck: Checkpoint):
    """What train --resume and generate do with a loaded checkpoint; MicrogptError is the only failure allowed."""
    backend = PythonBackend(ck.config, ck.vocab_size, ck.weights, [[ck.vocab_size - 1, 0, 1, ck.vocab_size - 1]])
    rng = random.Random(0)
    if ck.train_state is not None:
        backend.set_adam(ck.train_state["adam_m"], ck.train_state["adam_v"])
        if ck.train_state.get("rng_state"):
            rng.setstate(checkpoint.rng_state_from_json(ck.train_state["rng_state"]))
    try:
        sample(backend, rng, [0], 0.7, max_tokens=3)
    except MicrogptError:
        pass
    try:
        loss = backend.train_steps(ck.train_state["step"] if ck.train_state else 0, 1)[0]
        assert isinstance(loss, float)
    except (ArithmeticError, ValueError) as e:
        assert _broke_down(e), e  # what the training loop turns into TrainingDiverged


def load_checkpoint_or_error(path):
    try:
        ck = checkpoint.load(path)
    except CheckpointError as e:
        return e
    use(ck)
    return None


def test_the_valid_checkpoint_loads_and_is_usable(scratch):
    path = write(scratch, "valid.json", dumps(VALID_CHECKPOINT))
    assert load_checkpoint_or_error(path) is None


@FUZZ
@given(doc=json_values)
def test_checkpoint_loader_random_json(scratch, doc):
    path = write(scratch, "random.json", dumps(doc))
    e = load_checkpoint_or_error(path)
    assert e is not None  # random JSON is never a model
    assert_good_message(e, path)


CHECKPOINT_ALIASES = {"config": ["weights", "train_state"], "uchars": ["weights"], "backend": ["dtype"],
                      "dtype": ["backend"]}


def checkpoint_names(path, extra):
    if not path:
        return [extra, json.dumps(extra)[:30]] if extra is not None else []
    top = path[0]
    names = [top, *CHECKPOINT_ALIASES.get(top, [])]
    if top == "config":
        names += key_names(path[1:], extra)
    return names


@FUZZ
@given(data=st.data())
def test_checkpoint_loader_one_mutation_names_the_key(scratch, data):
    kind, key_path, extra, doc = mutate(data, VALID_CHECKPOINT)
    path = write(scratch, "mutated.json", dumps(doc))
    e = load_checkpoint_or_error(path)
    if e is not None:
        assert_good_message(e, path, *checkpoint_names(key_path, extra))


@FUZZ
@given(data=st.data())
def test_checkpoint_loader_damaged_text(scratch, data):
    path = write(scratch, "damaged.json", garble(data, dumps(VALID_CHECKPOINT)))
    e = load_checkpoint_or_error(path)
    if e is not None:
        assert_good_message(e, path)


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@pytest.mark.parametrize("path, value, fragment", [
    (["weights", "wte", 0, 0], 10 ** 400, "weights.wte"),  # an int too large for a float
    (["weights", "wte", 0, 0], 1e308, None),  # finite: loads; sampling then reports unusable weights
    (["train_state", "adam_v", "wte", 0, 0], -1.0, "train_state.adam_v"),  # sqrt of a negative moment
    (["train_state", "step"], 10 ** 9, "train_state.step"),  # beyond the run
    (["train_state", "step"], True, "train_state.step"),
    (["train_state", "rng_state", 0], 2, "train_state.rng_state"),  # Random.setstate would raise
    (["train_state", "rng_state", 1, 624], 10 ** 6, "train_state.rng_state"),
    (["train_state", "rng_state", 1, 0], 2 ** 40, "train_state.rng_state"),
    (["train_state", "rng_state", 2], "x", "train_state.rng_state"),
    (["uchars", 0], "\ud800", "uchars"),
    (["version"], True, "version"),
    (["version"], [[[[1]]]], "version"),
    (["dtype"], "float16", "dtype"),
    (["config", "name"], "a/b", "name"),
], ids=["int-too-large", "1e308-loads", "negative-adam-v", "step-beyond-run", "step-true", "rng-version",
        "rng-index", "rng-word-too-large", "rng-gauss-string", "uchars-surrogate", "version-true", "version-nested",
        "dtype-float16", "config-name-slash"])
def test_checkpoint_loader_named_cases(scratch, path, value, fragment):
    doc = copy.deepcopy(VALID_CHECKPOINT)
    _set(doc, path, value)
    file = write(scratch, "case.json", dumps(doc))
    e = load_checkpoint_or_error(file)
    if fragment is None:
        assert e is None
    else:
        assert e is not None, f"{path} = {value!r} loaded"
        assert_good_message(e, file, fragment)


@pytest.mark.parametrize("depth", [10, 900, 990, 5000, 200_000])
def test_checkpoint_loader_deep_nesting(scratch, depth):
    doc = dict(VALID_CHECKPOINT, backend="__NEST__")
    text = dumps(doc).replace('"__NEST__"', "[" * depth + "]" * depth)
    path = write(scratch, "deep.json", text)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert_good_message(e.value, path, "backend", "nested too deeply")


def test_huge_but_finite_weights_load_and_sampling_says_they_are_unusable(scratch):
    doc = copy.deepcopy(VALID_CHECKPOINT)
    doc["weights"] = {n: [[1e308 for _ in row] for row in m] for n, m in doc["weights"].items()}
    ck = checkpoint.load(write(scratch, "huge.json", dumps(doc)))
    backend = PythonBackend(ck.config, ck.vocab_size, ck.weights)
    with pytest.raises(MicrogptError, match="unusable"):
        sample(backend, random.Random(0), [], 0.5)
    assert math.isfinite(1e308)
