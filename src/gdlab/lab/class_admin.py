"""A class with a GuardDuty administrator (gdlab class --admin-account ID): the organization
plumbing the labs stand on, set up before them and removed after them.

In each region of the class the management account (the caller) designates the
administrator for GuardDuty and Security Hub; the administrator adds the class's accounts as
members (GuardDuty enables itself in each, as AWS documents for organization members);
Security Hub is on in every account, and a finding aggregator in the home region links the
others, so one GetFindings there sees every lab's finding. The class does not turn on
auto-enable: an account joining the organization meanwhile would be enrolled, and nothing
would say so to undo it. Accounts that already were members stay members.

Members cannot manage threat lists (GuardDuty refuses them): each lab's threat-list step
enlists its Elastic IP with the class, and once every lab is set up the class writes one list
per region in the administrator's private bucket and activates it. It is written once, not
after each lab, because re-reading a list makes it ACTIVATING again under the other labs'
watch.

Every change is journaled in the class record before the call (what was not there) and its
id right after, so the class's teardown undoes exactly what the class did, in an order AWS
accepts, even after a crash: what was there before is never touched."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gdlab.cloud import Cloud
from gdlab.errors import ConfigError, GdlabError, describe
from gdlab.lab import accounts
from gdlab.lab.awsutil import error_code
from gdlab.lab.class_holdings import designated, list_bucket, list_name, other_standing
from gdlab.lab.class_undo import Undoing
from gdlab.lab.classroom import ClassLab, ClassRecord, ClassStore
from gdlab.lab.steps import CLASS_TAG
from gdlab.lab.steps.detection import (
    THREAT_LIST_KEY,
    create_bucket,
    secure_bucket,
    threat_intel_sets,
)

# What the class undoes, in the order AWS accepts: a hub leaves Security Hub after its
# administrator lets go; a detector goes after its account is no longer a member.
# The bucket goes last: it also holds the region's copy of the journal.
RELEASE_ORDER = ("threat-intel-set", "sh-aggregator", "sh-members", "sh-admin", "sh-hub",
                 "gd-members", "gd-admin", "gd-detector", "org-delegation", "org-access",
                 "list-bucket")
# Designating a service's administrator registers it in Organizations and trusts the
# service there; removing it in the service leaves both (GuardDuty User Guide,
# change-guardduty-delegated-admin: "To de-register ... run DeregisterDelegatedAdministrator").
SERVICE_PRINCIPALS = ("guardduty.amazonaws.com", "securityhub.amazonaws.com")
JOURNAL_KEY = "gdlab-class-journal.json"
KINDS = frozenset(RELEASE_ORDER)

_serving: dict[str, Administrator] = {}
_serving_lock = threading.Lock()


def serving(class_name: Any) -> Administrator | None:
    """The administrator of the class this process is running, if it has one."""
    with _serving_lock:
        return _serving.get(class_name) if isinstance(class_name, str) else None


@contextmanager
def serve(administrator: Administrator) -> Iterator[None]:
    with _serving_lock:
        _serving[administrator.record.name] = administrator
    try:
        yield
    finally:
        with _serving_lock:
            _serving.pop(administrator.record.name, None)


class Administrator(Undoing):
    def __init__(self, room: Any, record: ClassRecord, classes: ClassStore):
        self.room, self.record, self.classes = room, record, classes
        self.account = str(record.admin_account)
        self.regions = sorted({x.region for x in record.labs},
                              key=lambda r: (r != record.admin_home, r))
        self.home = record.admin_home or (self.regions[0] if self.regions else None)
        self.members = sorted({x.account for x in record.labs} - {self.account})
        self._lock = threading.Lock()
        self._clouds: dict[tuple[str, str], Cloud] = {}
        self._clouds_lock = threading.Lock()
        self._enlisted: dict[str, dict[str, str]] = {}
        self.unreachable: set[str] = set()

    # --- reaching the accounts -------------------------------------------------------------
    def cloud(self, region: str, account: str | None = None) -> Cloud:
        """One cloud per account and region for the class's whole run (its clients are
        cached, its session proven once)."""
        key = (account or self.account, region)
        with self._clouds_lock:
            if key not in self._clouds:
                self._clouds[key] = self.room.reach(ClassLab(*key))
            return self._clouds[key]

    def management(self, region: str) -> Cloud:
        key = (self.room.base.account, region)
        with self._clouds_lock:
            if key not in self._clouds:
                self._clouds[key] = accounts.reach(self.room.base, key[0], region, None)
            return self._clouds[key]

    def _members_reached(self, region: str) -> dict[str, Cloud]:
        reached = {}
        for account in self.members:
            try:
                reached[account] = self.cloud(region, account)
            except accounts.TargetUnreachable:
                self.unreachable.add(account)  # its target is skipped; not a member either
        return reached

    # --- the journal -------------------------------------------------------------------------
    # The journal is the class record's, and a copy per region lives in the administrator's
    # bucket there, so a teardown from another machine finds what the class changed.
    def _intend(self, kind: str, region: str, account: str, **extra: Any) -> dict[str, Any]:
        entry = {"kind": kind, "region": region, "account": account, "id": None, **extra}
        with self._lock:
            self.record.admin_made.append(entry)
            self.classes.save(self.record)
        self._mirror(region)
        return entry

    def _made(self, entry: dict[str, Any], made_id: str) -> None:
        with self._lock:
            entry["id"] = made_id
            self.classes.save(self.record)
        self._mirror(entry["region"])

    def _undone(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.record.admin_made.remove(entry)
            self.classes.save(self.record)
        if entry["kind"] != "list-bucket":
            self._mirror(entry["region"])

    def _mirror(self, region: str) -> None:
        bucket = self.made("list-bucket", region)
        if bucket is None or bucket["id"] is None:
            return  # not made yet (the bucket is the region's first change)
        entries = [e for e in self.record.admin_made if e["region"] == region]
        self.cloud(region).client("s3").put_object(
            Bucket=bucket["id"], Key=JOURNAL_KEY, ContentType="application/json",
            Body=json.dumps({"class": self.record.name, "entries": entries}).encode())

    def recover(self, regions: list[str]) -> int:
        """Adds to the record what the copies of the journal in the administrator's buckets
        name (the class record is gone, or was never on this machine); how many entries."""
        from gdlab.lab.classroom import check_admin_entry

        added = 0
        for region in regions:
            bucket = list_bucket(self.record.name, self.account, region)
            try:
                body = self.cloud(region).client("s3").get_object(
                    Bucket=bucket, Key=JOURNAL_KEY)["Body"].read()
            except Exception as exc:  # noqa: BLE001 - no bucket, no copy: nothing there
                if error_code(exc) in ("NoSuchBucket", "NoSuchKey", "404", "AccessDenied"):
                    continue
                raise
            try:
                data = json.loads(body)
                entries = data["entries"] if data.get("class") == self.record.name else []
                for entry in entries:
                    check_admin_entry(entry)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"the class's journal in s3://{bucket}/{JOURNAL_KEY} is "
                                  f"damaged ({exc})", "remove what it named by hand, then "
                                  "the object") from None
            def key(e: dict[str, Any]) -> tuple:
                return e["kind"], e["region"], e["account"], e.get("service")

            for entry in entries:
                known = {key(e) for e in self.record.admin_made}
                if entry["region"] == region and key(entry) not in known:
                    with self._lock:
                        self.record.admin_made.append(entry)
                    added += 1
        self.classes.save(self.record)
        return added

    def made(self, kind: str, region: str, account: str | None = None) -> dict | None:
        return next((e for e in self.record.admin_made if e["kind"] == kind
                     and e["region"] == region
                     and (account is None or e["account"] == account)), None)

    # --- before the labs ---------------------------------------------------------------------
    def prepare(self, cancel: threading.Event) -> None:
        """The administrator and its members in every region, then the aggregator. Stops
        between calls once `cancel` is set (what is made is journaled)."""
        if self.regions and not cancel.is_set():
            self._alone()
            self._bucket(self.home)
            self._alone()  # a class started at the same moment: one of them (or both) stops
            self._organizations()
        for region in self.regions:
            for part in (self._bucket, self._guardduty, self._securityhub):
                if cancel.is_set():
                    return
                part(region)
        if len(self.regions) > 1 and not cancel.is_set():
            self._aggregator()

    def _alone(self) -> None:
        """Refuses, before any change, an administrator that another class still stands in:
        the first of the two torn down would take the designation from the other's labs."""
        standing = other_standing(self.cloud(self.home).client("s3"), self.record.name,
                                  self.account)
        if standing:
            other, bucket = standing
            raise ConfigError(
                f"administrator {self.account} still serves class {other} (its bucket "
                f"{bucket} is there)",
                f"tear it down first ('gdlab class teardown {other}'), or run this class "
                "without --admin-account or with another")

    def _organizations(self) -> None:
        """Journals, before any designation, the Organizations changes it brings: the
        registration of the administrator and the trusted access of each service, where
        they are not there yet (Organizations is global: they go in the home region's
        journal)."""
        org = self.room.base.client("organizations")
        trusted = {s["ServicePrincipal"] for page in org.get_paginator(
            "list_aws_service_access_for_organization").paginate()
            for s in page["EnabledServicePrincipals"]}
        for service in SERVICE_PRINCIPALS:
            registered = {a["Id"] for page in org.get_paginator(
                "list_delegated_administrators").paginate(ServicePrincipal=service)
                for a in page["DelegatedAdministrators"]}
            if self.account not in registered:
                self._intend("org-delegation", self.home, self.account, service=service)
            if service not in trusted:
                self._intend("org-access", self.home, self.account, service=service)

    def _bucket(self, region: str) -> None:
        """The administrator's private bucket of the region: the threat list and the
        region's copy of the journal."""
        if self.made("list-bucket", region) is not None:
            return
        s3 = self.cloud(region).client("s3")
        bucket = list_bucket(self.record.name, self.account, region)
        entry = self._intend("list-bucket", region, self.account)
        create_bucket(s3, bucket, region)
        secure_bucket(s3, bucket, self.tags())
        self._made(entry, bucket)

    def _guardduty(self, region: str) -> None:
        managing = self.management(region).client("guardduty")
        admins = designated(managing)
        gd = self.cloud(region).client("guardduty")
        if self.account not in admins:
            if admins:
                raise ConfigError(
                    f"GuardDuty in {region} already has the administrator {admins[0]}",
                    f"pass --admin-account {admins[0]}, or remove it (aws guardduty "
                    "disable-organization-admin-account)")
            had = gd.list_detectors()["DetectorIds"]
            # Designating it enables GuardDuty there: that detector is the class's too.
            made_detector = None if had else self._intend("gd-detector", region, self.account)
            entry = self._intend("gd-admin", region, self.account)
            managing.enable_organization_admin_account(AdminAccountId=self.account)
            self._made(entry, self.account)
            if made_detector is not None:
                self._made(made_detector, self._detector_of(gd, create=True))
        detector = self._detector_of(gd, create=False)
        # Accounts already its members stay as they are, and stay members after the class.
        already = {m["AccountId"] for page in gd.get_paginator("list_members").paginate(
            DetectorId=detector, OnlyAssociated="true") for m in page["Members"]}
        members = {a: c for a, c in self._members_reached(region).items() if a not in already}
        if not members:
            return
        emails = self._emails(list(members))
        before = {a: c.client("guardduty").list_detectors()["DetectorIds"]
                  for a, c in members.items()}
        entries = {a: self._intend("gd-detector", region, a) for a, had in before.items()
                   if not had}
        entry = self._intend("gd-members", region, self.account, accounts=sorted(members))
        left = gd.create_members(DetectorId=detector, AccountDetails=[
            {"AccountId": a, "Email": emails[a]} for a in sorted(members)]).get(
            "UnprocessedAccounts", [])
        if left:
            raise ConfigError(f"GuardDuty in {region} did not add {left[0]['AccountId']} "
                              f"as a member: {left[0].get('Result')}")
        self._made(entry, detector)
        self._enabled_members(gd, detector, sorted(members), region)
        for account, entry in entries.items():
            found = self._detector_of(members[account].client("guardduty"), create=False,
                                      wait=True)
            self._made(entry, found)

    def _enabled_members(self, gd: Any, detector: str, members: list[str], region: str
                         ) -> None:
        """An organization account added by its administrator is an Enabled member at once
        (no invitation); any other stays Created and the administrator's lists never apply
        to it."""
        deadline = time.monotonic() + (5.0 if self.room.base.is_local else 60.0)
        while True:
            found = {m["AccountId"]: m.get("RelationshipStatus") for m in gd.get_members(
                DetectorId=detector, AccountIds=members)["Members"]}
            waiting = [a for a in members if found.get(a) != "Enabled"]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"account {waiting[0]} is not an enabled GuardDuty member of "
                    f"{self.account} in {region} ({found.get(waiting[0]) or 'not a member'})",
                    "a class with --admin-account takes accounts of the organization only")
            time.sleep(2.0)

    def _detector_of(self, gd: Any, create: bool, wait: bool = False) -> str:
        """The account's detector in the region; one GuardDuty is still enabling is waited
        for (seconds on AWS), one that never comes is created (`create`) or an error."""
        deadline = time.monotonic() + (60.0 if wait or create else 0.0)
        while True:
            found = gd.list_detectors()["DetectorIds"]
            if found:
                return str(found[0])
            if time.monotonic() >= deadline:
                break
            time.sleep(2.0)
        if create:
            return str(gd.create_detector(Enable=True, Tags=self.tags())["DetectorId"])
        raise ConfigError("GuardDuty has no detector where the class needs one",
                          "rerun; if it persists, enable GuardDuty there by hand")

    def _emails(self, members: list[str]) -> dict[str, str]:
        """Each member's e-mail address, which CreateMembers requires (Organizations
        knows it)."""
        org = self.room.base.client("organizations")
        found = {}
        for account in members:
            try:
                found[account] = org.describe_account(AccountId=account)["Account"]["Email"]
            except Exception:  # noqa: BLE001 - a placeholder address serves an organization member
                found[account] = f"gdlab-{account}@example.com"
        return found

    def _securityhub(self, region: str) -> None:
        admin_hub = self.cloud(region).client("securityhub")
        self._hub_on(admin_hub, region, self.account)
        managing = self.management(region).client("securityhub")
        admins = designated(managing)
        if self.account not in admins:
            if admins:
                raise ConfigError(
                    f"Security Hub already has the administrator {admins[0]}",
                    f"pass --admin-account {admins[0]}, or remove it (aws securityhub "
                    "disable-organization-admin-account)")
            entry = self._intend("sh-admin", region, self.account)
            managing.enable_organization_admin_account(AdminAccountId=self.account)
            self._made(entry, self.account)
        members = self._members_reached(region)
        for account, cloud in members.items():
            self._hub_on(cloud.client("securityhub"), region, account)
        already = {m["AccountId"] for page in admin_hub.get_paginator("list_members").paginate(
            OnlyAssociated=True) for m in page["Members"]}
        joining = sorted(set(members) - already)
        if joining:
            entry = self._intend("sh-members", region, self.account, accounts=joining)
            left = admin_hub.create_members(
                AccountDetails=[{"AccountId": a} for a in joining]).get(
                "UnprocessedAccounts", [])
            if left:
                raise ConfigError(f"Security Hub in {region} did not add "
                                  f"{left[0]['AccountId']} as a member: "
                                  f"{left[0].get('ProcessingResult')}")
            self._made(entry, self.account)

    def _hub_on(self, hub: Any, region: str, account: str) -> None:
        try:
            hub.describe_hub()
            return  # on before the class: the class leaves it on
        except Exception as exc:  # noqa: BLE001 - only 'not subscribed' means it is off
            if error_code(exc) not in ("InvalidAccessException", "ResourceNotFoundException"):
                raise
        entry = self._intend("sh-hub", region, account)
        hub.enable_security_hub(EnableDefaultStandards=False, Tags=self.tags())
        self._made(entry, hub.describe_hub()["HubArn"])

    def _aggregator(self) -> None:
        hub = self.cloud(self.home).client("securityhub")
        for found in hub.list_finding_aggregators()["FindingAggregators"]:
            arn = found["FindingAggregatorArn"]
            if arn.split(":")[3] != self.home:
                raise ConfigError(f"account {self.account} aggregates its findings in "
                                  f"{arn.split(':')[3]}, not {self.home}",
                                  f"pass --regions with {arn.split(':')[3]} first")
            return  # the account's own aggregator: its findings already gather here
        entry = self._intend("sh-aggregator", self.home, self.account)
        arn = hub.create_finding_aggregator(RegionLinkingMode="SPECIFIED_REGIONS",
                                            Regions=self.regions[1:])["FindingAggregatorArn"]
        self._made(entry, arn)

    def tags(self) -> dict[str, str]:
        return {CLASS_TAG: self.record.name}

    # --- the threat lists --------------------------------------------------------------------
    def enlist(self, region: str, lab: str, address: str) -> str:
        """A lab's Elastic IP for the region's list (the class writes it once every lab is
        set up); the list's name."""
        with self._lock:
            self._enlisted.setdefault(region, {})[lab] = address
        return list_name(self.record.name)

    def publish(self, cancel: threading.Event, wait_seconds: float) -> None:
        """Each region's list, with every enlisted address, written and ACTIVE."""
        with self._lock:
            enlisted = {region: dict(labs) for region, labs in self._enlisted.items()}
        for region, labs in sorted(enlisted.items()):
            if cancel.is_set():
                return
            self._publish(region, sorted(set(labs.values())), wait_seconds)

    def _publish(self, region: str, addresses: list[str], wait_seconds: float) -> None:
        cloud = self.cloud(region)
        s3, gd = cloud.client("s3"), cloud.client("guardduty")
        bucket = list_bucket(self.record.name, self.account, region)
        self._bucket(region)
        body = f"# gdlab class {self.record.name}: its labs' malicious Elastic IPs\n"
        s3.put_object(Bucket=bucket, Key=THREAT_LIST_KEY, ContentType="text/plain",
                      Body=(body + "".join(f"{a}\n" for a in addresses)).encode())
        detector = self._detector_of(gd, create=False)
        location = f"s3://{bucket}/{THREAT_LIST_KEY}"
        existing = self._set_id(gd, detector)
        if existing:
            gd.update_threat_intel_set(DetectorId=detector, ThreatIntelSetId=existing,
                                       Location=location, Activate=True)
        else:
            entry = self._intend("threat-intel-set", region, self.account, detector=detector)
            made = gd.create_threat_intel_set(
                DetectorId=detector, Name=list_name(self.record.name), Format="TXT",
                Location=location, Activate=True, Tags=self.tags())["ThreatIntelSetId"]
            self._made(entry, made)
        deadline = time.monotonic() + wait_seconds
        while (status := self.list_status(region)) != "ACTIVE":
            if status in ("ERROR", "DELETED", None) or time.monotonic() > deadline:
                raise ConfigError(f"the administrator's threat list in {region} is "
                                  f"{status or 'missing'}",
                                  "check s3://" + bucket + " and 'aws guardduty "
                                  "get-threat-intel-set' in the administrator account")
            time.sleep(1.0)

    def _set_id(self, gd: Any, detector: str) -> str | None:
        for set_id, info in threat_intel_sets(gd, detector):
            if info["Name"] == list_name(self.record.name):
                return str(set_id)
        return None

    def list_status(self, region: str) -> str | None:
        gd = self.cloud(region).client("guardduty")
        detectors = gd.list_detectors()["DetectorIds"]
        set_id = self._set_id(gd, detectors[0]) if detectors else None
        if set_id is None:
            return None
        return str(gd.get_threat_intel_set(DetectorId=detectors[0],
                                           ThreatIntelSetId=set_id)["Status"])

    # --- after the labs ----------------------------------------------------------------------
    def release(self) -> list[str]:
        """Undoes what the journal says the class made, kind by kind; what could not be
        undone, in one line each (it stays in the journal for the next teardown)."""
        problems = []
        blocked: set[str] = set()  # a region where an undo failed: what depends on it waits
        for kind in RELEASE_ORDER:
            for entry in [e for e in self.record.admin_made if e["kind"] == kind]:
                if entry["region"] in blocked:
                    continue
                if kind == "list-bucket" and any(e["region"] == entry["region"]
                                                 and e is not entry
                                                 for e in self.record.admin_made):
                    bucket = list_bucket(self.record.name, self.account, entry["region"])
                    problems.append(f"bucket {bucket}: kept, it holds the journal of what is "
                                    "left there")
                    continue
                try:
                    getattr(self, "_undo_" + kind.replace("-", "_"))(entry)
                except (GdlabError, Exception) as exc:  # noqa: BLE001 - said, the rest go on
                    problems.append(f"{kind} in {entry['account']}/{entry['region']}: "
                                    f"{describe(exc)[0]}")
                    blocked.add(entry["region"])
                    continue
                self._undone(entry)
        return problems
