"""The per-lab lock between processes: a real second process holds it, this one waits and
refuses naming the holder; kill -9 of the holder frees it; re-entrant within a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from gdlab.errors import LabBusy
from gdlab.lab import locks
from gdlab.lab.state import LabStore

HOLDER = """
import sys, time
from gdlab.lab.state import LabStore
store = LabStore(__import__("pathlib").Path(sys.argv[1]))
store.acquire("gd-lock1")
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_process_waits_then_refuses_naming_the_holder(tmp_path, holder):
    said = []
    store = LabStore(tmp_path, on_wait=said.append)
    with pytest.raises(LabBusy) as err:
        store.acquire("gd-lock1", wait_seconds=0.3)
    assert f"(pid {holder.pid})" in str(err.value) and "lab gd-lock1 is in use by" in str(err.value)
    assert len(said) == 1 and "waiting up to" in said[0]


def test_kill_9_of_the_holder_frees_the_lock(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    store = LabStore(tmp_path)
    store.acquire("gd-lock1", wait_seconds=2.0)
    store.release("gd-lock1")


def test_the_lock_waits_for_a_holder_that_finishes(tmp_path, holder):
    store = LabStore(tmp_path)

    def finish_soon():
        time.sleep(0.3)
        holder.kill()

    import threading

    threading.Thread(target=finish_soon, daemon=True).start()
    store.acquire("gd-lock1", wait_seconds=10.0)
    store.release("gd-lock1")


def test_reentrant_within_a_process(tmp_path):
    store = LabStore(tmp_path)
    path = store.lock_path("gd-lock2")
    store.acquire("gd-lock2")
    with store.locked("gd-lock2"):
        assert locks.holds(path)
    assert locks.holds(path)
    store.release("gd-lock2")
    assert not locks.holds(path)


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path):
    store = LabStore(tmp_path / "home")
    store.dir.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    store.lock_path("gd-lock3").symlink_to(victim)
    with pytest.raises(locks.UnsafePath, match="symlink"):
        store.acquire("gd-lock3")
    assert victim.read_text() == "precious\n"


def test_a_read_only_home_still_locks_through_an_existing_lock_file(tmp_path, monkeypatch):
    import errno

    store = LabStore(tmp_path)
    store.acquire("gd-lock4")
    store.release("gd-lock4")
    real = locks.open_nofollow

    def read_only(path, flags, mode=0o600):
        if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, flags, mode)

    monkeypatch.setattr(locks, "open_nofollow", read_only)
    store.acquire("gd-lock4")
    assert locks.holds(store.lock_path("gd-lock4"))
    store.release("gd-lock4")
    with pytest.raises(OSError):
        store.acquire("gd-nofile")  # no lock file to open: the caller decides
