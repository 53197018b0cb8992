"""Scenario configs: one `Config` object, loaded from JSON and validated.

A config has four sections (data, model, training, sampling). Every key is
checked: an unknown key, a value of the wrong type or an impossible value is a
`ConfigError` that names the file and the dotted key, e.g.
`configs/mine.json: model.n_head: n_embd (30) must be divisible by n_head (4)`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .backends.registry import AUTO_RULE, DTYPES, backend_choices
from .errors import ConfigError

_HERE = os.path.dirname(os.path.abspath(__file__))
# a checkout keeps the scenarios in configs/ at the root; a wheel ships them as microgpt/configs/
CONFIG_DIR = next((d for d in (os.path.join(os.path.dirname(_HERE), "configs"), os.path.join(_HERE, "configs"))
                   if os.path.isdir(d)), os.path.join(_HERE, "configs"))


def _positive(x):
    return None if x > 0 else "must be > 0"


def _at_least(lo):
    return lambda x: None if x >= lo else f"must be >= {lo}"


def _unit_interval(x):
    return None if 0 <= x < 1 else "must be in [0, 1)"


def _one_of(*choices):
    return lambda x: None if x in choices else f"must be one of {', '.join(map(repr, choices))}"


def _backend_name(x):
    return _one_of(*backend_choices())(x)  # read when checked: a backend registered later is accepted


def _spec(default, types, check=None, doc=""):
    """A dataclass field that carries its JSON types and its value check."""
    kw = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(metadata={"types": types, "check": check, "doc": doc}, **kw)


INT = (int,)
NUM = (int, float)


@dataclass
class DataConfig:
    file: str = _spec("names.txt", (str,), doc="file name, looked up in --data, $MICROGPT_DATA_DIR, data/<scenario>/")
    format: str = _spec("lines", (str,), _one_of("lines", "chunks"), "lines: one document per line; chunks: fixed-size chunks of the text")
    urls: list = _spec([], (list,), doc="download sources, tried in order")
    sha256: Any = _spec(None, (str, type(None)), doc="expected sha256 of the downloaded file, or null")
    gutenberg: bool = _spec(False, (bool,), doc="strip a Project Gutenberg header and licence")
    chunk_size: Any = _spec(None, (int, type(None)), doc="characters per chunk (format chunks)")
    chunk_overlap: int = _spec(0, INT, _at_least(0), "characters shared by consecutive chunks")
    trailing_bos: bool = _spec(True, (bool,), doc="end every document with BOS")


@dataclass
class ModelConfig:
    n_embd: int = _spec(16, INT, _at_least(1), "embedding width C")
    n_head: int = _spec(4, INT, _at_least(1), "attention heads H")
    n_layer: int = _spec(1, INT, _at_least(1), "transformer blocks L")
    block_size: int = _spec(16, INT, _at_least(1), "context length T")
    activation: str = _spec("relu", (str,), _one_of("relu", "relu2"), "MLP non-linearity")
    init_std: float = _spec(0.08, NUM, _at_least(0), "std of the Gaussian initialisation")
    zero_init_proj: bool = _spec(False, (bool,), doc="initialise attn_wo and mlp_fc2 to zero")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


@dataclass
class TrainingConfig:
    optimizer: str = _spec("adam", (str,), _one_of("adam"), "optimizer")
    learning_rate: float = _spec(0.01, NUM, _positive, "peak learning rate")
    beta1: float = _spec(0.85, NUM, _unit_interval, "Adam beta1")
    beta2: float = _spec(0.99, NUM, _unit_interval, "Adam beta2")
    eps: float = _spec(1e-8, NUM, _positive, "Adam epsilon")
    weight_decay: float = _spec(0.0, NUM, _at_least(0), "decoupled weight decay (AdamW): each step also takes "
                                "lr_t * weight_decay * p off every parameter p; 0 is SPEC's Adam")
    dropout: float = _spec(0.0, NUM, _unit_interval, "residual dropout: the probability of zeroing each output of "
                           "attn_wo and mlp_fc2 in training, masks hashed from (seed, step, document, ...), "
                           "not drawn (microgpt/dropout.py); 0 is SPEC's model")
    schedule: str = _spec("linear", (str,), _one_of("linear", "cosine", "constant"), "learning-rate schedule")
    num_steps: int = _spec(1000, INT, _at_least(1), "optimizer steps (the schedule's horizon)")
    seed: int = _spec(42, INT, _at_least(0), "seed of the one RNG stream")
    batch_size: int = _spec(1, INT, _at_least(1), "documents per forward/backward")
    grad_accum: int = _spec(1, INT, _at_least(1), "forward/backward passes per optimizer step")
    dtype: str = _spec("float64", (str,), _one_of(*DTYPES), "floating-point type of the array backends")
    backend: str = _spec("auto", (str,), _backend_name, f"auto: {AUTO_RULE}")
    time_budget: Any = _spec(None, NUM + (type(None),), _positive, "seconds of training (compile excluded); sets "
                             "num_steps from the step rate measured first, or null")


@dataclass
class SamplingConfig:
    temperature: float = _spec(0.5, NUM, _at_least(0), "softmax temperature; 0 is greedy")
    num_samples: int = _spec(20, INT, _at_least(0), "samples printed after training")
    max_tokens: Any = _spec(None, (int, type(None)), doc="stop a sample after this many tokens (default: block_size)")


@dataclass
class Config:
    name: str = "names"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    source: str = field(default="<defaults>", compare=False)  # where it was loaded from, for messages

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d

    def replace(self, section: str, **changes) -> "Config":
        """A copy with some keys of one section changed, validated again."""
        d = self.to_dict()
        d[section].update(changes)
        return config_from_dict(d, self.source)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig, "sampling": SamplingConfig}


def preview(value, limit: int = 60) -> str:
    """A value as JSON on one line, cut to `limit` characters, for error messages (never raises)."""
    try:
        text = json.dumps(value, allow_nan=True)  # ASCII only: no newline or control character gets through
    except (ValueError, TypeError, RecursionError):  # overlong ints, deep nesting
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def show_key(key) -> str:
    """A key as written in a message: bare when it reads as a name, else quoted and escaped."""
    return key if isinstance(key, str) and key.isidentifier() and len(key) <= 40 else preview(key, 40)


def _type_name(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list", type(None): "null"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _check_value(value, spec, where):
    types = spec.metadata["types"]
    # bool is an int in Python; JSON true is never a valid number here
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(types)}, got {preview(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise ConfigError(f"{where}: {preview(value, 30)} is too large")
    check = spec.metadata["check"]
    if check is not None and value is not None:
        problem = check(value)
        if problem:
            raise ConfigError(f"{where}: {problem}, got {preview(value)}")


def _build_section(cls, raw, prefix):
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix}: expected an object, got {preview(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{prefix}.{show_key(key)}: unknown key (known: {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        if name in raw:
            _check_value(raw[name], spec, f"{prefix}.{name}")
            values[name] = raw[name]
    return cls(**values)


def config_from_dict(raw: Any, source: str = "<dict>") -> Config:
    """Validate a parsed JSON document and build a Config. Raises ConfigError."""
    try:
        return _config_from_dict(raw, source)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(source) else f"{source}: {msg}") from None


def _config_from_dict(raw, source):
    if not isinstance(raw, dict):
        raise ConfigError(f"the top level must be an object, got {type(raw).__name__}")
    known = {"name", "description", *SECTIONS}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{show_key(key)}: unknown key (known: {', '.join(sorted(known))})")
    for key in ("name", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{key}: expected a string, got {preview(raw[key])}")
    name = raw.get("name", "custom")
    if (not name or any(c in name for c in "/\\") or name in (".", "..") or not _plain_text(name)
            or len(name) > 100):
        raise ConfigError(f"name: {preview(name)} cannot be used as a folder name under models/ "
                          "(1 to 100 printable characters, no / or \\)")
    sections = {key: _build_section(cls, raw.get(key, {}), key) for key, cls in SECTIONS.items()}
    cfg = Config(name=name, description=raw.get("description", ""), source=source, **sections)
    _check_relations(cfg)
    return cfg


def _check_relations(cfg: Config):
    m, d = cfg.model, cfg.data
    if m.n_embd % m.n_head:
        raise ConfigError(f"model.n_head: n_embd ({m.n_embd}) must be divisible by n_head ({m.n_head})")
    if d.format == "chunks":
        if d.chunk_size is None or d.chunk_size < 1:
            raise ConfigError("data.chunk_size: format 'chunks' needs a chunk_size >= 1")
        if d.chunk_overlap >= d.chunk_size:
            raise ConfigError(f"data.chunk_overlap: must be < chunk_size ({d.chunk_size}), got {d.chunk_overlap}")
    elif d.chunk_size is not None:
        raise ConfigError("data.chunk_size: only used with format 'chunks'")
    if not d.file or os.path.basename(d.file) != d.file or d.file in (".", "..") or not _plain_text(d.file):
        raise ConfigError(f"data.file: must be a plain file name, got {preview(d.file)} (use --data PATH for a path)")
    for i, url in enumerate(d.urls):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not _plain_text(url):
            raise ConfigError(f"data.urls[{i}]: expected an http(s) URL, got {preview(url)}")
    if d.sha256 is not None and (len(d.sha256) != 64 or any(c not in "0123456789abcdef" for c in d.sha256)):
        raise ConfigError("data.sha256: expected 64 lowercase hex digits or null")
    if cfg.sampling.max_tokens is not None and cfg.sampling.max_tokens < 0:
        raise ConfigError("sampling.max_tokens: must be >= 0 or null")


def _plain_text(text: str) -> bool:
    """Printable, and encodable (no lone surrogate): safe in a file name, a URL and a message."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return text.isprintable()


def load_config(path: str) -> Config:
    """Read and validate a JSON config file. Raises ConfigError naming the file."""
    raw = parse_json(read_text(path, ConfigError, "no such config file"), path, ConfigError)
    return config_from_dict(raw, path)


def read_text(path: str, error: type, missing: str) -> str:
    """A UTF-8 file's text (config or checkpoint); `error` naming `path` if it cannot be read, `missing` if absent."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # a byte-order mark, as some editors write, is allowed
            return f.read()
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read: {e}") from None


def parse_json(text: str, path: str, error: type) -> Any:
    """json.loads, with every way it can fail turned into `error` naming `path`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply to read") from None
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        digits = max(len(m) for m in re.findall(r"\d+", text))
        raise error(f"{path}: holds a number of {digits} digits, too long to read") from None


# the keys a scale sweep varies: the model's shape (model.*) and the documents per forward/backward
SIZE_KEYS = ("n_embd", "n_head", "n_layer", "block_size", "batch_size")
MODEL_SIZE_KEYS = SIZE_KEYS[:4]


def sizes_of(cfg: Config) -> dict:
    """A config's SIZE_KEYS values, as a sweep point records them."""
    return {**{k: getattr(cfg.model, k) for k in MODEL_SIZE_KEYS}, "batch_size": cfg.training.batch_size}


def with_sizes(cfg: Config, sizes: dict) -> Config:
    """`cfg` with some SIZE_KEYS changed (those absent are kept), validated as a loaded config is.

    On a chunks corpus (alice) a changed block_size also sets chunk_size to it, overlap half of it:
    chunks shorter than the context would leave its last positions untrained, and the timing of a
    larger T would be the timing of the old one.
    """
    unknown = set(sizes) - set(SIZE_KEYS)
    if unknown:
        raise ValueError(f"not size keys: {sorted(unknown)}")  # a caller's bug, not the user's input
    model = {k: sizes[k] for k in MODEL_SIZE_KEYS if k in sizes}
    if model:
        cfg = cfg.replace("model", **model)
    if "block_size" in sizes and cfg.data.format == "chunks":
        cfg = cfg.replace("data", chunk_size=sizes["block_size"], chunk_overlap=sizes["block_size"] // 2)
    if "batch_size" in sizes:
        cfg = cfg.replace("training", batch_size=sizes["batch_size"])
    return cfg


def scenario_names() -> list[str]:
    if not os.path.isdir(CONFIG_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".json"))


def load_scenario(name: str) -> Config:
    """Load configs/<name>.json, the built-in scenarios."""
    path = os.path.join(CONFIG_DIR, f"{name}.json")
    if not os.path.exists(path):
        known = ", ".join(scenario_names()) or "none found"
        raise ConfigError(f"unknown scenario {name!r} (known: {known}); or pass --config PATH")
    return load_config(path)


def describe_keys() -> str:
    """Every config key with its default and meaning, for --help and docs."""
    lines = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            lines.append(f"  {section}.{f.name} = {json.dumps(default)}: {f.metadata['doc']}")
    return "\n".join(lines)
