"""The GuardDuty detector and the Security Hub that labs in one account and region share.

AWS allows one of each per account and region, so the first lab creates them and the labs
set up after it adopt them. The last lab of this home that uses one removes it; a detector
or hub that was there before gdlab (not made by a lab of this home) is never removed.

Whether a lab is the last user is decided from the other labs' state files, read as they
are on disk, under one short lock per place and kind: the lock covers "look and adopt" in
setup and "look and delete" in teardown, so a setup never adopts a detector a teardown is
deleting. No lab ever writes another lab's state, so a lab that is busy (a `gdlab run` in
another terminal, for minutes) never stops a teardown from deciding."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

from gdlab.lab import locks
from gdlab.lab.state import LabState, LabStore

SHARED_KEYS = ("detector", "securityhub")
# Held only around a few API calls; a DeleteDetector on AWS takes seconds.
WAIT_SECONDS = 120.0

_WHAT = {"detector": "the GuardDuty detector", "securityhub": "Security Hub"}
# The file lock is per process (re-entrant); labs set up and torn down side by side in one
# process (gdlab run --all) are kept apart by a thread lock per file as well.
_threads: dict[Path, threading.Lock] = {}
_threads_guard = threading.Lock()


def lock_path(store: LabStore, state: LabState, key: str) -> Path:
    place = "|".join((state.target, state.account or "", state.region, state.local_cloud or ""))
    digest = hashlib.sha256(place.encode()).hexdigest()[:12]
    return store.dir / "shared" / f"{key}-{state.target}-{state.region}-{digest}.lock"


@contextlib.contextmanager
def guarded(store: LabStore | None, state: LabState, key: str) -> Iterator[None]:
    """Hold the lock on this lab's place for `key` (nothing to hold without a store)."""
    if store is None or key not in SHARED_KEYS:
        yield
        return
    path = lock_path(store, state, key)
    with _threads_guard:
        thread_lock = _threads.setdefault(path, threading.Lock())
    if not thread_lock.acquire(timeout=WAIT_SECONDS):
        from gdlab.errors import LabBusy

        raise LabBusy(
            f"{_WHAT[key]} of {state.region} is being set up or removed by another lab",
            "wait for it to finish, then retry",
        )
    try:
        locks.private_dir(path.parent)
        what = f"{_WHAT[key]} of {state.region}"
        with locks.locked(path, what, WAIT_SECONDS, store.on_wait):
            yield
    finally:
        thread_lock.release()


def other_users(
    store: LabStore | None, state: LabState, key: str, resource_id: str
) -> dict[str, str]:
    """The other labs of this home, not torn down, in the same place, that use the
    detector or hub `resource_id`, each with the ownership it recorded."""
    if store is None:
        return {}
    users: dict[str, str] = {}
    for other in store.all():
        if other.lab == state.lab or other.phase == "torn-down":
            continue
        if (other.target, other.region) != (state.target, state.region):
            continue
        if other.account and state.account and other.account != state.account:
            continue
        if other.target == "local" and other.local_cloud != state.local_cloud:
            continue
        theirs = other.live(key)
        if theirs is not None and theirs.id == resource_id:
            users[other.lab] = theirs.ownership
    return users


def ownership_to_adopt(
    state: LabState, key: str, resource_id: str, made_by: str | None = None
) -> str:
    """How a lab takes over an existing detector or hub: "shared" when a lab of this home
    made it and labs still use it (then the last of them removes it), "adopted" when it was
    there before gdlab, or came from elsewhere (never removed). `made_by` is the lab its tag
    names: one cut short before it journaled the id still counts as a user."""
    users = other_users(state._store, state, key, resource_id)
    if any(o in ("created", "shared") for o in users.values()):
        return "shared"
    return "shared" if made_by and _live(state, made_by) else "adopted"


def _live(state: LabState, lab: str) -> bool:
    store = state._store
    if store is None or lab == state.lab:
        return False
    try:
        return store.load(lab).phase != "torn-down"
    except Exception:  # not a lab of this home, or damaged: not known to use it
        return False
