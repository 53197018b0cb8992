"""From a config to a ready-to-train backend, consuming the RNG as the reference does.

    documents --shuffle(rng)--> tokenizer, train/val split --init(rng)--> weights --> backend

`prepare` is shared by the training CLI, the benchmark scripts and the tests,
so every one of them trains on the same documents from the same weights.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .auto_choice import Choice, Table, choose, load_table, per_backend, table_path
from .backends import get_backend_class
from .backends.base import Backend
from .backends.registry import available_backends, resolve_name
from .config import Config
from .data import Dataset, Tokenizer, load_dataset, split_train_val
from .errors import MicrogptError
from .params import init_weights, num_params
from .schedule import docs_per_step


@dataclass
class Experiment:
    cfg: Config
    dataset: Dataset
    docs: list[str]  # shuffled
    tokenizer: Tokenizer
    train_tokens: list[list[int]]
    val_tokens: list[list[int]]
    weights: dict  # the initial weights, {name: [[float]]}
    rng: random.Random  # positioned after the initialisation: sampling continues from here
    auto: Choice | None = None  # what --backend auto chose and why, once a backend was made
    backend_options: dict = field(default_factory=dict)  # keyword arguments of one backend (torch: device, compile)

    @property
    def num_params(self) -> int:
        return num_params(self.cfg.model, self.tokenizer.vocab_size)

    def choose_auto(self) -> Choice:
        """What `--backend auto` trains this experiment with, and why (microgpt/auto_choice.py)."""
        from .flops import flops_per_token
        from .threads import configured_threads

        m, t = self.cfg.model, self.cfg.training
        sample = self.train_tokens[:1000]
        mean_positions = sum(min(m.block_size, len(d) - 1) for d in sample) / max(1, len(sample))
        table, installed = load_table(table_path()), available_backends()
        return choose(flops_per_token(m, self.tokenizer.vocab_size), docs_per_step(t) * mean_positions, t.dtype,
                      configured_threads(), installed, table.rows, t.num_steps, self.compile_first(table, installed),
                      per_backend(table.start_s, t.dtype))

    def compile_first(self, table: Table, installed: list[str]) -> dict[str, float]:
        """backend -> the sweep's cold-compile seconds, for the backends this run would have to compile first."""
        from .compile_cache import is_warm

        out = {}
        for backend, seconds in per_backend(table.cold_compile_s, self.cfg.training.dtype).items():
            # seconds > 0 only: a backend that compiles nothing is not imported to ask (torch's import is slow)
            if seconds > 0 and backend in installed:
                variant = get_backend_class(backend).compiled_variant(self.cfg, self.tokenizer.vocab_size)
                if variant and is_warm(variant) is False:
                    out[backend] = seconds
        return out

    def make_backend(self, name: str | None = None) -> Backend:
        name = name or self.cfg.training.backend
        if name == "auto":
            self.auto = self.choose_auto()
            name = self.auto.backend
        name = resolve_name(name)
        cls = get_backend_class(name)
        dtype = self.cfg.training.dtype
        if dtype not in cls.dtypes:
            raise MicrogptError(f"backend {name!r} supports dtype {', '.join(cls.dtypes)}, not {dtype}")
        return cls(self.cfg, self.tokenizer.vocab_size, self.weights, self.train_tokens, **self.backend_options)


def prepare(cfg: Config, data_path: str | None = None, dataset: Dataset | None = None,
            quiet: bool = False) -> Experiment:
    """Load the data and draw the initial weights with the scenario's seed."""
    dataset = dataset or load_dataset(cfg, data_path, quiet=quiet)
    rng = random.Random(cfg.training.seed)
    docs = list(dataset.docs)
    rng.shuffle(docs)
    tokenizer = Tokenizer.from_docs(docs)
    trailing = cfg.data.trailing_bos
    train_docs, val_docs = split_train_val(docs)
    tokens = [tokenizer.doc_tokens(d, trailing) for d in train_docs]
    val = [tokenizer.doc_tokens(d, trailing) for d in val_docs]
    weights = init_weights(cfg.model, tokenizer.vocab_size, rng)
    return Experiment(cfg, dataset, docs, tokenizer, tokens, val, weights, rng)
