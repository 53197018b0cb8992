"""microgpt/report/document.py: the sections in order, the heading and the reproduce lines, and report.md with
its data/ folder."""

from __future__ import annotations

import json

from fakes import META, empty_inputs, fake_command_line
from microgpt.report import document
from microgpt.report.document import SECTIONS, heading_section, reproduce_section, write_report


def test_the_report_opens_with_its_heading_and_ends_with_how_to_reproduce_it():
    """SECTIONS runs top to bottom: heading first, reproduce last, no section twice."""
    assert SECTIONS[0] is heading_section and SECTIONS[-1] is reproduce_section
    assert len(set(SECTIONS)) == len(SECTIONS)


def test_a_section_whose_tool_was_not_run_writes_nothing(tmp_path):
    """Without any results only the heading, the headline's note and the reproduce lines are written."""
    inputs = empty_inputs(tmp_path)
    writing = [s.__name__ for s in SECTIONS if s(inputs)]
    assert writing == ["heading_section", "headline_section", "reproduce_section"]


def test_the_heading_names_the_date_the_commit_and_the_machine(tmp_path):
    """The first 12 digits of the commit, +dirty when the tree was, and the machine the numbers came from."""
    meta = dict(META, git={"commit": "abcdef1234567890", "dirty": True}, platform="Linux")
    lines = heading_section(empty_inputs(tmp_path, source_meta=meta))
    assert lines[0] == "# microgpt benchmark report — 2030-01-02, commit abcdef123456+dirty"
    assert lines[2].startswith("Machine: Test CPU, 2 usable cores (Linux)")


def test_reproduce_lists_the_commands_in_a_bash_block(tmp_path):
    lines = reproduce_section(empty_inputs(tmp_path, reproduce=["a --x", "b"]))
    assert lines[:5] == ["## Reproduce", "", "```bash", "a --x", "b"] and lines[5] == "```"


def test_write_report_joins_the_sections_and_keeps_the_inputs_slim_in_data(tmp_path, monkeypatch):
    """report.md is every section's lines in SECTIONS order; data/ holds each input (per-sample lists dropped)
    and peaks.json, the peaks the MFU figures divide by."""
    args, files = fake_command_line(tmp_path)
    # two stand-in sections: what write_report does with lines, not what the real sections say
    monkeypatch.setattr(document, "SECTIONS", (lambda inputs: ["# one", ""], lambda inputs: [inputs.reproduce[0]]))
    path = write_report(args, str(tmp_path / "out"), files, META)
    assert open(path, encoding="utf-8").read() == "# one\n\npython -m microgpt.report --latest"
    data = tmp_path / "out" / "data"
    assert json.loads((data / "peaks.json").read_text())["peaks_gflops"] == files[args.sweep[0]]["peaks_gflops"]
    kept = json.loads((data / "kernels.json").read_text())["benchmarks"][0]["stats"]
    assert kept == {"median": 1e-3, "iqr": 1e-5, "rounds": 9}
    assert sorted(p.name for p in data.iterdir()) == ["kernels.json", "losses.json", "peaks.json", "sweep.json"]
