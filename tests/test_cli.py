"""microgpt.cli, what the command lines share, run as a user runs them: header and progress lines, exit codes,
one-line errors without tracebacks, the no-data message, the root shims (generate's own flags: test_generate.py)."""

import json
import os
import re

from conftest import run_cli, shared_file, tiny_config_dict

LOSS_LINE = re.compile(r"^step +(\d+) / +(\d+) \| loss (\d+\.\d{4}) \|", re.M)


def losses(stdout):
    return [(int(s), float(l)) for s, _, l in LOSS_LINE.findall(stdout)]


def assert_clean_error(result, *fragments):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    err = result.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def test_names_header_progress_and_determinism(tmp_path):
    shared_file("names.txt")
    args = ["-m", "microgpt.train", "--backend", "python", "--steps", "3", "--log-every", "1",
            "--num-samples", "3", "-o", str(tmp_path / "m.json")]
    a, b = run_cli(args), run_cli(args)
    assert a.returncode == 0, a.stderr
    head = a.stdout.splitlines()[:3]
    assert head == ["num docs: 32033", "vocab size: 27", "num params: 4192"]
    la = losses(a.stdout)
    assert [s for s, _ in la] == [1, 2, 3] and la == losses(b.stdout)
    assert "step    1 /    3 | loss 3.3660" in a.stdout  # the reference microgpt's first loss
    assert "ETA" in a.stdout and "steps/s" in a.stdout
    assert re.search(r"^val loss: \d+\.\d{4} \(1000 held-out docs\)$", a.stdout, re.M)
    samples = re.findall(r"^sample +\d+: (.*)$", a.stdout, re.M)
    assert len(samples) == 3 and samples == re.findall(r"^sample +\d+: (.*)$", b.stdout, re.M)
    assert os.path.exists(tmp_path / "m.json")


def test_progress_every_five_percent_off_a_terminal(tmp_path):
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "python", "--steps", "40", "--num-samples", "0",
                 "-o", str(tmp_path / "m.json")])
    assert r.returncode == 0, r.stderr
    assert [s for s, _ in losses(r.stdout)] == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32,
                                                34, 36, 38, 40]


def test_training_needs_no_third_party_package(tmp_path):
    """numpy (and numba) unimportable: the python backend still trains and samples."""
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--steps", "2", "--num-samples", "2", "-o", str(tmp_path / "m.json")],
                block=("numpy", "numba", "scipy"))
    assert r.returncode == 0, r.stderr
    assert "numba is not installed" in r.stderr and "backend: python" in r.stdout
    assert len(re.findall(r"^sample", r.stdout, re.M)) == 2
    g = run_cli(["-m", "microgpt.generate", "--model", str(tmp_path / "m.json"), "-n", "2"], block=("numpy",))
    assert g.returncode == 0 and len(g.stdout.splitlines()) == 2, g.stderr


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    shared_file("names.txt")
    assert_clean_error(run_cli(["-m", "microgpt.generate", "--model", str(tmp_path / "none.json")]),
                       "no such model file")
    model = str(tmp_path / "m.json")
    run_cli(["-m", "microgpt.train", "--backend", "python", "--steps", "1", "--num-samples", "0", "-o", model])
    # '3' has no other case ('Z' would become 'z': the names vocabulary is lowercase)
    assert_clean_error(run_cli(["-m", "microgpt.generate", "--model", model, "-i", "ed3"]), "'3'", "'abcdefghij")
    with open(model, "w") as f:
        f.write("{")
    assert_clean_error(run_cli(["-m", "microgpt.generate", "--model", model]), "not a valid model file")
    bad = tmp_path / "bad.json"
    cfg = tiny_config_dict()
    cfg["model"]["n_head"] = 3
    bad.write_text(json.dumps(cfg))
    assert_clean_error(run_cli(["-m", "microgpt.train", "--config", str(bad)]), "bad.json", "model.n_head")
    assert_clean_error(run_cli(["-m", "microgpt.train", "--scenario", "nope"]), "unknown scenario 'nope'")
    assert_clean_error(run_cli(["-m", "microgpt.train", "--steps", "0"]), "--steps must be >= 1")


def test_no_data_offline_says_what_to_place_where(tmp_path):
    env = {"MICROGPT_DATA_DIR": str(tmp_path / "empty"), "MICROGPT_OFFLINE": "1"}
    r = run_cli(["-m", "microgpt.train", "--scenario", "alice"], cwd=str(tmp_path), env=env)
    assert_clean_error(r, "alice.txt", "MICROGPT_DATA_DIR", "--data")
    r = run_cli(["-m", "microgpt.train"], cwd=str(tmp_path), env=env, block=("names",))
    assert_clean_error(r, "names.txt", "'names' package")


def test_root_shims_still_work(tmp_path):
    shared_file("names.txt")
    from conftest import ROOT
    for script, *word in (("train.py",), ("main.py", "train")):  # main.py alone samples, as the seed's did
        r = run_cli([os.path.join(ROOT, script), *word, "--backend", "python", "--steps", "1", "--num-samples", "1",
                     "-o", str(tmp_path / f"{script}.json")], cwd=str(tmp_path))
        assert r.returncode == 0 and "num params: 4192" in r.stdout, r.stderr


def test_each_command_names_itself_in_its_usage_line(tmp_path):
    """The root shims' --help names the command typed (the seed's `python main.py`), not the module behind it."""
    from conftest import ROOT
    for command, usage in ((["main.py"], "python main.py"), (["main.py", "train"], "python main.py train"),
                           (["main.py", "generate"], "python main.py generate"), (["train.py"], "python train.py"),
                           (["-m", "microgpt.train"], "python -m microgpt.train"),
                           (["-m", "microgpt.generate"], "python -m microgpt.generate")):
        script = [os.path.join(ROOT, command[0]), *command[1:]] if command[0] != "-m" else command
        r = run_cli([*script, "--help"], cwd=ROOT)
        assert r.returncode == 0 and r.stdout.startswith(f"usage: {usage} [-h]"), (command, r.stdout[:120])
