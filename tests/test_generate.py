"""generate on the command line: the training run's samples again, a prompt, --chain, --max-tokens; the seed's
options: top-k, the repetition penalty, --no-seed, --chain-context, the seed's long option names, a prompt in
the wrong case, and one-line errors for bad values."""

import json
import random
import re

import pytest

from conftest import run_cli, shared_file, tiny_config_dict
from golden.reference import printed_samples

from microgpt import generate, train
from microgpt.cli import run_main

T = 8


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    rng = random.Random(3)
    (d / "names.txt").write_text("\n".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                                   for _ in range(rng.randint(3, 7))) for _ in range(200)) + "\n")
    cfg = tiny_config_dict(block_size=T)
    cfg["sampling"] = {"num_samples": 5, "temperature": 1.0}
    (d / "tiny.json").write_text(json.dumps(cfg))
    out = str(d / "model.json")
    assert run_main(train.main, ["--config", str(d / "tiny.json"), "--data", str(d / "names.txt"), "--steps", "30",
                                 "--num-samples", "0", "-q", "-o", out]) == 0
    return out


def gen(capsys, model, *args):
    """(exit code, stdout, stderr) of generate run in-process as the command line runs it."""
    capsys.readouterr()
    try:
        code = run_main(generate.main, ["--model", model, *args])
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_defaults_leave_the_samples_unchanged_and_the_options_change_them(capsys, model):
    plain = gen(capsys, model, "--seed", "4", "-n", "8")
    assert plain == gen(capsys, model, "--seed", "4", "-n", "8", "--top-k", "0", "--repetition-penalty", "1.0")
    shaped = gen(capsys, model, "--seed", "4", "-n", "8", "--top-k", "3", "--repetition-penalty", "1.5")
    assert shaped[0] == 0 and shaped[1] != plain[1] and len(printed_samples(shaped[1])) == 8


def test_top_k_1_is_greedy(capsys, model):
    greedy = gen(capsys, model, "-t", "0", "-n", "3", "-i", "ab")
    assert greedy == gen(capsys, model, "--top-k", "1", "-n", "3", "-i", "ab", "--seed", "9")
    assert len(set(printed_samples(greedy[1]))) == 1


def test_the_seeds_long_option_names(capsys, model):
    assert (gen(capsys, model, "--input", "em", "--samples", "3", "--seed", "1")
            == gen(capsys, model, "-i", "em", "-n", "3", "--seed", "1"))


def test_no_seed_prints_the_seed_that_repeats_it(capsys, model):
    code, out, err = gen(capsys, model, "--no-seed", "-n", "6")
    seed = re.fullmatch(r"seed: (\d+)\n", err)
    assert code == 0 and seed, err
    assert gen(capsys, model, "--seed", seed.group(1), "-n", "6") == (0, out, "")


def test_a_prompt_in_the_wrong_case_uses_the_other_case_and_says_so(capsys, model):
    code, out, err = gen(capsys, model, "-i", "Em", "-n", "3", "--seed", "2")
    assert (code, err) == (0, "prompt: 'E' is not in the vocabulary; using 'e'\n")
    assert (code, out, "") == gen(capsys, model, "-i", "em", "-n", "3", "--seed", "2")


def test_chain_context_defaults_to_half_the_context(capsys, model):
    args = ("--chain", "--max-chars", "60", "--no-stop-at-bos", "--seed", "5", "-i", "ab")
    default = gen(capsys, model, *args)
    assert default == gen(capsys, model, *args, "--chain-context", str(T // 2))
    assert default[0] == 0 and len(default[1]) == 2 + 60 + 1
    assert default != gen(capsys, model, *args, "--chain-context", str(T - 1))


@pytest.mark.parametrize("args, message", [
    (["--top-k", "-1"], "--top-k must be >= 0 (0 keeps every token), got -1"),
    (["--repetition-penalty", "0"], "--repetition-penalty must be a finite number >= 1.0 (1.0 is off; the seed "
                                    "used 1.2), got 0.0"),
    (["--repetition-penalty", "0.8"], "--repetition-penalty must be a finite number >= 1.0"),
    (["--repetition-penalty", "nan"], "--repetition-penalty must be a finite number >= 1.0"),
    (["--repetition-penalty", "inf"], "--repetition-penalty must be a finite number >= 1.0"),
    (["--repetition-window", "0"], "--repetition-window must be >= 1, got 0"),
    (["--chain", "--chain-context", str(T)], f"--chain-context must be from 1 to block_size - 1 = {T - 1}"),
    (["--chain", "--chain-context", "0"], f"--chain-context must be from 1 to block_size - 1 = {T - 1}"),
    (["-i", "e1"], "character '1' is not in the model's vocabulary ('abcdefghijklmnopqrstuvwxyz')"),
])
def test_bad_values_are_one_line(capsys, model, args, message):
    code, out, err = gen(capsys, model, *args)
    assert (code, out) == (1, "") and err.startswith("error: " + message) and err.count("\n") == 1, err


def test_seed_and_no_seed_together_is_a_usage_error(capsys, model):
    code, _, err = gen(capsys, model, "--seed", "1", "--no-seed")
    assert code == 2 and "not allowed with argument --seed" in err


def test_generate_reproduces_the_training_samples_and_takes_a_prompt(tmp_path):
    shared_file("names.txt")
    model = str(tmp_path / "m.json")
    t = run_cli(["-m", "microgpt.train", "--backend", "python", "--steps", "3", "--num-samples", "4", "-o", model])
    g = run_cli(["-m", "microgpt.generate", "--model", model, "-n", "4", "--backend", "python"])
    assert g.returncode == 0, g.stderr
    assert re.findall(r"^sample.*$", t.stdout, re.M) == g.stdout.splitlines()
    p = run_cli(["-m", "microgpt.generate", "--model", model, "-n", "3", "-i", "em", "--seed", "1"])
    assert all(line.split(": ", 1)[1].startswith("em") for line in p.stdout.splitlines()), p.stdout
    c = run_cli(["-m", "microgpt.generate", "--model", model, "--chain", "--max-chars", "40", "--no-stop-at-bos",
                 "--seed", "2"])
    assert c.returncode == 0 and len(c.stdout.rstrip("\n")) >= 40, c.stdout
    m = run_cli(["-m", "microgpt.generate", "--model", model, "-n", "5", "--max-tokens", "2", "--seed", "3"])
    assert all(len(line.split(": ", 1)[1]) <= 2 for line in m.stdout.splitlines()), m.stdout
