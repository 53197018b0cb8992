"""Every command line of the seed's README (../shared/seed/README.md), run as a new user would.

The project grew from that README; its commands must keep working. Each row of SEED_COMMANDS is one
line of its bash blocks (or, for MICROGPT_VERIFY_JIT, of its prose), run from a fresh working folder
where `train.py`, `main.py` and `scripts/` name this checkout's files. What keeps the whole file short
is in `extra` (`--steps 2` instead of thousands) and in the data: a few hundred made-up names and a
small made-up Gutenberg book stand in for the downloads, which tests never make.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import sys
from dataclasses import dataclass

import pytest

from conftest import ROOT, run_cli

SEED_README = os.path.normpath(os.path.join(ROOT, "..", "shared", "seed", "README.md"))
SHORT = ("--steps", "2")


@dataclass(frozen=True)
class SeedCommand:
    line: str  # exactly as the seed README writes it (its trailing comment dropped)
    expect: str  # a regex that stderr + stdout (in that order) must match
    extra: tuple[str, ...] = ()  # appended here to keep the run short
    skip: str = ""  # why the line is not run here (then nothing else is checked)
    slow: bool = False  # minutes however short: left to `pytest -m slow`


TRAINED = r"saved models/{}/model.json"
SAMPLES = r"^sample +1: "
BENCHMARKED = r"^steps/s \(median\): +[\d.]+ [\s\S]*^full run estimate: .* for 2000 steps"  # as the seed promised
SEED_COMMANDS = [
    # -- Commands: Train
    SeedCommand("python train.py --scenario names", TRAINED.format("names") + r"[\s\S]*" + SAMPLES, SHORT),
    SeedCommand("python scripts/download_alice.py", r"data/alice/alice.txt already exists"),
    SeedCommand("python train.py --scenario alice", TRAINED.format("alice"), SHORT),
    SeedCommand("python train.py --scenario alice --backend numpy", r"backend: numpy \(float64\)", SHORT),
    SeedCommand("python train.py --scenario alice_v2 --backend numpy --dtype float32", r"backend: numpy \(float32\)",
                SHORT),
    SeedCommand("python train.py --scenario alice_v2 --backend numpy --dtype float32 --grad-accum 4",
                r"1 doc\(s\) x 4 accumulation", SHORT),
    SeedCommand("python train.py --scenario alice_v2 --backend numpy_batched", TRAINED.format("alice_v2"), SHORT),
    # -- Commands: Inference (the models the lines above saved)
    SeedCommand("python main.py --scenario names", SAMPLES),
    SeedCommand('python main.py --scenario names -i "George"',
                r"prompt: 'G' is not in the vocabulary; using 'g'[\s\S]*^sample +1: george"),
    SeedCommand('python main.py --scenario alice -i "Alice"', r"^sample +1: Alice"),
    SeedCommand('python main.py --model models/names/model.json -i "A"',
                r"prompt: 'A' is not in the vocabulary; using 'a'[\s\S]*^sample +1: a"),
    SeedCommand('python main.py --scenario alice_v2 -i "Alice" --no-stop-at-bos --max-tokens 100',
                r"^sample +1: Alice"),
    SeedCommand('python main.py --scenario alice_v2 -i "Alice" --chain --max-chars 500 -n 1', r"\AAlice[\s\S]{1,500}\Z"),
    # -- Tests
    SeedCommand("pytest tests/ -v", "", skip="the test suite itself; CI runs it (`.ci/run`)"),
    # -- Benchmarking alice
    SeedCommand("uv sync --extra numpy", "", skip="installs packages; the project's equivalent is "
                "pip install -e '.[numpy]', which this environment has"),
    SeedCommand("python scripts/benchmark_train.py --scenario alice --steps 5 --backend numpy", BENCHMARKED),
    # two alice steps of the scalar python engine take minutes (~3 on a busy core)
    SeedCommand("python scripts/benchmark_train.py --scenario alice --steps 2 --backend python", BENCHMARKED,
                slow=True),
    # -- Verify Numba JIT is active
    SeedCommand("python scripts/verify_numba_jit.py", r"JIT verification: numba JIT active \(\d+ compiled\)"),
    SeedCommand("MICROGPT_VERIFY_JIT=1 python train.py --scenario alice --backend numpy", r"^numba JIT .*compiled into these entry points",
                SHORT),
]


def seed_readme_lines(text: str) -> list[str]:
    """The command lines of the README's bash blocks, comments dropped, each once."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#") and line not in lines:
                lines.append(line)
    return lines


def test_the_table_has_every_command_of_the_seed_readme():
    if not os.path.exists(SEED_README):
        pytest.skip(f"{SEED_README} not found (the seed lives beside the checkout, in ../shared/seed)")
    with open(SEED_README, encoding="utf-8") as f:
        text = f.read()
    lines = seed_readme_lines(text)
    assert len(lines) >= 15, lines  # the parser found the blocks
    assert sorted(set(lines) - {c.line for c in SEED_COMMANDS}) == []
    assert "MICROGPT_VERIFY_JIT=1" in text


def made_up_book(rng: random.Random) -> str:
    """A small Project Gutenberg text: the markers data.gutenberg_body looks for, around made-up prose."""
    words = "Alice the rabbit said to her and was very curious queen cat tea party down hole".split()
    prose = "\n".join(" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(120))
    return ("The Project Gutenberg eBook of a test\n\n*** START OF THE PROJECT GUTENBERG EBOOK A TEST ***\n\n"
            f"CHAPTER I.\n{prose}\n\n*** END OF THE PROJECT GUTENBERG EBOOK A TEST ***\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A fresh working folder as after the seed's downloads: data/names and data/alice filled, no models yet."""
    d = tmp_path_factory.mktemp("seed")
    rng = random.Random(12)
    names = "\n".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))
                      for _ in range(300))
    book = made_up_book(rng)
    for scenario, file, content in (("names", "names.txt", names), ("alice", "alice.txt", book),
                                    ("alice_v2", "alice.txt", book)):
        os.makedirs(d / "data" / scenario, exist_ok=True)
        (d / "data" / scenario / file).write_text(content + "\n", encoding="utf-8")
    return d


def argv_of(command: SeedCommand) -> tuple[list[str], dict]:
    """The line as a subprocess runs it: python is this interpreter, scripts are this checkout's."""
    words = shlex.split(command.line)
    env = {}
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    assert words[0] == "python", command.line
    script = os.path.join(ROOT, words[1])
    return [script, *words[2:], *command.extra], env


@pytest.mark.parametrize("command", [pytest.param(c, marks=[pytest.mark.slow] if c.slow else [], id=c.line)
                                     for c in SEED_COMMANDS])
def test_seed_command(workdir, command):
    if command.skip:
        pytest.skip(command.skip)
    argv, env = argv_of(command)
    # the data under data/<scenario>/ only, as on a clean clone after the downloads
    env.update(MICROGPT_DATA_DIR=str(workdir / "no-such-folder"), MICROGPT_OFFLINE="1")
    r = run_cli(argv, cwd=str(workdir), env=env, timeout=240)
    out = r.stderr + r.stdout
    assert r.returncode == 0, out
    assert "Traceback" not in out, out
    assert re.search(command.expect, out.rstrip("\n"), re.M), out


def test_inference_without_a_model_fails_fast_with_one_line(tmp_path):
    r = run_cli([os.path.join(ROOT, "main.py"), "--scenario", "alice_v2", "-i", "Alice"], cwd=str(tmp_path))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ("error: models/alice_v2/model.json: no such model file (train one with: python -m "
                        "microgpt.train)\n")
