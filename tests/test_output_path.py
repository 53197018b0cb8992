"""microgpt.output_path: what may stand at a path the project writes, and how it is written.

Every special file here is made in the test's own folder (a FIFO, a socket, a character device
where the kernel lets us make one); no device of the machine is ever opened or replaced.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat

import pytest

from microgpt import output_path
from microgpt.errors import MicrogptError


def make_fifo(path) -> str:
    os.mkfifo(path)
    return str(path)


def make_socket(path) -> str:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))  # binding creates the socket file; it stays after close
    finally:
        s.close()
    return str(path)


def make_folder(path) -> str:
    os.mkdir(path)
    return str(path)


def make_char_device(path) -> str:
    try:
        # the numbers of /dev/full: should anything write to it by mistake, it gets ENOSPC and nothing happens
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 7))
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node in a temporary folder here ({e.strerror})")
    return str(path)


SPECIAL = [(make_fifo, r"is a named pipe \(FIFO\), not a regular file"),
           (make_socket, r"is a socket, not a regular file"),
           (make_folder, r"is a folder; give the path of a file inside it"),
           (make_char_device, r"is a character device, not a regular file")]


@pytest.mark.parametrize("make, message", SPECIAL, ids=["fifo", "socket", "folder", "char-device"])
def test_a_path_that_is_not_a_regular_file_is_refused_and_left_alone(tmp_path, make, message):
    path = make(tmp_path / "out.json")
    before = os.lstat(path)
    with pytest.raises(MicrogptError, match=rf"^--json {path}: {message}"):
        output_path.check_file(path, "--json")
    with pytest.raises(MicrogptError, match=message):  # the writer checks again, at the end
        with output_path.atomic_write(path, "--json") as f:
            f.write("{}")
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert sorted(os.listdir(tmp_path)) == ["out.json"]  # no temporary file left


@pytest.mark.parametrize("make, message", SPECIAL[:2], ids=["fifo", "socket"])
def test_a_link_to_a_special_file_is_refused_naming_both(tmp_path, make, message):
    real = make(tmp_path / "special")
    os.symlink(real, tmp_path / "link.json")
    with pytest.raises(MicrogptError, match=rf"link.json \(a link to {real}\): {message}"):
        output_path.check_file(str(tmp_path / "link.json"), "-o")


def test_a_link_is_written_through_and_stays_a_link(tmp_path, monkeypatch):
    """link -> link -> file in another folder: the data land in the file, the temporary beside it."""
    disk = tmp_path / "big-disk"
    disk.mkdir()
    (disk / "model.json").write_text("old")
    os.symlink(disk / "model.json", tmp_path / "hop.json")
    link = tmp_path / "model.json"
    os.symlink("hop.json", link)  # relative, resolved from the link's own folder
    temporaries = []
    real_flush = output_path._flush_to_disk
    monkeypatch.setattr(output_path, "_flush_to_disk", lambda f, tmp: (temporaries.append(tmp), real_flush(f, tmp)))

    target = output_path.check_file(str(link), "--output")
    assert target.real == str(disk / "model.json")
    output_path.write_json(str(link), {"new": 1})

    assert os.path.islink(link) and os.readlink(link) == "hop.json" and os.path.islink(tmp_path / "hop.json")
    assert json.loads((disk / "model.json").read_text()) == {"new": 1}
    assert [os.path.dirname(t) for t in temporaries] == [str(disk)]
    assert sorted(os.listdir(disk)) == ["model.json"] and sorted(os.listdir(tmp_path)) == ["big-disk", "hop.json",
                                                                                            "model.json"]


def test_a_link_to_a_file_not_yet_there_is_refused(tmp_path):
    os.symlink("missing.json", tmp_path / "dangling.json")
    with pytest.raises(MicrogptError, match=r"dangling.json: a symbolic link to missing.json, which does not exist"):
        output_path.check_file(str(tmp_path / "dangling.json"), "--output")
    assert not os.path.lexists(tmp_path / "missing.json")


def test_a_loop_of_links_is_refused(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(MicrogptError, match=r"/a: a loop of symbolic links; give another path$"):
        output_path.check_file(str(tmp_path / "a"), "--output")


def test_a_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "plain").write_text("x")
    path = str(tmp_path / "plain" / "sub" / "m.json")
    with pytest.raises(MicrogptError, match=rf"^--output {path}: {tmp_path}/plain is a file, not a folder$"):
        output_path.check_file(path, "--output")


def test_a_folder_to_be_made_is_checked_but_not_made(tmp_path):
    path = tmp_path / "models" / "names" / "model.json"
    assert output_path.check_file(str(path), "--output").real == str(path)
    assert os.listdir(tmp_path) == []  # the check leaves nothing behind; the save makes the folders
    output_path.write_json(str(path), [1])
    assert json.loads(path.read_text()) == [1]


def test_a_folder_this_user_cannot_write_is_refused(tmp_path, monkeypatch):
    """As root every chmod is ignored, so the probe's own failure is what is simulated."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(output_path.tempfile, "mkstemp", refuse)
    with pytest.raises(MicrogptError, match=rf"^--output {tmp_path}/new/m.json: cannot create files in {tmp_path} "
                                            r"\(to make .*new in it\): Permission denied; give a path in a folder"):
        output_path.check_file(str(tmp_path / "new" / "m.json"), "--output")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the monkeypatched test covers it")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(MicrogptError, match=r"cannot create files in .*ro: Permission denied"):
            output_path.check_file(str(folder / "m.json"), "--output")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("path, message", [("", r"the path is empty"), ("a\0b", r"holds a NUL character")])
def test_unusable_path_strings(path, message):
    with pytest.raises(MicrogptError, match=message):
        output_path.check_file(path, "--output")


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    output_path.write_json(str(path), {"old": True})
    before = path.read_bytes()

    def full(f, tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output_path, "_flush_to_disk", full)
    with pytest.raises(MicrogptError, match=r"r.json: cannot save: No space left on device$"):
        output_path.write_json(str(path), {"new": True})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["r.json"]


def test_an_error_in_the_block_propagates_and_cleans_up(tmp_path):
    with pytest.raises(KeyError):
        with output_path.atomic_write(str(tmp_path / "x.json")) as f:
            f.write("partial")
            raise KeyError("a bug in the caller")
    assert os.listdir(tmp_path) == []


def test_a_folder_check_names_what_stands_there(tmp_path):
    fifo = make_fifo(tmp_path / "reports")
    with pytest.raises(MicrogptError, match=rf"^--reports {fifo}: {fifo} is a named pipe \(FIFO\), not a folder$"):
        output_path.check_folder(fifo, "--reports")
    output_path.check_folder(str(tmp_path / "new" / "deeper"), "--reports")
    assert sorted(os.listdir(tmp_path)) == ["reports"]
