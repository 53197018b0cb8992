"""microgpt.train: `--quiet` prints what its help says, the final figures and the samples, nothing before them.

A run stopped, resumed or fed bad input is tests/reliability's; the output every command line shares, test_cli.py's.
"""

from __future__ import annotations

import json
import random

from conftest import run_cli, tiny_config_dict


def test_quiet_prints_only_the_final_figures_and_the_samples(tmp_path):
    rng = random.Random(5)
    (tmp_path / "names.txt").write_text("\n".join("".join(rng.choice("abcdef") for _ in range(rng.randint(2, 6)))
                                                  for _ in range(60)) + "\n")
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_config_dict()))
    base = ["-m", "microgpt.train", "--config", str(tmp_path / "tiny.json"), "--data", str(tmp_path / "names.txt"),
            "--backend", "python", "--steps", "4", "--num-samples", "3"]
    loud = run_cli(base + ["-o", str(tmp_path / "a.json")])
    quiet = run_cli(base + ["--quiet", "-o", str(tmp_path / "b.json")])
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    lines = quiet.stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["trained", "val", "---", "sample", "sample", "sample"], lines
    assert quiet.stderr == ""
    # the same run: the figures and samples are those the full output ends with
    assert loud.stdout.splitlines()[-5:] == lines[-5:]
    assert lines[0].split("final loss ")[1] == loud.stdout.split("final loss ")[1].splitlines()[0]
    assert "num docs:" in loud.stdout and "saved " in loud.stdout
    assert (tmp_path / "b.json").exists()  # quiet, but saved all the same
