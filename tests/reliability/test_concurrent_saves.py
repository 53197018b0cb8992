"""Two runs, one path: every save is whole and the file always loads, whoever wrote last."""

import os
import subprocess
import sys
import time

from conftest import run_cli
from reliability_support import LineReader, popen_cli, read_json, small_config_dict, write_config, write_names

from microgpt import checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
WRITER = os.path.join(HERE, "checkpoint_writer.py")
sys.path.insert(0, HERE)
from checkpoint_writer import check_whole  # noqa: E402


def test_two_writers_and_a_reader_on_one_path(tmp_path):
    """Two processes save names-sized checkpoints to one path while this one reads it; every read is one whole save."""
    path = tmp_path / "model.json"
    writers = [subprocess.Popen([sys.executable, WRITER, str(path), str(w), "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for w in (1, 2)]
    readers = [LineReader(p.stdout) for p in writers]
    try:
        for r in readers:
            r.wait_for(r"^saved")
        seen, loads = set(), 0
        deadline = time.monotonic() + 60
        # until both have saved 10 times over each other and the reader has met each one's file
        while min(len(r.snapshot().splitlines()) for r in readers) < 10 or seen != {1, 2} or loads < 20:
            assert time.monotonic() < deadline, (seen, loads)
            seen.add(check_whole(checkpoint.load(str(path)))[0])
            loads += 1
            assert all(p.poll() is None for p in writers), [p.stderr.read() for p in writers]
    finally:
        for p in writers:
            p.kill()
            p.wait(timeout=30)
    check_whole(checkpoint.load(str(path)))


def test_two_trainings_saving_to_the_same_default_path(tmp_path):
    data = write_names(tmp_path / "names.txt")
    config = write_config(tmp_path / "small.json", small_config_dict(30))
    args = ["-m", "microgpt.train", "--config", config, "--data", data, "--num-samples", "0"]
    procs = [popen_cli(args + ["--seed", str(seed)], cwd=str(tmp_path)) for seed in (1, 2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "saved models/tiny/model.json" in out
    path = tmp_path / "models" / "tiny" / "model.json"
    ck = checkpoint.load(str(path))
    seed = ck.config.training.seed
    assert seed in (1, 2)
    # whole: exactly what a run with that seed alone writes
    alone = tmp_path / "alone.json"
    r = run_cli(args + ["--seed", str(seed), "-o", str(alone)])
    assert r.returncode == 0, r.stderr
    assert read_json(path) == read_json(alone)
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]
