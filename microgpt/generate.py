"""Sample text from a trained model: python -m microgpt.generate --help"""

from __future__ import annotations

import argparse
import math
import random
import sys
import warnings

from . import checkpoint
from .backends import is_available, resolve_name
from .backends.base import Backend
from .cli import run_main
from .config import BACKENDS, scenario_names
from .data import Tokenizer
from .errors import MicrogptError
from .sampling import decode, sample, sample_chain


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m microgpt.generate",
        description="Sample from a trained model (models/<scenario>/model.json). Each sample starts after BOS, "
                    "conditioned on the prompt, and ends at BOS or when the context is full.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scenario", "-s", help=f"use models/<scenario>/model.json ({', '.join(scenario_names())}; "
                   "default: names)")
    g.add_argument("--model", "-m", metavar="PATH", help="a model.json written by microgpt.train")
    p.add_argument("-i", "--prompt", default="", help="text the samples continue (characters of the vocabulary)")
    p.add_argument("-n", "--num-samples", type=int, help="number of samples (default: the scenario's)")
    p.add_argument("-t", "--temperature", type=float, help="softmax temperature, > 0; 0 means greedy "
                   "(default: the scenario's)")
    p.add_argument("--seed", type=int, help="seed of the sampling RNG (default: continue the training run's "
                   "stream, as the training command's samples do)")
    p.add_argument("--no-stop-at-bos", action="store_true", help="keep going past BOS (shown as a newline)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="at most N new tokens per sample (not with --chain)")
    p.add_argument("--chain", action="store_true", help="generate past the context: feed the last block_size-1 "
                   "characters back as the next prompt, up to --max-chars (printed as it comes; Ctrl-C stops it)")
    p.add_argument("--max-chars", type=int, default=500, metavar="N", help="length of a --chain text (default 500)")
    p.add_argument("--backend", "-b", choices=BACKENDS, default="auto",
                   help="backend that computes the logits (default auto: fused when numba is installed)")
    return p


def load_backend(ckpt: checkpoint.Checkpoint, name: str) -> Backend:
    from .backends import get_backend_class

    name = resolve_name(name)
    cls = get_backend_class(name)
    cfg = ckpt.config.replace("training", backend=name, dtype=ckpt.dtype if ckpt.dtype in cls.dtypes else "float64")
    return cls(cfg, ckpt.vocab_size, ckpt.weights, [])


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    path = args.model or checkpoint.default_path(args.scenario or "names")
    ckpt = checkpoint.load(path)  # fails first, before any other work
    for flag in ("num_samples", "max_tokens", "max_chars"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            raise MicrogptError(f"--{flag.replace('_', '-')} must be >= 0, got {value}")
    if args.chain and args.max_tokens is not None:
        raise MicrogptError("--max-tokens limits each sample; a --chain text is limited by --max-chars")
    if args.temperature is not None and not 0 <= args.temperature < math.inf:
        raise MicrogptError(f"--temperature must be a finite number >= 0 (0 is greedy), got {args.temperature}")
    tokenizer = Tokenizer(ckpt.uchars)
    prompt = tokenizer.encode(args.prompt)
    s = ckpt.config.sampling
    temperature = s.temperature if args.temperature is None else args.temperature
    num = s.num_samples if args.num_samples is None else args.num_samples
    max_tokens = args.max_tokens if args.max_tokens is not None else s.max_tokens
    T = ckpt.config.model.block_size
    if not args.chain and len(prompt) > T - 1:
        raise MicrogptError(f"the prompt has {len(prompt)} characters but the context holds {T - 1}; "
                            "shorten it or use --chain")

    with warnings.catch_warnings():
        # numpy's floating-point warnings (weights so large the logits overflow) would only repeat, noisily,
        # what sampling says in one line: the logits are checked before every draw
        warnings.filterwarnings("ignore", r"(overflow|invalid value|divide by zero) encountered", RuntimeWarning)
        return _generate(args, ckpt, tokenizer, prompt, temperature, num, max_tokens)


def _generate(args, ckpt, tokenizer, prompt, temperature, num, max_tokens) -> int:
    rng = random.Random(args.seed)
    if args.seed is None:
        state = (ckpt.train_state or {}).get("rng_state")
        rng = random.Random(ckpt.config.training.seed)
        if state:
            rng.setstate(checkpoint.rng_state_from_json(state))
    if args.backend == "auto" and not is_available("fused"):
        args.backend = "python"
    backend = load_backend(ckpt, args.backend)
    stop = not args.no_stop_at_bos

    if args.chain:
        for _ in range(1 if args.num_samples is None else num):  # one text unless asked for more
            sys.stdout.write(args.prompt)
            sample_chain(backend, rng, prompt, temperature, args.max_chars, stop,
                         on_tokens=lambda ids: (sys.stdout.write(decode(tokenizer, ids)), sys.stdout.flush()))
            sys.stdout.write("\n")
        return 0
    for i in range(num):
        ids = sample(backend, rng, prompt, temperature, max_tokens, stop)
        print(f"sample {i + 1:2d}: {args.prompt}{decode(tokenizer, ids)}")
    return 0


def cli() -> None:
    sys.exit(run_main(main))


if __name__ == "__main__":
    cli()
