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
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gdlab.errors import LabNotFound, UsageError

# Setup runs steps in threads: journal changes and their writes to disk go one at a time.
_journal_lock = threading.RLock()

PHASES = ("setting-up", "ready", "triggered", "detected", "isolated", "verified", "torn-down")
LAB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,10}[a-z0-9]$")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_lab_id() -> str:
    return "gd-" + secrets.token_hex(3)


def validate_lab_id(lab: str) -> str:
    if not LAB_ID.match(lab) or "--" in lab:
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
    """Atomic write of a 0600 file: a reader never sees half a file, nobody else reads it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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


@dataclass
class Resource:
    key: str  # the plan step that owns it, e.g. "vpc", "instance-compromised"
    type: str  # AWS type, e.g. "AWS::EC2::VPC"
    id: str | None = None
    ownership: str = "created"  # or "adopted": never deleted by teardown
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
        data.pop("_store", None)
        return data

    def save(self) -> None:
        with _journal_lock:
            self.updated_at = now_iso()
            if self._store is not None:
                self._store.save(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        data = dict(data)
        resources = [Resource(**r) for r in data.pop("resources", [])]
        timeline = [Event(**e) for e in data.pop("timeline", [])]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, resources=resources, timeline=timeline)


class LabStore:
    """The labs/ folder under gdlab's home, plus the 'current lab' pointer."""

    def __init__(self, home: Path | None = None):
        self.home = home or gdlab_home()
        self.dir = self.home / "labs"

    def path(self, lab: str) -> Path:
        return self.dir / f"{lab}.json"

    def exists(self, lab: str) -> bool:
        return self.path(lab).is_file()

    def create(self, state: LabState) -> LabState:
        state._store = self
        self.save(state)
        self.set_current(state.lab)
        return state

    def save(self, state: LabState) -> None:
        write_private(self.path(state.lab), json.dumps(state.to_dict(), indent=2) + "\n")

    def load(self, lab: str) -> LabState:
        path = self.path(lab)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabNotFound(
                f"no lab '{lab}' in {self.dir}", "gdlab labs lists the labs gdlab knows"
            ) from None
        except json.JSONDecodeError as exc:
            raise LabNotFound(f"state file {path} is damaged: {exc}") from exc
        state = LabState.from_dict(data)
        state._store = self
        return state

    def all(self) -> list[LabState]:
        if not self.dir.is_dir():
            return []
        labs = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                labs.append(self.load(path.stem))
            except LabNotFound:
                continue
        return sorted(labs, key=lambda s: s.created_at)

    def current(self) -> str | None:
        pointer = self.home / "current"
        try:
            lab = pointer.read_text().strip()
        except FileNotFoundError:
            return None
        return lab if lab and self.exists(lab) else None

    def set_current(self, lab: str) -> None:
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
