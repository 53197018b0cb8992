"""Every file microgpt writes: checked before the work that produces it, then written atomically.

`check_file(path, flag)` runs before training or benchmarking starts and raises a MicrogptError
naming the flag and the path for everything that would make the final write fail and can be
known in advance: an existing path that is not a regular file (a folder, a named pipe, a socket,
a device), a dangling symbolic link or a loop of them, a parent that is a file, a folder that
cannot be made or is not writable for this user. A symbolic link is followed to its final target.

`atomic_write(path)` writes a temporary file beside that final target and renames it onto the
target, so a reader sees the old file or the new one, never a torn one, and a link stays a link.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from .errors import MicrogptError

STALE_TEMP_SECONDS = 3600  # no save takes this long: a temporary file this old was left by a killed writer

_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]


@dataclass(frozen=True)
class Target:
    given: str  # the path as the user wrote it: what messages name
    real: str  # where the bytes land: the final target of any symbolic link, absolute

    @property
    def folder(self) -> str:
        return os.path.dirname(self.real)

    def describe(self) -> str:
        """The given path, and where it leads when that is elsewhere (through a link)."""
        if os.path.islink(self.given):
            return f"{self.given} (a link to {self.real})"
        return self.given


def kind_of(mode: int) -> str | None:
    """What an existing path that is not a regular file is, in words; None for a regular file."""
    for test, what in _KINDS:
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def resolve(path: str, flag: str, error: type[MicrogptError] = MicrogptError) -> Target:
    """Follow `path` through any symbolic links; refuse a dangling link, a loop, or a non-regular file."""
    where = _label(flag, path)
    if not path:
        raise error(f"{flag}: the path is empty; give a file path")
    if "\0" in path:  # os.path.islink and friends answer False rather than fail on one
        raise error(f"{flag}: the path holds a NUL character; give a usable file path")
    try:
        is_link = os.path.islink(path)
        if is_link:
            st = os.stat(path)  # follows every link in the chain
        else:
            st = os.stat(path) if os.path.lexists(path) else None
    except FileNotFoundError:
        raise error(f"{where}: a symbolic link to {os.readlink(path)}, which does not exist; create the target "
                    "or give another path") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise error(f"{where}: a loop of symbolic links; give another path") from None
        if e.errno == errno.ENOTDIR:
            raise error(f"{where}: {_file_parent(os.path.realpath(path))} is a file, not a folder") from None
        raise error(f"{where}: cannot write there: {e.strerror or e}") from None
    target = Target(path, os.path.realpath(path) if is_link else os.path.abspath(path))
    if st is not None:
        what = kind_of(st.st_mode)
        if what == "a folder":
            raise error(f"{_label(flag, target.describe())}: is a folder; give the path of a file inside it")
        if what:
            raise error(f"{_label(flag, target.describe())}: is {what}, not a regular file; give the path of a "
                        "file (only regular files are replaced)")
    return target


def _label(flag: str, path: str) -> str:
    """How a message names the path: after the flag that gave it, when there is one."""
    return f"{flag} {path}" if flag else path


def _file_parent(path: str) -> str:
    """The first ancestor of `path` that exists and is not a folder (why a folder cannot be made)."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        p = os.sep.join(parts[:i])
        if not os.path.isdir(p):
            return p
    return path


def check_folder(folder: str, flag: str, error: type[MicrogptError] = MicrogptError, given: str = "") -> None:
    """`folder` exists as a folder, or can be made, and this user can create files in it.

    As root os.access says yes to everything, so the test is to create a file and remove it.
    """
    where = _label(flag, given or folder)
    existing = os.path.abspath(folder)
    while not os.path.lexists(existing):  # the nearest ancestor that exists: where the folders would be made
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        try:
            what = kind_of(os.stat(existing).st_mode) or "a file"
        except OSError:
            what = "a broken symbolic link"
        raise error(f"{where}: {existing} is {what}, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".microgpt-write-test-", dir=existing)
    except OSError as e:
        made = "" if existing == os.path.abspath(folder) else f" (to make {folder} in it)"
        raise error(f"{where}: cannot create files in {existing}{made}: {e.strerror or e}; "
                    "give a path in a folder you can write") from None
    os.close(fd)
    os.unlink(probe)


def check_file(path: str, flag: str, error: type[MicrogptError] = MicrogptError) -> Target:
    """Everything about `path` that would make a later atomic_write fail and can be known now."""
    target = resolve(path, flag, error)
    check_folder(target.folder, flag, error, given=target.describe())
    return target


def file_mode(path: str) -> int:
    """The mode of the file being replaced, or what a newly created file would get under the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # the only way to read the umask is to set it (and put it back)
        os.umask(umask)
        return 0o666 & ~umask


def _remove_stale_temporaries(folder: str, name: str) -> None:
    """Delete temporary files of `name` that writers killed mid-save left behind (and nobody still writes)."""
    now = time.time()
    for entry in os.scandir(folder):
        if entry.name.startswith(f".{name}.") and entry.name.endswith(".tmp"):
            try:
                if now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                    os.unlink(entry.path)
            except OSError:
                pass


def _flush_to_disk(f, tmp: str) -> None:
    """Everything written to `f` (the temporary file `tmp`) is on the disk: where a full disk shows."""
    f.flush()
    os.fsync(f.fileno())


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str, flag: str = "", error: type[MicrogptError] = MicrogptError,
                 mode: int | None = None) -> Iterator:
    """A text file to write; on leaving the block it replaces the final target of `path` whole.

    A problem writing is `error` ("PATH: cannot save: reason") and leaves the old file as it was,
    with no temporary file behind; any other exception from the block propagates, also cleaned up.
    `mode` forces the file's permissions (default: those of the file replaced, else the umask's).
    """
    target = resolve(path, flag, error)  # again: the link may point elsewhere by now
    name = os.path.basename(target.real)
    try:
        os.makedirs(target.folder, exist_ok=True)
        _remove_stale_temporaries(target.folder, name)
        final_mode = file_mode(target.real) if mode is None else mode
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target.folder)
    except (FileExistsError, NotADirectoryError):  # a parent of `path` is a file
        raise error(f"{path}: cannot save: {_file_parent(target.folder)} is a file, not a folder") from None
    except OSError as e:
        raise error(f"{path}: cannot save: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            os.fchmod(f.fileno(), final_mode)  # mkstemp makes it private (0600); the file is an ordinary one
            _flush_to_disk(f, tmp)
        os.replace(tmp, target.real)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):  # the reason without the temporary file's name, which means nothing to the user
            raise error(f"{path}: cannot save: {e.strerror or e}") from None
        raise
    _fsync_folder(target.folder)  # so the rename itself survives a power cut


def write_json(path: str, doc, flag: str = "") -> None:
    """`doc` as indented JSON, atomically, at `path` (the benchmark scripts' result files)."""
    with atomic_write(path, flag) as f:
        json.dump(doc, f, indent=1)
