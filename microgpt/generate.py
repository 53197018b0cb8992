"""Sample text from a trained model: python -m microgpt.generate --help"""

from __future__ import annotations

import argparse
import random
import sys
import warnings

from . import checkpoint
from .backends import get_backend_class
from .backends.base import Backend
from .backends.registry import backend_choices, resolve_name
from .cli import run_main
from .config import SamplingConfig, scenario_names
from .data import Tokenizer
from .errors import MicrogptError
from .sampling import check_chain_context, decode, fit_prompt_case, sample, sample_chain
from .sampling_math import SamplingOptions, check_temperature


PROG = "python -m microgpt.generate"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command's flags; `prog` is the command the usage line names (the root shims name their own)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Sample from a trained model (models/<scenario>/model.json). Each sample starts after BOS, "
                    "conditioned on the prompt, and ends at BOS or when the context is full.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scenario", "-s", help=f"use models/<scenario>/model.json ({', '.join(scenario_names())}; "
                   "default: names)")
    g.add_argument("--model", "-m", metavar="PATH", help="a model.json written by microgpt.train")
    p.add_argument("-i", "--prompt", "--input", default="", help="text the samples continue (characters of the "
                   "vocabulary; a letter in the other case is used when the vocabulary has only that case)")
    p.add_argument("-n", "--num-samples", "--samples", type=int, help="number of samples, >= 1 (default: the "
                   f"training run's, or {SamplingConfig().num_samples} if it printed none)")
    p.add_argument("-t", "--temperature", type=float, help="softmax temperature, > 0; 0 means greedy "
                   "(default: the scenario's)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="seed of the sampling RNG (default: continue the training run's "
                       "stream, as the training command's samples do)")
    seeds.add_argument("--no-seed", action="store_true", help="a seed drawn from fresh entropy, printed to stderr "
                       "(`seed: S`) so that --seed S repeats the samples")
    p.add_argument("--top-k", type=int, default=0, metavar="K", help="draw only among the K largest logits "
                   "(ties included); 0 = off (default; the seed used 40)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, metavar="P",
                   help="each distinct token among the last --repetition-window tokens: a positive logit is "
                        "divided by P, a negative one multiplied by P, after the temperature; >= 1.0, 1.0 = off "
                        "(default; the seed used 1.2, applied once per occurrence rather than once per token)")
    p.add_argument("--repetition-window", type=int, default=32, metavar="W",
                   help="how many of the latest tokens (prompt included) the penalty looks at (default 32)")
    p.add_argument("--no-stop-at-bos", action="store_true", help="keep going past BOS (shown as a newline)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="at most N new tokens per sample (not with --chain)")
    p.add_argument("--chain", action="store_true", help="generate past the context: feed the last --chain-context "
                   "characters back as the next prompt, up to --max-chars (printed as it comes; Ctrl-C stops it)")
    p.add_argument("--chain-context", type=int, metavar="N", help="characters kept as the next prompt in --chain, "
                   "1 .. block_size-1 (default block_size // 2, as the seed: each round generates the rest)")
    p.add_argument("--max-chars", type=int, default=500, metavar="N", help="length of a --chain text (default 500)")
    p.add_argument("--backend", "-b", choices=backend_choices(), default="auto",
                   help="backend that computes the logits (default auto: fused when numba is installed)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"),
                   help="where --backend torch computes (default auto: cuda when available, else cpu)")
    return p


def load_backend(ckpt: checkpoint.Checkpoint, name: str, device: str | None = None) -> Backend:
    name = resolve_name(name)
    if device is not None and name != "torch":
        raise MicrogptError(f"--device: for --backend torch only (this run uses {name})")
    cls = get_backend_class(name)
    cfg = ckpt.config.replace("training", backend=name, dtype=ckpt.dtype if ckpt.dtype in cls.dtypes else "float64")
    options = {"device": device} if name == "torch" else {}
    return cls(cfg, ckpt.vocab_size, ckpt.weights, [], **options)


def main(argv=None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    path = args.model or checkpoint.default_path(args.scenario or "names")
    ckpt = checkpoint.load(path)  # fails first, before any other work
    if args.num_samples is not None and args.num_samples < 1:  # samples are all it prints: 0 is a slip
        raise MicrogptError(f"--num-samples must be >= 1, got {args.num_samples}")
    for flag in ("max_tokens", "max_chars"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            raise MicrogptError(f"--{flag.replace('_', '-')} must be >= 0, got {value}")
    if args.chain and args.max_tokens is not None:
        raise MicrogptError("--max-tokens limits each sample; a --chain text is limited by --max-chars")
    if args.temperature is not None:
        check_temperature(args.temperature, "--temperature")
    options = SamplingOptions(args.top_k, args.repetition_penalty, args.repetition_window)
    options.check()
    T = ckpt.config.model.block_size
    if args.chain_context is not None:
        check_chain_context(args.chain_context, T)
    tokenizer = Tokenizer(ckpt.uchars)
    fitted = fit_prompt_case(args.prompt, ckpt.uchars)
    prompt = tokenizer.encode(fitted.text)
    for note in fitted.notes:
        print(note, file=sys.stderr)
    args.prompt = fitted.text
    s = ckpt.config.sampling
    temperature = s.temperature if args.temperature is None else args.temperature
    num = s.num_samples if args.num_samples is None else args.num_samples
    if num == 0:  # trained with --num-samples 0: no samples then, which says nothing about how many now
        num = SamplingConfig().num_samples
    max_tokens = args.max_tokens if args.max_tokens is not None else s.max_tokens
    if not args.chain and len(prompt) > T - 1:
        raise MicrogptError(f"the prompt has {len(prompt)} characters but the context holds {T - 1}; "
                            "shorten it or use --chain")

    with warnings.catch_warnings():
        # numpy's floating-point warnings (weights so large the logits overflow) would only repeat, noisily,
        # what sampling says in one line: the logits are checked before every draw
        warnings.filterwarnings("ignore", r"(overflow|invalid value|divide by zero) encountered", RuntimeWarning)
        return _generate(args, ckpt, tokenizer, prompt, temperature, num, max_tokens, options)


def _generate(args, ckpt, tokenizer, prompt, temperature, num, max_tokens, options) -> int:
    if args.no_seed:
        args.seed = random.SystemRandom().randrange(2 ** 32)
        print(f"seed: {args.seed}", file=sys.stderr)  # what --seed needs to repeat these samples
    rng = random.Random(args.seed)
    if args.seed is None:
        state = (ckpt.train_state or {}).get("rng_state")
        rng = random.Random(ckpt.config.training.seed)
        if state:
            rng.setstate(checkpoint.rng_state_from_json(state))
    backend = load_backend(ckpt, args.backend, args.device)
    stop = not args.no_stop_at_bos

    if args.chain:
        for _ in range(1 if args.num_samples is None else num):  # one text unless asked for more
            sys.stdout.write(args.prompt)
            sample_chain(backend, rng, prompt, temperature, args.max_chars, stop,
                         on_tokens=lambda ids: (sys.stdout.write(decode(tokenizer, ids)), sys.stdout.flush()),
                         options=options, keep=args.chain_context)
            sys.stdout.write("\n")
        return 0
    for i in range(num):
        ids = sample(backend, rng, prompt, temperature, max_tokens, stop, options)
        print(f"sample {i + 1:2d}: {args.prompt}{decode(tokenizer, ids)}")
    return 0


def cli(prog: str = PROG) -> None:
    sys.exit(run_main(lambda argv: main(argv, prog)))


if __name__ == "__main__":
    cli()
