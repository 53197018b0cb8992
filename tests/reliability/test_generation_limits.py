"""Generation at its limits: empty and over-long prompts, temperature 0 and below, -n 0, --max-tokens 0,
and --chain with a huge --max-chars (streamed, memory bounded, stopped by Ctrl-C or a closed pipe).

Every backend computes the logits (`--backend`), and the command line is also run as a user runs it,
with no --backend: fused when numba is installed.
"""

import json
import os
import random
import signal
import tracemalloc
import warnings

import pytest

from conftest import run_cli, tiny_config_dict
from golden.reference import printed_samples
from reliability_support import backend_params, popen_cli, write_config, write_names

from microgpt import checkpoint, generate
from microgpt.backends.base import Backend
from microgpt.cli import run_main
from microgpt.data import Tokenizer
from microgpt.sampling import sample, sample_chain

T = 8  # the test model's block_size: a prompt holds at most 7 characters


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("generation")
    cfg = tiny_config_dict(block_size=T)
    cfg["training"]["num_steps"] = 20
    cfg["sampling"] = {"num_samples": 4, "temperature": 1.0}
    out = d / "model.json"
    r = run_cli(["-m", "microgpt.train", "--config", write_config(d / "gen.json", cfg), "--data",
                 write_names(d / "names.txt"), "--num-samples", "0", "-o", str(out)])
    assert r.returncode == 0, r.stderr
    return str(out)


@pytest.fixture(params=backend_params())
def backend(request):
    return request.param


def gen(model, capsys, backend, *args):
    """generate in-process, as the command line runs it: (exit code, stdout, stderr)."""
    code = run_main(generate.main, ["--model", model, "--backend", backend, *args])
    out, err = capsys.readouterr()
    return code, out, err


_LOADED = {}


@pytest.fixture
def loaded(model, backend):
    """The model on `backend`, as generate loads it, and its tokenizer."""
    if (model, backend) not in _LOADED:
        ck = checkpoint.load(model)
        _LOADED[model, backend] = generate.load_backend(ck, backend), Tokenizer(ck.uchars)
    return _LOADED[model, backend]


def test_empty_prompt_is_no_prompt(model, capsys, backend):
    a = gen(model, capsys, backend, "-i", "", "--seed", "3", "-n", "5")
    b = gen(model, capsys, backend, "--seed", "3", "-n", "5")
    assert a == b and a[0] == 0 and len(printed_samples(a[1])) == 5


def test_prompt_that_fills_the_context_gets_at_most_one_character(model, capsys, backend):
    code, out, _ = gen(model, capsys, backend, "-i", "abcdefg", "--seed", "1", "-n", "6")
    assert code == 0
    got = printed_samples(out)
    assert len(got) == 6 and all(s.startswith("abcdefg") and len(s) <= T for s in got), got


def test_prompt_longer_than_the_context_is_an_error_unless_chained(model, capsys, backend):
    code, out, err = gen(model, capsys, backend, "-i", "abcdefgh")
    assert (code, out) == (1, "")
    assert err == "error: the prompt has 8 characters but the context holds 7; shorten it or use --chain\n"
    code, out, err = gen(model, capsys, backend, "-i", "abcdefghijklmnop", "--chain", "--max-chars", "30",
                         "--no-stop-at-bos", "--seed", "2")
    assert code == 0 and err == ""
    assert out.startswith("abcdefghijklmnop") and len(out.rstrip("\n")) == 16 + 30


def test_chain_prompts_with_the_whole_prompt_when_it_fits(loaded):
    """A prompt shorter than the context is kept whole (it once lost its start past half the context)."""
    model_backend, tok = loaded
    prompt = tok.encode("abcdef")  # BOS + 6 characters: room for 2 more
    alone = sample(model_backend, random.Random(9), prompt, 1.0, stop_at_bos=False)
    chained = sample_chain(model_backend, random.Random(9), prompt, 1.0, len(alone), stop_at_bos=False)
    assert chained == alone and len(alone) == 2
    long_prompt = tok.encode("zyxwvutsabcdef")  # only the last 7 characters fit
    assert (sample_chain(model_backend, random.Random(4), long_prompt, 1.0, 40, stop_at_bos=False)
            == sample_chain(model_backend, random.Random(4), long_prompt[-7:], 1.0, 40, stop_at_bos=False))


def argmax_decode(backend, prompt, limit):
    """Greedy decoding written out independently: the first largest logit, until BOS or the context is full."""
    cache = backend.new_cache()
    context = [backend.bos] + prompt
    for pos, tok in enumerate(context[:-1]):
        backend.next_logits(cache, tok, pos)
    out, tok, pos = [], context[-1], len(context) - 1
    while len(out) < limit:
        logits = backend.next_logits(cache, tok, pos)
        tok = logits.index(max(logits))
        if tok == backend.bos:
            break
        out.append(tok)
        pos += 1
    return out


def test_temperature_zero_is_greedy_and_deterministic(model, capsys, backend, loaded):
    model_backend, tok = loaded
    runs = [gen(model, capsys, backend, "-t", "0", "-n", "3", "--seed", seed, "-i", "a") for seed in ("1", "2")]
    assert runs[0] == runs[1] and runs[0][0] == 0
    got = printed_samples(runs[0][1])
    expected = "a" + tok.decode(argmax_decode(model_backend, tok.encode("a"), T - 1))
    assert got == [expected] * 3
    rng = random.Random(1)
    state = rng.getstate()
    sample(model_backend, rng, [], 0.0)
    assert rng.getstate() == state  # greedy draws nothing


@pytest.mark.parametrize("value, message", [
    ("-1", "--temperature must be a finite number >= 0 (0 is greedy), got -1.0"),
    ("-1e-300", "got -1e-300"),
    ("nan", "got nan"),
    ("inf", "got inf"),
])
def test_bad_temperature_is_an_error(model, capsys, backend, value, message):
    code, out, err = gen(model, capsys, backend, f"--temperature={value}")  # argparse reads "-1e-300" as an option
    assert (code, out) == (1, "") and err.startswith("error: ") and message in err


def test_tiny_positive_temperature_is_as_greedy(model, capsys, backend):
    tiny = gen(model, capsys, backend, "-t", "1e-300", "-n", "2", "--seed", "5")
    assert tiny == gen(model, capsys, backend, "-t", "0", "-n", "2")
    assert tiny[0] == 0 and len(printed_samples(tiny[1])) == 2


def test_zero_samples_and_zero_tokens(model, capsys, backend):
    refused = (1, "", "error: --num-samples must be >= 1, got 0\n")  # a command that would print nothing
    assert gen(model, capsys, backend, "-n", "0") == refused
    assert gen(model, capsys, backend, "-n", "0", "--chain") == refused
    code, out, err = gen(model, capsys, backend, "--max-tokens", "0", "-n", "3", "-i", "ab")
    assert code == 0 and printed_samples(out) == ["ab", "ab", "ab"]
    assert gen(model, capsys, backend, "--chain", "--max-chars", "0", "-i", "ab") == (0, "ab\n", "")


@pytest.mark.parametrize("args, message", [
    (["-n", "-1"], "--num-samples must be >= 1, got -1"),
    (["--max-tokens", "-1"], "--max-tokens must be >= 0, got -1"),
    (["--max-chars", "-5", "--chain"], "--max-chars must be >= 0, got -5"),
    (["--chain", "--max-tokens", "5"], "--max-tokens limits each sample; a --chain text is limited by --max-chars"),
])
def test_negative_counts_are_errors(model, capsys, backend, args, message):
    assert gen(model, capsys, backend, *args) == (1, "", f"error: {message}\n")


def test_weights_too_large_to_use_are_one_line_on_every_backend(model, capsys, backend, tmp_path):
    """Finite weights of 1e308 load (they are numbers), but every logit overflows: one error, no numpy warnings."""
    doc = json.loads(open(model, encoding="utf-8").read())
    doc["weights"] = {n: [[1e308] * len(row) for row in m] for n, m in doc["weights"].items()}
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(doc))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for extra in (["-n", "1"], ["-t", "0", "-n", "1"], ["--chain", "--max-chars", "5"]):
            code, out, err = gen(str(huge), capsys, backend, *extra)
            assert (code, out.strip()) == (1, ""), (extra, out, err)
            assert err.startswith("error: the model's ") and err.endswith(" its weights are unusable "
                                                                          "(did training diverge?)\n"), err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]


class _CountingBackend:
    """Just enough of a backend for sample_chain: fixed logits, no BOS ever wins."""

    class cfg:
        class model:
            block_size = T

    bos = 3

    def new_cache(self):
        return None

    def next_logits(self, cache, token, pos):
        return [0.0, 0.1, 0.2, -50.0]

    sample_next = Backend.sample_next


def test_chain_memory_does_not_grow_with_its_length():
    def peak(n):
        received = [0]

        def count(ids):
            received[0] += len(ids)

        tracemalloc.start()
        sample_chain(_CountingBackend(), random.Random(0), [], 1.0, n, stop_at_bos=False, on_tokens=count)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert received[0] == n
        return peak

    small, large = peak(500), peak(10_000)
    assert large < 2 * small + 4_000, (small, large)  # flat: a list of 10,000 ids alone would take 80 kB


# as a user runs it (no --backend: fused when numba is installed), and on the python backend
AS_RUN = [pytest.param([], id="default"), pytest.param(["--backend", "python"], id="python")]


@pytest.mark.parametrize("sig,code,line", [(signal.SIGINT, 130, "interrupted\n"), (signal.SIGTERM, 143, "terminated\n")],
                         ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend_args", AS_RUN)
def test_huge_chain_streams_and_stops_cleanly_on_a_signal(model, backend_args, sig, code, line):
    """--max-chars 10**15 is not capped: the text streams until Ctrl-C (130) or SIGTERM (143), then one line."""
    proc = popen_cli(["-m", "microgpt.generate", "--model", model, *backend_args, "--chain",
                      "--no-stop-at-bos", "--max-chars", str(10 ** 15)])
    chunks = []
    while sum(map(len, chunks)) < 500:  # it prints as it goes
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, proc.stderr.read()
        chunks.append(chunk)
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err == line
    assert len(rest) < 10 ** 7  # it did stop


@pytest.mark.parametrize("backend_args", AS_RUN)
def test_huge_chain_into_a_closed_pipe_ends_quietly(model, backend_args):
    """`generate --chain ... | head -c 100`: the reader goes away, generation ends without a word."""
    proc = popen_cli(["-m", "microgpt.generate", "--model", model, *backend_args, "--chain",
                      "--no-stop-at-bos", "--max-chars", str(10 ** 15)])
    assert len(os.read(proc.stdout.fileno(), 100)) > 0
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == ""


@pytest.mark.parametrize("args, code, check", [
    (["-t", "0", "-n", "2", "-i", ""], 0,
     lambda out, err: len(set(printed_samples(out))) == 1 and len(printed_samples(out)) == 2),
    (["-n", "0"], 1, lambda out, err: err == "error: --num-samples must be >= 1, got 0\n"),
    (["--max-tokens", "0", "-n", "2", "-i", "ab"], 0, lambda out, err: printed_samples(out) == ["ab", "ab"]),
    (["-i", "abcdefgh"], 1, lambda out, err: err == "error: the prompt has 8 characters but the context holds 7; "
                                                    "shorten it or use --chain\n"),
    (["-t=-1"], 1, lambda out, err: err.startswith("error: --temperature must be a finite number >= 0")),
], ids=["greedy", "n0", "max-tokens-0", "long-prompt", "negative-temperature"])
def test_the_command_as_a_user_runs_it(model, args, code, check):
    """`python -m microgpt.generate` with no --backend (fused when numba is installed), a real process."""
    r = run_cli(["-m", "microgpt.generate", "--model", model, *args])
    assert r.returncode == code and "Traceback" not in r.stderr, r.stderr
    assert check(r.stdout, r.stderr), (r.stdout, r.stderr)
    if code == 0:
        assert r.stderr == ""
