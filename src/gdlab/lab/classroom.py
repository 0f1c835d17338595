"""A class: one lab per (account, region), named, with a record of its own.

The record (GDLAB_HOME/classes/<name>.json, private, written atomically) says where every
lab of the class lives and how it did, so `gdlab class status|verify|teardown` find them
again; each lab also keeps its own state file, and its resources carry the gdlab:class tag,
so a teardown from another machine finds them by tag in each account and region.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gdlab.errors import GdlabError, LabNotFound, UsageError
from gdlab.lab import locks
from gdlab.lab.state import gdlab_home, now_iso, read_private, write_private

CLASS_NAME = re.compile(r"[a-z][a-z0-9-]{1,22}[a-z0-9]")
ACCOUNT_ID = re.compile(r"\d{12}")
REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d")
DEFAULT_ROLE = "OrganizationAccountAccessRole"
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
# One lab's setup makes about four calls at once; AWS's EC2 API rate buckets refill a few
# mutating calls per second per account and region, and the labs of a class are in separate
# accounts, so the limit is the caller's own STS and the machine: eight labs at once.
DEFAULT_MAX_PARALLEL = 8


def validate_class_name(name: str) -> str:
    if not isinstance(name, str) or not CLASS_NAME.fullmatch(name) or "--" in name:
        raise UsageError(f"invalid class name '{name}'",
                         "use 3-24 lowercase letters, digits and dashes, e.g. sec-101")
    return name


def _listed(text: str | None, shape: re.Pattern[str], what: str, example: str) -> list[str]:
    """'a,b,a' -> [a, b]: each item once, in order, each of the right shape."""
    items: list[str] = []
    for part in (text or "").split(","):
        part = part.strip()
        if part and not shape.fullmatch(part):
            raise UsageError(f"'{part}' is not {what}",
                             f"give them separated by commas, e.g. {example}")
        if part and part not in items:
            items.append(part)
    return items


def parse_accounts(text: str | None) -> list[str]:
    """'111111111111,222222222222' -> the ids, in order, each once."""
    return _listed(text, ACCOUNT_ID, "an AWS account id",
                   "--accounts 111111111111,222222222222")


def parse_regions(text: str | None) -> list[str]:
    return _listed(text, REGION, "an AWS region", "--regions us-east-1,eu-west-1")


def validate_admin_account(account: str | None) -> str | None:
    if account is not None and not ACCOUNT_ID.fullmatch(account):
        raise UsageError(f"invalid --admin-account '{account}'",
                         "give the 12-digit id of the class's GuardDuty administrator")
    return account


def validate_role(role: str) -> str:
    if not isinstance(role, str) or not ROLE_NAME.fullmatch(role):
        raise UsageError(f"invalid role name '{role}'",
                         "give the name of the role to assume in each account, e.g. "
                         f"{DEFAULT_ROLE}")
    return role


def session_name(class_name: str) -> str:
    """The STS session name: CloudTrail in each account shows gdlab and the class."""
    return f"gdlab-class-{class_name}"[:64]


@dataclass
class ClassLab:
    """One target of a class and what became of it."""

    account: str
    region: str
    lab: str | None = None
    # pending | running | passed | failed | skipped | set-up | torn-down | left
    status: str = "pending"
    phase: str = ""
    error: str | None = None
    seconds: float | None = None

    @property
    def where(self) -> str:
        return f"{self.account}/{self.region}"


@dataclass
class ClassRecord:
    name: str
    target: str
    scenario: str
    role: str
    endpoint: str | None = None
    admin_account: str | None = None
    admin_home: str | None = None  # the region Security Hub's aggregator lives in
    # What the class made for its administrator (class_admin.py), to undo at its teardown.
    admin_made: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    labs: list[ClassLab] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassRecord:
        known = {k: data[k] for k in ("name", "target", "scenario", "role", "endpoint",
                                      "admin_account", "admin_home", "admin_made",
                                      "created_at", "updated_at")
                 if k in data}
        labs = [ClassLab(**{k: v for k, v in lab.items() if k in ClassLab.__dataclass_fields__})
                for lab in data.get("labs") or [] if isinstance(lab, dict)]
        record = cls(**known, labs=labs)
        _check(record)
        return record

    def lab_at(self, account: str, region: str) -> ClassLab | None:
        return next((x for x in self.labs if x.account == account and x.region == region), None)


def _check(record: ClassRecord) -> None:
    """A record read back is held to what gdlab writes (a hostile file names nothing else)."""
    validate_class_name(record.name)
    validate_role(record.role)
    _check_admin(record)
    for lab in record.labs:
        if not (isinstance(lab.account, str) and ACCOUNT_ID.fullmatch(lab.account)
                and isinstance(lab.region, str) and REGION.fullmatch(lab.region)):
            raise ValueError(f"a target that is not an account and region: {lab.account!r} "
                             f"{lab.region!r}")
        if lab.lab is not None:
            from gdlab.lab.state import validate_lab_id

            validate_lab_id(lab.lab)


def _check_admin(record: ClassRecord) -> None:
    def account(value: Any) -> bool:
        return isinstance(value, str) and bool(ACCOUNT_ID.fullmatch(value))

    if record.admin_account is not None and not account(record.admin_account):
        raise ValueError(f"an administrator that is not an account: {record.admin_account!r}")
    if record.admin_home is not None and not (isinstance(record.admin_home, str)
                                              and REGION.fullmatch(record.admin_home)):
        raise ValueError(f"a home region that is not a region: {record.admin_home!r}")
    if not isinstance(record.admin_made, list):
        raise ValueError("the administrator's journal is not a list")
    for entry in record.admin_made:
        check_admin_entry(entry)


def check_admin_entry(entry: Any) -> None:
    """An entry of the administrator's journal (the class record, or its copy in the
    administrator's bucket) is held to what gdlab writes there."""
    from gdlab.lab.class_admin import KINDS, SERVICE_PRINCIPALS

    def account(value: Any) -> bool:
        return isinstance(value, str) and bool(ACCOUNT_ID.fullmatch(value))

    if not (isinstance(entry, dict) and entry.get("kind") in KINDS
            and account(entry.get("account"))
            and isinstance(entry.get("region"), str) and REGION.fullmatch(entry["region"])
            and (entry.get("id") is None or isinstance(entry["id"], str))
            and isinstance(entry.get("accounts", []), list)
            and all(account(a) for a in entry.get("accounts") or [])
            and isinstance(entry.get("detector", ""), str)
            and entry.get("service", SERVICE_PRINCIPALS[0]) in SERVICE_PRINCIPALS):
        raise ValueError(f"an administrator's journal entry gdlab never writes: {entry!r}")


class DamagedClass(GdlabError):
    """A class record gdlab cannot read."""


class ClassStore:
    """Class records under GDLAB_HOME/classes, one file each, written under the class's
    lock; threads of one class run share one writer."""

    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else gdlab_home()
        self.dir = self.home / "classes"
        self._write_lock = threading.Lock()

    def path(self, name: str) -> Path:
        return self.dir / f"{validate_class_name(name)}.json"

    def hold(self, name: str) -> None:
        """This process works on the class until it exits (a second command on it waits a
        little, then refuses in one line naming the first)."""
        locks.private_dir(self.dir)
        locks.acquire(self.dir / f"{validate_class_name(name)}.lock", f"class {name}")

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def save(self, record: ClassRecord) -> None:
        with self._write_lock:
            record.updated_at = now_iso()
            write_private(self.path(record.name), json.dumps(record.to_dict(), indent=2))

    def load(self, name: str) -> ClassRecord:
        path = self.path(name)
        try:
            data = json.loads(read_private(path))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return ClassRecord.from_dict(data)
        except FileNotFoundError:
            raise LabNotFound(f"no class '{name}' in {self.dir}",
                              "gdlab class status lists the classes of this home; a class "
                              "started elsewhere: gdlab class teardown NAME --accounts/"
                              "--organization --regions finds its labs by tag") from None
        except (OSError, ValueError, TypeError, GdlabError) as exc:
            raise DamagedClass(f"class record {path} is damaged ({exc})",
                               "remove it; gdlab class teardown NAME --accounts/"
                               "--organization --regions finds the class's labs by tag"
                               ) from None

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json")
                      if CLASS_NAME.fullmatch(p.stem))

    def set_aside(self, name: str) -> Path:
        """A damaged record renamed beside itself (never overwritten), so a new one can be
        written; what it held may still help."""
        path = self.path(name)
        kept = path.with_name(f"{path.name}.damaged-{now_iso().replace(':', '')}")
        path.rename(kept)
        return kept

    def forget(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
