"""Writing a person's own files (``pmr dataset -o``, ``pmr suite init -o``, a scoring run's local output).

A path given on the command line may be a symlink that someone else planted (a shared directory, a checked-out
repository): writing through it would create or overwrite the file it points at, a dangling link included. So
a symlink at the path is refused with ``SymlinkRefused``, and the bytes go to a new file
beside it that then takes the name (``os.link`` for a new file, ``os.replace`` to overwrite): neither follows a
link that appears in between, and a hard-linked file is replaced, not written into.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from pathlib import Path

from prefect_model_registry.registry.errors import InvalidMetadata, StoreError, SymlinkRefused


def refuse_symlink(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Return ``path`` as a :class:`Path`; raise :class:`SymlinkRefused` if it is a symlink (dangling or not)."""
    p = Path(path)
    try:
        mode = os.lstat(p).st_mode
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise StoreError(f"cannot inspect {what} {p}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(mode):
        raise SymlinkRefused(f"{what} {p} is a symlink (to {os.readlink(p)}): refusing to write through it")
    return p


def write_file(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False, what: str = "output") -> None:
    """Write ``data`` as the file ``path``, never through a symlink.

    Args:
        path: where; its directory must exist.
        data: the bytes.
        overwrite: replace an existing file (else an existing file is refused).
        what: how the path is called in an error ("output", "--out").

    Raises:
        SymlinkRefused: ``path`` is a symlink.
        InvalidMetadata: ``path`` exists and ``overwrite`` is False.

    """
    target = refuse_symlink(path, what)
    # A new name beside the target, created exclusively (the umask applies, as to any file the user writes).
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        publish_file(tmp, target, overwrite=overwrite, what=what)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def publish_file(tmp: Path, target: Path, *, overwrite: bool = False, what: str = "output") -> None:
    """Give the finished file ``tmp`` (beside ``target``) the name ``target``, never through a symlink.

    Raises:
        SymlinkRefused: ``target`` is a symlink (planted while ``tmp`` was written included).
        InvalidMetadata: ``target`` exists and ``overwrite`` is False.

    """
    refuse_symlink(target, what)  # planted while we wrote: still refused (replace would not follow it anyway)
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise InvalidMetadata(f"{target} exists; pass --force to overwrite it") from None
