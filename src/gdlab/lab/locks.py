"""Locks between gdlab processes: an OS file lock (flock) on a file beside what it guards.

A lock is held by the process, not by a `with` block: the OS lets it go when the process
exits, however it exits (kill -9 included), so a crash never leaves a lab locked. Within one
process a lock is re-entrant (`gdlab run` sets up and tears down under the same lock). The
holder writes its pid and command into the file, so a waiting command can say who it waits
for."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gdlab.errors import GdlabError, LabBusy

_held: dict[Path, list[int]] = {}  # path -> [fd, depth]
_registry_lock = threading.Lock()


class UnsafePath(GdlabError):
    """A file gdlab writes is a symlink (or sits in a symlinked folder): refused, not followed."""


def private_dir(path: Path) -> Path:
    """Create `path` (0700) if needed; refuse one that is a symlink."""
    if path.is_symlink():
        raise UnsafePath(
            f"{path} is a symlink; gdlab does not follow symlinks in its home",
            f"remove it (rm {path}) and retry",
        )
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):  # mkdir(parents=True) would make the parents 0755
        folder.mkdir(mode=0o700, exist_ok=True)
    return path


def open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open that refuses a symlink at `path` with one clear line."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                       mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(
                f"{path} is a symlink; gdlab does not follow symlinks in its home",
                f"remove it (rm {path}) and retry",
            ) from None
        raise


def holder(path: Path) -> str:
    """Who holds the lock, as its holder wrote it ('gdlab setup --lab x (pid 123)')."""
    try:
        fd = open_nofollow(path, os.O_RDONLY)
    except (OSError, GdlabError):
        return "another gdlab command"
    with os.fdopen(fd, errors="replace") as handle:
        text = handle.read(300).strip()
    # Whatever the file says is shown in one line: control characters written as escapes.
    from gdlab.errors import shown

    return shown(text, 160) if text else "another gdlab command"


def acquire(
    path: Path,
    what: str,
    wait_seconds: float = 5.0,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Take the lock on `path` for this process, waiting up to `wait_seconds` (telling
    `on_wait` once why), then LabBusy. Re-entrant within the process."""
    import fcntl

    with _registry_lock:
        if path in _held:
            _held[path][1] += 1
            return
    private_dir(path.parent)
    try:
        fd = open_nofollow(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        # A read-only home: an existing lock file still locks (flock needs no write access).
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        fd = open_nofollow(path, os.O_RDONLY)
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            who = holder(path)
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LabBusy(
                    f"{what} is in use by {who}",
                    "wait for that command to finish (or stop it), then retry",
                ) from None
            if not told and on_wait is not None:
                on_wait(f"{what} is in use by {who}; waiting up to {wait_seconds:.0f} s")
                told = True
            time.sleep(0.1)
    with contextlib.suppress(OSError):  # who we are is for messages only
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{_command()} (pid {os.getpid()})\n".encode(), 0)
    with _registry_lock:
        _held[path] = [fd, 1]


def release(path: Path) -> None:
    """Give back one level of this process's hold on `path`."""
    import fcntl

    with _registry_lock:
        entry = _held.get(path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[path]
    with contextlib.suppress(OSError):
        os.ftruncate(entry[0], 0)
        fcntl.flock(entry[0], fcntl.LOCK_UN)
    os.close(entry[0])


@contextlib.contextmanager
def locked(
    path: Path, what: str, wait_seconds: float = 5.0, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    acquire(path, what, wait_seconds, on_wait)
    try:
        yield
    finally:
        release(path)


def holds(path: Path) -> bool:
    with _registry_lock:
        return path in _held


def _command() -> str:
    args = [os.path.basename(sys.argv[0]) or "gdlab", *sys.argv[1:]]
    text = " ".join(args)
    return text if len(text) <= 120 else text[:117] + "..."
