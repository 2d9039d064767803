"""Listing image files on a local disk: through symlinked folders, with printable names."""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

from skin_lesion.images import ImageDecodeError

logger = logging.getLogger(__name__)
# How many names the left-out warning lists before "...".
SHOWN = 5


class UnreadableFolderError(OSError):
    """A folder below the one listed could not be read (permissions, a dead mount)."""


def walk_files(root: str | os.PathLike) -> list[str]:
    """Every file below a local folder (``root/...`` paths), through symlinked subfolders too.

    ``Path.rglob`` and fsspec's local ``find`` do not descend into a symlinked folder, so
    images in a part folder linked in from elsewhere would not be seen at all. A folder
    reached twice (a link loop, two links to one place) is walked once, under the first of
    its paths in name order. Broken links are listed like files, so that reading them fails
    with a reason instead of their being skipped unseen.

    Raises:
        UnreadableFolderError: Naming each folder that could not be listed and why
            (``os.walk`` skips them without a word, and their images' metadata rows were
            rejected as having no file).
    """
    seen: set[str] = set()
    files: list[str] = []
    unreadable: list[OSError] = []
    for folder, subfolders, names in os.walk(root, onerror=unreadable.append, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()  # a folder linked twice is walked under the same path every time
        files += [os.path.join(folder, name) for name in sorted(names)]
    if unreadable:
        listed = "; ".join(f"'{e.filename}': {e.strerror or e}" for e in unreadable[:SHOWN])
        raise UnreadableFolderError(
            f"{len(unreadable)} folder(s) under '{root}' could not be read, so their images "
            f"would be missed: {listed}{'; ...' if len(unreadable) > SHOWN else ''}"
        )
    return files


def display_name(name: str) -> str:
    """``name`` as valid UTF-8 text on one line: bytes a file name holds that are not UTF-8
    (which Python keeps as lone surrogates, and pandas, JSON and CSV writers refuse) shown as
    ``\\xNN``, e.g. ``caf\\xe9.jpg`` for a Latin-1 ``café.jpg``, and control characters as
    Python writes them (``scan\\r2.jpg``; a bare carriage return, which pandas does not quote,
    split the name over two rows of a CSV). Other names are unchanged."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], name)


def unique_name(name: str, taken: Container[str]) -> str:
    """``name``, or where another file is already listed under it, ``name~2``, ``name~3``,
    ... : two files whose names show alike once escaped (``caf\\xe9.jpg`` written out, beside
    a Latin-1 ``café.jpg``) are both kept, not one put in the other's place unseen."""
    unique, k = name, 1
    while unique in taken:
        k += 1
        unique = f"{name}~{k}"
    return unique


def warn_alike(renamed: list[str]) -> None:
    """One warning naming the files listed under a ``~k`` name by :func:`unique_name`."""
    if renamed:
        logger.warning(
            "%d file(s) whose names show like another file's once escaped are listed with a "
            "~2, ~3, ... suffix: %s%s",
            len(renamed), ", ".join(renamed[:SHOWN]), ", ..." if len(renamed) > SHOWN else "",
        )  # fmt: skip


# C0 control characters and DEL: a tab, newline or carriage return in a file name is legal
# on POSIX file systems.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _left_out_message(wanted: str) -> str:
    return (
        f"not a {wanted} file: left out (rename it, or name the file itself to `skin-lesion "
        "predict`, which reads a file named on its own whatever its ending)"
    )


def _left_out(wanted: str) -> bytes:
    raise ImageDecodeError(_left_out_message(wanted))


def left_out(wanted: str) -> Callable[[], bytes]:
    """The loader of a file a folder holds but is not read as an image (not one of
    ``wanted``, e.g. ``.jpg/.jpeg/.png``): it fails with that reason, so that decoding puts
    the file in the rejects report instead of its vanishing unseen."""
    return partial(_left_out, wanted)


def is_left_out(loader: Callable[[], bytes]) -> bool:
    """Whether ``loader`` is :func:`left_out`'s (a file that will not be read as an image)."""
    return isinstance(loader, partial) and loader.func is _left_out


def left_out_reason(loader: Callable[[], bytes]) -> str:
    """The reason a :func:`left_out` loader fails with, without calling it."""
    if not is_left_out(loader):
        raise ValueError("not a left_out() loader")
    return _left_out_message(*loader.args)


def warn_left_out(folder: str, names: list[str], wanted: str) -> None:
    """One warning counting and naming (the first few of) the files of ``folder`` left out
    as not ``wanted``; nothing when there are none."""
    if names:
        logger.warning(
            "%s: %d file(s) not %s left out (listed in the rejects): %s%s",
            folder, len(names), wanted, ", ".join(names[:SHOWN]),
            ", ..." if len(names) > SHOWN else "",
        )  # fmt: skip


# The mode a plain open() creates a file with, before the umask.
DEFAULT_FILE_MODE = 0o666


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``target`` to write the whole file to: when the block ends
    without error it is renamed onto ``target``, else removed.

    A crash mid-write leaves the previous file intact, and so does a power loss: the data is
    flushed to disk (``fsync``) before the rename, and the folder after it (a rename can
    reach the disk before the data, leaving an empty file under the old name on some file
    systems). The file gets the permissions a plain ``open`` would leave it with: those of
    the file it replaces, else 0666 less the umask (``mkstemp``'s 0600 left image caches and
    checkpoints unreadable to the group of a shared data folder, or to a container running
    as another user).
    """
    target = Path(target)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = DEFAULT_FILE_MODE & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # Reopened for writing: fsync flushes the data whatever fd wrote it, but Windows
        # commits only through a handle with write access.
        with open(tmp, "r+b") as written:
            _sync(written.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)


def atomic_write(target: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through ``write(file)`` to a temporary file beside ``target``, then rename it
    (:func:`atomic_path`)."""
    with atomic_path(target) as tmp, open(tmp, "wb") as file:
        write(file)


def _sync(fd: int) -> None:
    """``os.fsync``, except where the file system does not offer it (some FUSE and SMB
    mounts say EINVAL or ENOTSUP): the write then stands as the system keeps it."""
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the system allows it (not on
    Windows, nor some network file systems: the data itself is on disk by then)."""
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


def _umask() -> int:
    """The process's umask: read from ``/proc/self/status`` (Linux), since setting it to read
    it, the portable way, changes it for every thread for a moment."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
