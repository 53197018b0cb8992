"""Every bad input we try, what the user sees, and the table in docs/bad-inputs.md made from them.

Each case is one command line (after `python -m microgpt.train` or `python -m microgpt.generate`)
run in-process exactly as the entry point runs it (`cli.run_main`; argparse's exit 2 included),
or, for signals, as a real subprocess. test_bad_inputs_table.py runs them all, checks each
outcome, and checks that the table in the doc is the one these results give. After changing a
message or adding a case, rewrite the table with:

    python tests/reliability/bad_inputs.py --write
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import shlex
import signal
import sys
from dataclasses import dataclass
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(ROOT, "docs", "bad-inputs.md")
BEGIN, END = "<!-- bad-inputs table: begin (generated) -->", "<!-- bad-inputs table: end -->"


@dataclass
class Case:
    cmd: str  # "train" or "generate"
    bad: str  # the bad input, in words, for the table
    argv: Callable  # Workspace -> the arguments after `python -m microgpt.<cmd>`
    code: int  # the exit code the user gets
    expect: str  # a regex the last line of stderr must match (errors), or "" for a success
    shows: str = ""  # for a success: what the user gets, in words (`check` makes it true)
    check: Callable | None = None  # (Workspace, stdout) -> None, asserting `shows`
    runner: str = "inprocess"  # or "signal:SIGINT" / "signal:SIGTERM": a real process, signalled mid-run
    env: dict | None = None  # environment variables for this case (None: unset it)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


class Workspace:
    """A folder with the files the cases need: tiny data, configs, and trained models to damage."""

    def __init__(self, folder: str):
        from reliability_support import small_config_dict, write_config, write_names

        self.dir = folder
        self.data = write_names(os.path.join(folder, "names.txt"))
        self.config = write_config(os.path.join(folder, "small.json"), small_config_dict(20))
        self.long_config = write_config(os.path.join(folder, "long.json"), small_config_dict(100_000))
        self.config_dict = small_config_dict(20)
        self.other_data = write_names(os.path.join(folder, "other.txt"), seed=2)
        self.model = os.path.join(folder, "model.json")  # trained to the end (20 steps)
        self.partial = os.path.join(folder, "partial.json")  # stopped after step 5
        gen = dict(self.config_dict, sampling={"num_samples": 3, "temperature": 1.0})
        gen_config = write_config(os.path.join(folder, "gen.json"), gen)
        for out, extra in ((self.model, []), (self.partial, ["--stop-after", "5"])):
            r = self.run("train", ["--config", gen_config, "--data", self.data, "--num-samples", "0", "-o", out,
                                   *extra])
            assert r.code == 0, r.stderr

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def file(self, name: str, content) -> str:
        """A file holding `content` (bytes, text, or a JSON-able value)."""
        path = self.path(name)
        if not isinstance(content, (bytes, str)):
            content = json.dumps(content, allow_nan=True)
        with open(path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    def special(self, name: str, kind: str, to: str = "") -> str:
        """At `name`: a "fifo", a "socket", a "link" to `to`, a "file-link" (`to` made too), or a "loop" of two links.

        Made once: a case's arguments are built again for its row of the table.
        """
        path = self.path(name)
        if os.path.lexists(path):
            return path
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            import socket

            s = socket.socket(socket.AF_UNIX)
            s.bind(path)  # the socket file stays after close
            s.close()
        elif kind == "loop":
            os.symlink(f"{name}.2", path)
            os.symlink(name, f"{path}.2")
        else:
            if kind == "file-link":
                self.file(to, "a file the model replaces")
            os.symlink(to, path)
        return path

    def config_with(self, filename: str, section: str | None, **changes) -> str:
        d = copy.deepcopy(self.config_dict)
        (d[section] if section else d).update(changes)
        return self.file(filename, d)

    def model_with(self, name: str, change: Callable) -> str:
        with open(self.model, encoding="utf-8") as f:
            doc = json.load(f)
        change(doc)
        return self.file(name, doc)

    def train_args(self, *extra) -> list[str]:
        return ["--config", self.config, "--data", self.data, "--num-samples", "0", *extra]

    def gen_args(self, *extra) -> list[str]:
        """As a user runs generate: the default backend (fused when numba is installed)."""
        return ["--model", self.model, *extra]

    def run(self, cmd: str, argv: list[str], env: dict | None = None) -> Outcome:
        """The entry point in this process, as `python -m microgpt.<cmd>` runs it, in this folder."""
        from microgpt import generate, train
        from microgpt.cli import run_main

        main = {"train": train.main, "generate": generate.main}[cmd]
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        saved = {k: os.environ.get(k) for k in env or {}}
        _set_env(env or {})
        os.chdir(self.dir)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = run_main(main, argv)
                except SystemExit as e:  # argparse
                    code = e.code
        finally:
            os.chdir(cwd)
            _set_env(saved)
        return Outcome(code, out.getvalue(), err.getvalue())

    def run_signalled(self, cmd: str, argv: list[str], signum: int) -> Outcome:
        """A real process, signalled once it has printed its first progress line."""
        from reliability_support import LineReader, popen_cli

        proc = popen_cli(["-m", f"microgpt.{cmd}", *argv], cwd=self.dir)
        stdout = LineReader(proc.stdout)
        stdout.wait_for(r"^step +\d+ /" if cmd == "train" else r".")
        proc.send_signal(signum)
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
        return Outcome(code, stdout.text(), err)


def _set_env(env: dict) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _require(condition: bool) -> None:
    assert condition


def _greedy_equal(ws: Workspace, out: str) -> None:
    assert out == ws.run("generate", ws.gen_args("-t", "0", "-n", "2")).stdout and out


def _samples(out: str) -> list[str]:
    from golden.reference import printed_samples  # here: run as a script, tests/ is on the path only in main()

    return printed_samples(out)


def _deep(depth: int) -> str:
    return '{"model": {"n_embd": ' + "[" * depth + "]" * depth + "}}"


T, G = "train", "generate"
CASES = [
    # -- command-line flags of train
    Case(T, "`--steps 0`", lambda w: w.train_args("--steps", "0"), 1, r"^error: --steps must be >= 1, got 0$"),
    Case(T, "`--steps -3`", lambda w: w.train_args("--steps", "-3"), 1, r"--steps must be >= 1, got -3$"),
    Case(T, "`--steps abc`", lambda w: w.train_args("--steps", "abc"), 2, r"invalid int value: 'abc'$"),
    Case(T, "`--batch-size 0`", lambda w: w.train_args("--batch-size", "0"), 1, r"--batch-size must be >= 1"),
    Case(T, "`--grad-accum 0`", lambda w: w.train_args("--grad-accum", "0"), 1, r"--grad-accum must be >= 1"),
    Case(T, "`--log-every 0`", lambda w: w.train_args("--log-every", "0"), 1, r"--log-every must be >= 1"),
    Case(T, "`--stop-after 0`", lambda w: w.train_args("--stop-after", "0"), 1, r"--stop-after must be >= 1"),
    Case(T, "unknown scenario", lambda w: ["--scenario", "nope"], 1, r"unknown scenario 'nope'"),
    Case(T, "unknown backend", lambda w: w.train_args("--backend", "jax"), 2, r"invalid choice: 'jax'"),
    Case(T, "`--device` with a backend other than torch", lambda w: w.train_args("--backend", "python", "--device",
         "cpu"), 1, r"^error: --device: for --backend torch only \(this run uses python\)$"),
    Case(T, "`--dtype float16`", lambda w: w.train_args("--dtype", "float16"), 2, r"invalid choice: 'float16'"),
    Case(T, "float32 on the python backend", lambda w: w.train_args("--backend", "python", "--dtype", "float32"),
         1, r"backend 'python' supports dtype float64, not float32$"),
    # -- config files
    Case(T, "config file missing", lambda w: ["--config", w.path("none.json")], 1, r"no such config file$"),
    Case(T, "config is a folder", lambda w: ["--config", w.dir], 1, r"cannot read: .*Is a directory"),
    Case(T, "config empty", lambda w: ["--config", w.file("empty.json", b"")], 1, r"not valid JSON: Expecting"),
    Case(T, "config truncated", lambda w: ["--config", w.file("cut.json", '{"model": {"n_embd": 16,')], 1,
         r"not valid JSON: .* at line 1 column \d+$"),
    Case(T, "config not UTF-8", lambda w: ["--config", w.file("latin.json", b'{"name": "caf\xe9"}')], 1,
         r"cannot read: 'utf-8' codec can't decode"),
    Case(T, "config is a list", lambda w: ["--config", w.file("list.json", [1, 2])], 1,
         r"the top level must be an object, got list$"),
    Case(T, "unknown key", lambda w: ["--config", w.config_with("extra.json", "model", n_embed=16)], 1,
         r"model.n_embed: unknown key \(known: n_embd, "),
    Case(T, "unknown key with a newline in it", lambda w: ["--config", w.config_with("nl.json", "model",
                                                                                      **{"a\nb": 1})], 1,
         r'model."a\\nb": unknown key'),
    Case(T, "wrong type", lambda w: ["--config", w.config_with("type.json", "model", n_embd="16")], 1,
         r'model.n_embd: expected an integer, got "16"$'),
    Case(T, "`n_embd` not divisible by `n_head`", lambda w: ["--config", w.config_with("div.json", "model",
                                                                                         n_embd=6, n_head=4)],
         1, r"model.n_head: n_embd \(6\) must be divisible by n_head \(4\)$"),
    Case(T, "`NaN` literal", lambda w: ["--config", w.config_with("nan.json", "training",
                                                                 learning_rate=float("nan"))], 1,
         r"training.learning_rate: must be a finite number, got nan$"),
    Case(T, "`1e999` (infinite)", lambda w: ["--config", w.file("inf.json", '{"training": {"learning_rate": 1e999}}')],
         1, r"training.learning_rate: must be a finite number, got inf$"),
    Case(T, "negative learning rate", lambda w: ["--config", w.config_with("neg.json", "training",
                                                                          learning_rate=-0.1)], 1,
         r"training.learning_rate: must be > 0, got -0.1$"),
    Case(T, "`beta2: 1`", lambda w: ["--config", w.config_with("beta.json", "training", beta2=1)], 1,
         r"training.beta2: must be in \[0, 1\), got 1$"),
    Case(T, "integer too large", lambda w: ["--config", w.config_with("big.json", "training", seed=2 ** 60)], 1,
         r"training.seed: 1152921504606846976 is too large$"),
    Case(T, "a number of 5000 digits", lambda w: ["--config", w.file("digits.json",
                                                                     '{"training": {"seed": ' + "9" * 5000 + "}}")],
         1, r"holds a number of 5000 digits, too long to read$"),
    Case(T, "nested 100,000 deep", lambda w: ["--config", w.file("deep.json", _deep(100_000))], 1,
         r"JSON nested too deeply to read$"),
    Case(T, "nested 900 deep (readable)", lambda w: ["--config", w.file("deep900.json", _deep(900))], 1,
         r"model.n_embd: expected an integer, got \[\[\[\["),
    Case(T, "`name` with a slash", lambda w: ["--config", w.config_with("slash.json", None, name="a/b")], 1,
         r'name: "a/b" cannot be used as a folder name under models/'),
    Case(T, "`name` with a NUL character", lambda w: ["--config", w.config_with("nul.json", None, name="a\0b")],
         1, r'name: "a\\u0000b" cannot be used as a folder name'),
    Case(T, "`data.file` a path", lambda w: ["--config", w.config_with("file.json", "data", file="../x.txt")], 1,
         r'data.file: must be a plain file name, got "../x.txt"'),
    Case(T, "`chunks` without a chunk size", lambda w: ["--config", w.config_with("chunks.json", "data",
                                                                                 format="chunks")], 1,
         r"data.chunk_size: format 'chunks' needs a chunk_size >= 1$"),
    Case(T, "config with a UTF-8 byte-order mark", lambda w: ["--config", w.file(
        "bom.json", b"\xef\xbb\xbf" + json.dumps(w.config_dict).encode()), "--data", w.data, "--steps", "2",
        "--num-samples", "0", "-o", w.path("bom-model.json")], 0, "",
         shows="trains as without the mark", check=lambda w, out: _require("saved" in out)),
    # -- data
    Case(T, "`--data` missing", lambda w: ["--config", w.config, "--data", w.path("none.txt")], 1,
         r"--data .*none.txt: no such file$"),
    Case(T, "`--data` empty", lambda w: ["--config", w.config, "--data", w.file("empty.txt", "\n\n")], 1,
         r"empty.txt: contains no documents$"),
    Case(T, "`--data` a folder", lambda w: ["--config", w.config, "--data", w.dir], 1, r"--data <tmp>: a folder, not a file$"),
    Case(T, "scenario alice, offline, no copy of the book (`MICROGPT_DATA_DIR` unset)",
         lambda w: ["--scenario", "alice"], 1,
         r"^error: no data for scenario 'alice': MICROGPT_OFFLINE=1 forbids downloads\. Place alice.txt at "
         r"data/alice/alice.txt \(from https://www.gutenberg.org/\S+, https://www.gutenberg.org/\S+\), set "
         r"MICROGPT_DATA_DIR to a folder holding it, or pass --data PATH$",
         env={"MICROGPT_DATA_DIR": None, "MICROGPT_OFFLINE": "1"}),
    # -- MICROGPT_* environment variables (microgpt/envvars.py), read before anything else runs
    Case(T, "`MICROGPT_PARALLEL_MIN_WORK` not a number", lambda w: w.train_args("--backend", "python"), 1,
         r"^error: environment variable MICROGPT_PARALLEL_MIN_WORK='1M' is not a whole number: it takes a whole "
         r"number >= 0 \(.*\); change it or unset it$", env={"MICROGPT_PARALLEL_MIN_WORK": "1M"}),
    Case(T, "`MICROGPT_CAUSAL_PARALLEL_MIN_SCORES` negative", lambda w: w.train_args(), 1,
         r"^error: environment variable MICROGPT_CAUSAL_PARALLEL_MIN_SCORES='-1' is negative: ",
         env={"MICROGPT_CAUSAL_PARALLEL_MIN_SCORES": "-1"}),
    Case(T, "`MICROGPT_OFFLINE=yes`", lambda w: w.train_args(), 1,
         r"^error: environment variable MICROGPT_OFFLINE='yes' is neither 1 nor 0: it takes 1 or 0 "
         r"\(1 forbids downloads\); change it or unset it$", env={"MICROGPT_OFFLINE": "yes"}),
    Case(T, "`MICROGPT_VERIFY_JIT=true`", lambda w: w.train_args(), 1,
         r"^error: environment variable MICROGPT_VERIFY_JIT='true' is neither 1 nor 0: ",
         env={"MICROGPT_VERIFY_JIT": "true"}),
    Case(T, "`MICROGPT_DATA_DIR` a file", lambda w: ["--scenario", "names"], 1,
         r"^error: environment variable MICROGPT_DATA_DIR='names.txt' is a file, not a folder: ",
         env={"MICROGPT_DATA_DIR": "names.txt"}),
    Case(T, "`--data` not UTF-8", lambda w: ["--config", w.config, "--data", w.file("bin.txt", b"ab\xff\xfe\n")],
         1, r"bin.txt: not UTF-8 text \(invalid start byte at byte 2\)$"),
    # -- output
    Case(T, "`-o` inside a file", lambda w: w.train_args("--steps", "2", "-o", w.file("plain", "x") + "/m.json"),
         1, r"^error: --output <tmp>/plain/m.json: <tmp>/plain is a file, not a folder$"),
    Case(T, "`-o` a folder", lambda w: w.train_args("--steps", "2", "-o", w.dir), 1,
         r"^error: --output <tmp>: is a folder; give the path of a file inside it$"),
    Case(T, "`-o` a named pipe (FIFO)", lambda w: w.train_args("--steps", "2", "-o", w.special("fifo.json", "fifo")),
         1, r"^error: --output <tmp>/fifo.json: is a named pipe \(FIFO\), not a regular file; give the path of a "
            r"file \(only regular files are replaced\)$"),
    Case(T, "`-o` a socket", lambda w: w.train_args("--steps", "2", "-o", w.special("sock.json", "socket")), 1,
         r"^error: --output <tmp>/sock.json: is a socket, not a regular file"),
    Case(T, "`-o` a link to a named pipe", lambda w: w.train_args("--steps", "2", "-o", w.special(
        "to-fifo.json", "link", w.special("fifo.json", "fifo"))), 1,
         r"^error: --output <tmp>/to-fifo.json \(a link to <tmp>/fifo.json\): is a named pipe \(FIFO\)"),
    Case(T, "`-o` a dangling symbolic link", lambda w: w.train_args("--steps", "2", "-o", w.special(
        "dangling.json", "link", "gone.json")), 1,
         r"^error: --output <tmp>/dangling.json: a symbolic link to gone.json, which does not exist; create the "
         r"target or give another path$"),
    Case(T, "`-o` a loop of symbolic links", lambda w: w.train_args("--steps", "2", "-o", w.special("loop",
                                                                                                  "loop")), 1,
         r"^error: --output <tmp>/loop: a loop of symbolic links; give another path$"),
    Case(T, "`-o` a symbolic link to a file", lambda w: w.train_args("--steps", "2", "-o", w.special(
        "link.json", "file-link", "linked.json")), 0, "",
         shows="the model is written to the link's target (the temporary file beside it); the link stays a link",
         check=lambda w, out: _require(os.path.islink(w.path("link.json")) and
                                       json.loads(w.read(w.path("linked.json")))["format"] == "microgpt")),
    Case(T, "`-o ''`", lambda w: w.train_args("--steps", "2", "-o", ""), 1,
         r"^error: --output: the path is empty; give a file path$"),
    Case(T, "`--resume -o` a named pipe", lambda w: w.train_args("--resume", "-o", w.special("fifo.json", "fifo")),
         1, r"^error: --output <tmp>/fifo.json: is a named pipe"),
    Case(T, "`--num-samples -1`", lambda w: w.train_args("--steps", "2", "--num-samples", "-1"), 1,
         r"^error: --num-samples must be >= 0 \(0: no samples\), got -1$"),
    Case(T, "`--num-samples 0`", lambda w: w.train_args("--steps", "2", "-o", w.path("zero.json")), 0, "",
         shows="trains and saves, prints no samples (a run whose model is the point)",
         check=lambda w, out: _require("sample" not in out and os.path.exists(w.path("zero.json")))),
    # -- resume
    Case(T, "`--resume` with no model", lambda w: w.train_args("--resume", "-o", w.path("none.json")), 1,
         r"none.json: no such model file \(train one with: python -m microgpt.train\)$"),
    Case(T, "`--resume` with other data", lambda w: ["--config", w.config, "--data", w.other_data, "--resume",
                                                   "-o", w.partial], 1,
         r"partial.json: was trained on other data \(.*names.txt, sha256 .*\) than .*other.txt; resume with the "
         r"same --data$"),
    Case(T, "`--resume` with another `--seed`", lambda w: w.train_args("--resume", "--seed", "7", "-o", w.partial),
         1, r"--seed 7: .*partial.json was trained with seed 42, which fixes its document order; a resumed run "
            r"keeps it \(leave out --seed\)$"),
    Case(T, "`--resume` with another `--batch-size`",
         lambda w: w.train_args("--resume", "--batch-size", "3", "-o", w.partial), 1,
         r"partial.json was trained with 1 doc\(s\) x 1 accumulation per step, this run asks for 3 x 1; resume "
         r"with --batch-size 1 --grad-accum 1$"),
    Case(T, "`--resume --stop-after` at or before the saved step",
         lambda w: w.train_args("--resume", "--stop-after", "5", "-o", w.partial), 1,
         r"--stop-after 5: .*partial.json is already at step 5; give a later step$"),
    Case(T, "`--resume --steps` below the saved step", lambda w: w.train_args("--resume", "--steps", "4", "-o",
                                                                              w.partial), 1,
         r"--steps 4: .*partial.json is already at step 5; give a larger --steps to train further$"),
    Case(T, "`--resume` of a finished run", lambda w: w.train_args("--resume", "-o", w.model), 0, "",
         shows="`already trained 20 of 20 steps (...); nothing to resume`, then the samples; the file is untouched",
         check=lambda w, out: _require("nothing to resume" in out and "saved" not in out)),
    # -- numbers
    Case(T, "learning rate 1e6 (diverges)", lambda w: ["--config", w.config_with("absurd.json", "training",
                                                                                learning_rate=1e6),
                                                       "--data", w.data, "--num-samples", "0", "-o",
                                                       w.file("good.json", w.read(w.model))], 1,
         r"the loss became inf at step 2; stopped without saving; .*good.json is as it was \(lower "
         r"training.learning_rate\?\)$"),
    # -- signals
    Case(T, "Ctrl-C (SIGINT) while training", lambda w: ["--config", w.long_config, "--data", w.data, "--log-every",
                                                        "1", "-o", w.path("sigint.json")], 130,
         r"^SIGINT: stopped after step N of 100000; saved .*sigint.json \(continue with --resume\)$",
         runner="signal:SIGINT"),
    Case(T, "SIGTERM while training", lambda w: ["--config", w.long_config, "--data", w.data, "--log-every", "1",
                                               "-o", w.path("sigterm.json")], 143,
         r"^SIGTERM: stopped after step N of 100000; saved .*sigterm.json \(continue with --resume\)$",
         runner="signal:SIGTERM"),
    # -- model files
    Case(G, "model missing", lambda w: ["--model", w.path("none.json")], 1, r"no such model file"),
    Case(G, "scenario never trained", lambda w: ["--scenario", "nope"], 1,
         r"models/nope/model.json: no such model file"),
    Case(G, "model empty", lambda w: ["--model", w.file("empty-model.json", b"")], 1,
         r"not a valid model file \(JSON error: Expecting value at line 1, column 1; truncated\?\)$"),
    Case(G, "model truncated", lambda w: ["--model", w.file("cut-model.json", w.read(w.model_with(
        "fixed.json", lambda d: d["dataset"].update(source="names.txt")))[:999])], 1,
         r"not a valid model file \(JSON error: .*; truncated\?\)$"),
    Case(G, "model not JSON", lambda w: ["--model", w.file("hello.json", "hello")], 1, r"not a valid model file"),
    Case(G, "a config given as the model", lambda w: ["--model", w.config], 1,
         r'not a microgpt model file \(no "format": "microgpt"\)$'),
    Case(G, "model of another version", lambda w: ["--model", w.model_with("v2.json", lambda d: d.update(version=2))],
         1, r"model format version 2 is not supported \(this microgpt reads version 1\)"),
    Case(G, "a weight `NaN`", lambda w: ["--model", w.model_with("nan-w.json", lambda d: d["weights"]["wte"][0]
                                                                 .__setitem__(0, float("nan")))], 1,
         r"weights.wte: row 0 holds NaN, not a finite number$"),
    Case(G, "a weight of 400 digits", lambda w: ["--model", w.model_with("big-w.json", lambda d: d["weights"]["wte"][0]
                                                                         .__setitem__(0, 10 ** 400))], 1,
         r"weights.wte: row 0 holds 10+\.\.\., not a finite number$"),
    Case(G, "a weight matrix of the wrong shape", lambda w: ["--model", w.model_with("shape.json", lambda d: d[
        "weights"]["wpe"].pop())], 1, r"weights.wpe: expected shape 4x2, got 3 rows$"),
    Case(G, "a top-level key missing", lambda w: ["--model", w.model_with("nokey.json", lambda d: d.pop(
        "uchars"))], 1, r"<tmp>/nokey.json: missing key 'uchars'$"),
    Case(G, "a parameter missing", lambda w: ["--model", w.model_with("miss.json", lambda d: d["weights"].pop(
        "lm_head"))], 1, r"'weights' is missing parameter 'lm_head'$"),
    Case(G, "a negative Adam second moment", lambda w: ["--model", w.model_with("adam.json", lambda d: d[
        "train_state"]["adam_v"]["wte"][0].__setitem__(0, -1.0))], 1,
         r"train_state.adam_v.wte: row 0 holds -1.0, but must be >= 0$"),
    Case(G, "a broken RNG state", lambda w: ["--model", w.model_with("rng.json", lambda d: d["train_state"][
        "rng_state"].__setitem__(0, 2))], 1, r"'train_state.rng_state' is not a Python random state$"),
    Case(G, "a step beyond the run", lambda w: ["--model", w.model_with("step.json", lambda d: d["train_state"]
                                                                        .update(step=21))], 1,
         r"'train_state.step' must be an integer from 0 to the run's 20 steps, got 21$"),
    Case(G, "weights of 1e308 (finite, overflowing)", lambda w: [
        "--model", w.model_with("huge.json", lambda d: d.update(weights={n: [[1e308] * len(r) for r in m] for n, m in
                                                                         d["weights"].items()})),
        "-n", "1"], 1,
         r"the model's logit for token 0 is nan, not a finite number: its weights are unusable \(did training "
         r"diverge\?\)$"),
    # -- prompts and limits
    Case(G, "prompt character not in the vocabulary", lambda w: w.gen_args("-i", "z3"), 1,
         r"character '3' is not in the model's vocabulary"),
    Case(G, "prompt longer than the context", lambda w: w.gen_args("-i", "abcd"), 1,
         r"the prompt has 4 characters but the context holds 3; shorten it or use --chain$"),
    Case(G, "prompt longer than the context, `--chain`", lambda w: w.gen_args("-i", "abcdefgh", "--chain",
                                                                              "--no-stop-at-bos", "--max-chars", "20"),
         0, "", shows="the prompt, then 20 characters (the first round sees its last 3, later rounds keep 2)",
         check=lambda w, out: _require(out.startswith("abcdefgh") and len(out) == 8 + 20 + 1)),
    Case(G, "empty prompt `-i ''`", lambda w: w.gen_args("-i", "", "-n", "3"), 0, "",
         shows="3 samples, as with no prompt", check=lambda w, out: _require(len(_samples(out)) == 3)),
    Case(G, "`-t -1`", lambda w: w.gen_args("-t", "-1"), 1,
         r"--temperature must be a finite number >= 0 \(0 is greedy\), got -1.0$"),
    Case(G, "`-t=-1e-300`", lambda w: w.gen_args("-t=-1e-300"), 1, r"--temperature must be .*got -1e-300$"),
    Case(G, "`-t -1e-300` (argparse reads it as an option)", lambda w: w.gen_args("-t", "-1e-300"), 2,
         r"argument -t/--temperature: expected one argument$"),
    Case(G, "`-t nan`", lambda w: w.gen_args("-t", "nan"), 1, r"--temperature must be .*got nan$"),
    Case(G, "`-t inf`", lambda w: w.gen_args("-t", "inf"), 1, r"--temperature must be .*got inf$"),
    Case(G, "`-t 0`", lambda w: w.gen_args("-t", "0", "-n", "2"), 0, "", shows="greedy: the same samples every "
         "time, whatever the seed", check=lambda w, out: _require(len(set(_samples(out))) == 1)),
    Case(G, "`-t 1e-300` (1/t overflows)", lambda w: w.gen_args("-t", "1e-300", "-n", "2", "--seed", "3"), 0, "",
         shows="the greedy samples (the limit)", check=_greedy_equal),
    Case(G, "`-n -1`", lambda w: w.gen_args("-n", "-1"), 1, r"--num-samples must be >= 1, got -1$"),
    Case(G, "`-n 0`", lambda w: w.gen_args("-n", "0"), 1, r"^error: --num-samples must be >= 1, got 0$"),
    Case(G, "a model trained with `--num-samples 0`, no `-n`", lambda w: ["--model", w.model_with(
        "zero-samples.json", lambda d: d["config"]["sampling"].update(num_samples=0))], 0, "",
         shows="20 samples, the default: the 0 applied to training", check=lambda w, out: _require(
             len(_samples(out)) == 20)),
    Case(G, "`--max-tokens -1`", lambda w: w.gen_args("--max-tokens", "-1"), 1, r"--max-tokens must be >= 0"),
    Case(G, "`--max-tokens 0`", lambda w: w.gen_args("--max-tokens", "0", "-n", "2", "-i", "ab"), 0, "",
         shows="2 samples that are the prompt alone", check=lambda w, out: _require(_samples(out) == ["ab", "ab"])),
    Case(G, "`--chain --max-tokens 5`", lambda w: w.gen_args("--chain", "--max-tokens", "5"), 1,
         r"--max-tokens limits each sample; a --chain text is limited by --max-chars$"),
    Case(G, "`--chain --max-chars -1`", lambda w: w.gen_args("--chain", "--max-chars", "-1"), 1,
         r"--max-chars must be >= 0, got -1$"),
    Case(G, "`--chain --max-chars 0`", lambda w: w.gen_args("--chain", "--max-chars", "0", "-i", "ab"), 0, "",
         shows="the prompt alone", check=lambda w, out: _require(out == "ab\n")),
    Case(G, "`--chain` without `--max-chars`", lambda w: w.gen_args("--chain", "--no-stop-at-bos", "--seed", "1"), 0,
         "", shows="500 characters (the default `--max-chars`)", check=lambda w, out: _require(len(out) == 500 + 1)),
    Case(G, "`--chain --chain-context 4` (not below `block_size` 4)",
         lambda w: w.gen_args("--chain", "--chain-context", "4"), 1,
         r"--chain-context must be from 1 to block_size - 1 = 3 \(the context holds 4 tokens with BOS\), got 4$"),
    Case(G, "`--chain --chain-context 0`", lambda w: w.gen_args("--chain", "--chain-context", "0"), 1,
         r"--chain-context must be from 1 to block_size - 1 = 3 .*got 0$"),
    # -- sampling options (SPEC section 10)
    Case(G, "`--top-k -1`", lambda w: w.gen_args("--top-k", "-1"), 1,
         r"--top-k must be >= 0 \(0 keeps every token\), got -1$"),
    Case(G, "`--repetition-penalty 0`", lambda w: w.gen_args("--repetition-penalty", "0"), 1,
         r"--repetition-penalty must be a finite number >= 1.0 \(1.0 is off; the seed used 1.2\), got 0.0$"),
    Case(G, "`--repetition-penalty 0.9` (below 1 would reward repeats)",
         lambda w: w.gen_args("--repetition-penalty", "0.9"), 1, r"--repetition-penalty must be .*got 0.9$"),
    Case(G, "`--repetition-penalty nan`", lambda w: w.gen_args("--repetition-penalty", "nan"), 1,
         r"--repetition-penalty must be .*got nan$"),
    Case(G, "`--repetition-window 0`", lambda w: w.gen_args("--repetition-window", "0"), 1,
         r"--repetition-window must be >= 1, got 0$"),
    Case(G, "`--top-k 1`", lambda w: w.gen_args("--top-k", "1", "-n", "2", "--seed", "5"), 0, "",
         shows="the greedy samples", check=_greedy_equal),
    Case(G, "`--seed 1 --no-seed`", lambda w: w.gen_args("--seed", "1", "--no-seed"), 2,
         r"argument --no-seed: not allowed with argument --seed$"),
    Case(G, "`--chain --max-chars 1000000000000000`, then Ctrl-C", lambda w: w.gen_args(
        "--chain", "--no-stop-at-bos", "--max-chars", str(10 ** 15)), 130, r"^interrupted$",
         runner="signal:SIGINT"),
]


def run_case(ws: Workspace, case: Case) -> Outcome:
    argv = case.argv(ws)
    if case.runner.startswith("signal:"):
        return ws.run_signalled(case.cmd, argv, getattr(signal, case.runner.split(":")[1]))
    return ws.run(case.cmd, argv, case.env)


def normalize(text: str, ws: Workspace) -> str:
    """Paths relative to the workspace; the step a signal happened to land on as N."""
    text = text.replace(ws.dir, "<tmp>")
    return re.sub(r"(stopped after step )\d+", r"\1N", text)


def what_user_sees(case: Case, outcome: Outcome, ws: Workspace) -> str:
    if case.expect:
        lines = outcome.stderr.strip().splitlines()
        return normalize(lines[-1], ws) if lines else ""
    return case.shows


def command_line(case: Case, ws: Workspace) -> str:
    line = shlex.join(case.argv(ws))
    line = line.replace(ws.dir, "<tmp>")
    return line if len(line) <= 90 else line[:87] + "..."


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(ws: Workspace, outcomes: dict[int, Outcome]) -> str:
    rows = ["| # | command | bad input | exit | what the user sees |", "| --- | --- | --- | --- | --- |"]
    for i, case in enumerate(CASES):
        sees = what_user_sees(case, outcomes[i], ws)
        sees = f"`{sees}`" if case.expect else sees
        env = "".join(f"{k}={v} " for k, v in (case.env or {}).items() if v is not None)
        rows.append(f"| {i + 1} | `{env}{case.cmd} {_cell(command_line(case, ws))}` | {_cell(case.bad)} | "
                    f"{case.code} | {_cell(sees)} |")
    return "\n".join(rows)


def doc_table(path: str = DOC) -> str | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def write_doc(new_table: str, path: str = DOC) -> None:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{BEGIN}\n{new_table}\n{END}{tail}")


def main() -> None:
    import tempfile

    sys.path[:0] = [HERE, os.path.dirname(HERE), ROOT]  # conftest, reliability_support, microgpt
    os.environ.setdefault("MICROGPT_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(d)
        outcomes = {i: run_case(ws, c) for i, c in enumerate(CASES)}
        new = table(ws, outcomes)
    if "--write" in sys.argv:
        write_doc(new)
        print(f"wrote {len(CASES)} rows to {DOC}")
    else:
        print(new)


if __name__ == "__main__":
    main()
