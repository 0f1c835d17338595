"""Files in <home>/local/ (the local cloud's state, log, lock and credentials): private,
and never opened through a symbolic link or a hard link to something else."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from gdlab.errors import GdlabError

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class LocalCloudError(GdlabError):
    """The local cloud cannot be started, stopped or reached."""


def local_dir(home: Path) -> Path:
    return Path(home) / "local"


def _link_refused(path: Path) -> LocalCloudError:
    return LocalCloudError(f"{path} is a symbolic link: gdlab does not write through links "
                           "in its home", f"remove it (rm {path}) and retry")


def ensure_local_dir(home: Path) -> Path:
    """<home>/local/, created 0700; a symbolic link there is refused."""
    path = local_dir(home)
    if not path.is_symlink():
        with contextlib.suppress(FileExistsError):
            path.mkdir(parents=True, mode=0o700)
    if path.is_symlink():
        raise _link_refused(path)
    if not path.is_dir():
        raise LocalCloudError(f"{path} is not a directory", f"remove it (rm {path}) and retry")
    return path


def _open_private(path: Path, flags: int) -> int:
    """An fd on path (created 0600), never through a symbolic link, and only if it is a plain
    file of its own (not a hard link to something else): that file is made 0600."""
    try:
        fd = os.open(path, flags | os.O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or path.is_symlink():
            raise _link_refused(path) from None
        raise LocalCloudError(f"cannot open {path}: {exc.strerror}",
                              f"check the permissions of {path.parent}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise LocalCloudError(f"{path} is not a plain file of gdlab's own (a device, a "
                                  "directory or a hard link)", f"remove it (rm {path}) and retry")
        if stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_small(path: Path, limit: int = 65536) -> bytes:
    """The last `limit` bytes of path, not through a link (OSError when it cannot)."""
    fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(max(0, size - limit))
        return handle.read(limit)


