"""Lab state: one private JSON file per lab, written atomically, doubling as the journal.

Every create is recorded twice: its intent before the call (status "pending") and its id
right after (status "created"), so a crash or Ctrl-C at any moment leaves a file that
teardown can finish from."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gdlab.errors import DamagedState, GdlabError, LabNotFound, UsageError
from gdlab.lab import locks, schema
from gdlab.lab.schema import PHASES

# Setup runs steps in threads: journal changes and their writes to disk go one at a time.
_journal_lock = threading.RLock()

LAB_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,10}[a-z0-9]")
# How long a command waits for another one holding the same lab before it refuses.
LOCK_WAIT_SECONDS = 5.0


class StateWriteError(GdlabError):
    """A lab's state file could not be written (disk full, read-only home...)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_lab_id() -> str:
    return "gd-" + secrets.token_hex(3)


def validate_lab_id(lab: str) -> str:
    # fullmatch: `$` would accept a trailing newline, and the id names a file
    if not isinstance(lab, str) or not LAB_ID.fullmatch(lab) or "--" in lab:
        raise UsageError(
            f"invalid lab id '{lab}'",
            "use 3-12 lowercase letters, digits and dashes, e.g. gd-demo1",
        )
    return lab


def gdlab_home() -> Path:
    """GDLAB_HOME wins; otherwise the per-user state directory of this OS."""
    home = os.environ.get("GDLAB_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_state_dir

    return Path(user_state_dir("gdlab", appauthor=False))


def write_private(path: Path, text: str) -> None:
    """Atomic write of a 0600 file: a reader never sees half a file, nobody else reads it.
    The rename replaces a symlink at `path` instead of writing through it."""
    locks.private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_private(path: Path) -> str:
    """A file of gdlab's home, never through a symlink."""
    fd = locks.open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang us
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd) as handle:
        return handle.read()


class NotRegular(OSError):
    """A path gdlab reads is a FIFO, a device or a folder, not a file it wrote."""


def _plain(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


@dataclass
class Resource:
    key: str  # the plan step that owns it, e.g. "vpc", "instance-compromised"
    type: str  # AWS type, e.g. "AWS::EC2::VPC"
    id: str | None = None
    # or "adopted": never deleted by teardown; or "shared": a detector or hub another lab
    # of this home made, removed by the last lab using it (lab/sharing.py)
    ownership: str = "created"
    status: str = "pending"  # pending -> created -> deleted
    name: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Event:
    time: str
    message: str
    phase: str | None = None
    kind: str = "info"


@dataclass
class LabState:
    lab: str
    scenario: str
    target: str
    region: str
    endpoint: str | None = None
    account: str | None = None
    # target local: the id of the local cloud instance that holds the lab's resources
    local_cloud: str | None = None
    phase: str = "setting-up"
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    options: dict[str, Any] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)
    timeline: list[Event] = field(default_factory=list)
    _store: LabStore | None = field(default=None, repr=False, compare=False)
    # Teardown goes on deleting when the journal cannot be written (a full or read-only
    # home): the first such error is kept here and reported at the end.
    _write_error: OSError | None = field(default=None, repr=False, compare=False)
    _tolerate_write_errors: bool = field(default=False, repr=False, compare=False)

    # --- journal -----------------------------------------------------------------------
    def resource(self, key: str) -> Resource | None:
        for res in self.resources:
            if res.key == key and res.status != "deleted":
                return res
        return None

    def live(self, key: str) -> Resource | None:
        res = self.resource(key)
        return res if res and res.status == "created" else None

    def id_of(self, key: str) -> str:
        res = self.live(key)
        if res is None or res.id is None:
            raise KeyError(f"lab {self.lab} has no {key}")
        return res.id

    def intend(self, key: str, type_: str, name: str | None = None) -> Resource:
        """Record that a create is about to happen, before the call."""
        with _journal_lock:
            res = self.resource(key)
            if res is None:
                res = Resource(key=key, type=type_, name=name)
                self.resources.append(res)
            else:
                res.name = name or res.name
            self.save()
            return res

    def record(
        self,
        key: str,
        type_: str,
        id_: str,
        ownership: str = "created",
        name: str | None = None,
        **attrs: Any,
    ) -> Resource:
        """Record the id the moment the create (or adoption) returns."""
        with _journal_lock:
            res = self.resource(key)
            if res is None:
                res = Resource(key=key, type=type_)
                self.resources.append(res)
            res.id, res.ownership, res.status = id_, ownership, "created"
            res.name = name or res.name
            res.attrs.update(attrs)
            self.save()
            return res

    def update(self, res: Resource, **attrs: Any) -> None:
        """Add to a recorded resource's attributes (e.g. configured=True) and save."""
        with _journal_lock:
            res.attrs.update(attrs)
            self.save()

    def forget(self, key: str) -> None:
        with _journal_lock:
            res = self.resource(key)
            if res is not None:
                res.status = "deleted"
                self.save()

    def event(self, message: str, phase: str | None = None, kind: str = "info") -> Event:
        ev = Event(time=now_iso(), message=message, phase=phase, kind=kind)
        with _journal_lock:
            self.timeline.append(ev)
            if phase:
                self.phase = phase
            self.save()
        return ev

    def set_phase(self, phase: str, message: str | None = None) -> None:
        assert phase in PHASES, phase
        self.event(message or f"phase: {phase}", phase=phase)

    # --- persistence ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for private in ("_store", "_write_error", "_tolerate_write_errors"):
            data.pop(private, None)
        return data

    def save(self) -> None:
        with _journal_lock:
            self.updated_at = now_iso()
            if self._store is None:
                return
            try:
                self._store.save(self)
            except OSError as exc:
                if not self._tolerate_write_errors:
                    path = self._store.path(self.lab)
                    raise StateWriteError(
                        f"could not save lab {self.lab}'s journal to {path}: {_plain(exc)}",
                        f"free space in or make {self._store.home} writable, then rerun the "
                        f"command; 'gdlab teardown --lab {self.lab}' removes what was made",
                    ) from exc
                self._write_error = self._write_error or exc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        """A state from a parsed file; the caller has checked it with schema.problems()."""
        data = dict(data)
        resources = [_known(Resource, r) for r in data.pop("resources", [])]
        timeline = [_known(Event, e) for e in data.pop("timeline", [])]
        return _known(cls, {**data, "resources": resources, "timeline": timeline})


def _known(cls: Any, data: dict[str, Any]) -> Any:
    """Only the public fields a file may set (never `_store` and its kind)."""
    fields = cls.__dataclass_fields__
    return cls(**{k: v for k, v in data.items() if k in fields and not k.startswith("_")})


@dataclass
class Damaged:
    """A state file that failed its checks, for `gdlab labs` to list."""

    lab: str
    path: Path
    reason: str

    @property
    def hint(self) -> str:
        if LAB_ID.fullmatch(self.lab) and "--" not in self.lab:
            return f"'gdlab teardown --lab {self.lab}' rebuilds it from the cloud and removes it"
        return f"gdlab never writes such a name: remove {self.path}"


class LabStore:
    """The labs/ folder under gdlab's home, plus the 'current lab' pointer."""

    def __init__(self, home: Path | None = None, on_wait: Any = None):
        self.home = home or gdlab_home()
        self.dir = self.home / "labs"
        # Told once, in one line, when a command waits for another holding the lab.
        self.on_wait = on_wait

    # --- one command at a time per lab, across processes ----------------------------
    def lock_path(self, lab: str) -> Path:
        return self.dir / f"{lab}.lock"

    def acquire(self, lab: str, wait_seconds: float = LOCK_WAIT_SECONDS) -> None:
        """Hold lab's lock for the rest of this process (or until release): every command
        that changes a lab holds it, so two never interleave their journal writes."""
        validate_lab_id(lab)
        locks.acquire(self.lock_path(lab), f"lab {lab}", wait_seconds, self.on_wait)

    def release(self, lab: str) -> None:
        locks.release(self.lock_path(lab))

    def locked(self, lab: str, wait_seconds: float = LOCK_WAIT_SECONDS) -> Any:
        validate_lab_id(lab)
        return locks.locked(self.lock_path(lab), f"lab {lab}", wait_seconds, self.on_wait)

    def path(self, lab: str) -> Path:
        return self.dir / f"{lab}.json"

    def exists(self, lab: str) -> bool:
        """A state file (sound or damaged) is there for this lab."""
        return os.path.lexists(self.path(lab))

    def create(self, state: LabState) -> LabState:
        state._store = self
        self.save(state)
        self.set_current(state.lab)
        return state

    def save(self, state: LabState) -> None:
        write_private(self.path(state.lab), json.dumps(state.to_dict(), indent=2) + "\n")

    def load(self, lab: str) -> LabState:
        """The lab's state, checked: DamagedState names what is wrong and what to do."""
        validate_lab_id(lab)
        path = self.path(lab)
        try:
            data = json.loads(read_private(path))
        except FileNotFoundError:
            raise LabNotFound(
                f"no lab '{lab}' in {self.dir}", "gdlab labs lists the labs gdlab knows"
            ) from None
        except locks.UnsafePath:
            raise self._damaged(lab, "it is a symlink") from None
        except (NotRegular, IsADirectoryError):
            raise self._damaged(lab, "it is not a regular file") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._damaged(lab, f"it is not JSON ({exc})") from None
        except OSError as exc:
            raise LabNotFound(f"cannot read lab {lab}'s state file {path}: {_plain(exc)}") from exc
        found = schema.problems(data, lab)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise self._damaged(lab, found[0] + more)
        state = LabState.from_dict(data)
        state._store = self
        return state

    def _damaged(self, lab: str, reason: str) -> DamagedState:
        return DamagedState(
            f"lab {lab}'s state file {self.path(lab)} is damaged: {reason}",
            f"'gdlab teardown --lab {lab}' rebuilds it from the cloud's tags and removes the "
            "lab; or repair the file",
            reason=reason,
        )

    def scan(self) -> tuple[list[LabState], list[Damaged]]:
        """Every lab with a state file: the sound ones (oldest first) and the damaged ones.
        A file whose name is not a lab id is damaged too; none stops the others."""
        if not self.dir.is_dir():
            return [], []
        labs: list[LabState] = []
        damaged: list[Damaged] = []
        for path in sorted(self.dir.glob("*.json")):
            lab = path.name[: -len(".json")]
            try:
                validate_lab_id(lab)
            except UsageError:
                damaged.append(Damaged(lab, path, "its name is not a lab id"))
                continue
            try:
                labs.append(self.load(lab))
            except DamagedState as exc:
                damaged.append(Damaged(lab, path, exc.reason))
            except LabNotFound:
                continue  # removed while we looked
        return sorted(labs, key=lambda s: s.created_at), damaged

    def all(self) -> list[LabState]:
        return self.scan()[0]

    def set_aside(self, lab: str) -> Path:
        """Move a damaged state file out of the way (kept for a person to read)."""
        path = self.path(lab)
        aside = path.with_name(f"{path.name}.damaged-{datetime.now():%Y%m%d%H%M%S}")
        os.replace(path, aside)
        return aside

    def current(self) -> str | None:
        pointer = self.home / "current"
        try:
            lab = read_private(pointer).strip()
        except (OSError, UnicodeDecodeError, GdlabError):
            return None
        try:
            validate_lab_id(lab)
        except UsageError:
            return None
        return lab if self.exists(lab) else None

    def set_current(self, lab: str) -> None:
        validate_lab_id(lab)
        write_private(self.home / "current", lab + "\n")

    def resolve(self, lab: str | None) -> LabState:
        """The given lab, or the current one; a clear error when there is none."""
        if lab:
            validate_lab_id(lab)
            return self.load(lab)
        current = self.current()
        if current is None:
            raise LabNotFound("no current lab", "run 'gdlab setup' first, or pass --lab ID")
        return self.load(current)
