"""A class's GuardDuty administrator against a real local cloud holding an organization: its
teardown undoes what its journal names even when a crash kept the ids from it, and never
touches what was there before the class (an administrator and members already in place
stay); another administrator already designated stops it in one line before it changes
anything of GuardDuty's; a hostile copy of the journal in the administrator's bucket is one
line."""

from __future__ import annotations

import json
import threading

import pytest
from lab.conftest import inventory

from gdlab.cloud import Cloud, CloudSettings
from gdlab.errors import ConfigError
from gdlab.lab import accounts
from gdlab.lab.class_admin import Administrator
from gdlab.lab.class_targets import Classroom
from gdlab.lab.classroom import ClassLab, ClassRecord, ClassStore
from gdlab.lab.fanout import SharedInterrupts
from gdlab.lab.run import NoSignals
from gdlab.lab.state import LabStore

REGIONS = ("us-east-1", "eu-west-1")


@pytest.fixture
def org(local_server, tmp_path):
    base = Cloud(CloudSettings(target="local", region=REGIONS[0],
                               endpoint_url=local_server.endpoint,
                               local_cloud_id=local_server.cloud_id,
                               local_credentials=local_server.credentials))
    made = [a["Id"] for a in accounts.create_member_accounts(base, 3)]
    return base, made, tmp_path


def administrator(org, name: str, regions: tuple[str, ...] = REGIONS) -> Administrator:
    base, (student, other, admin), home = org
    record = ClassRecord(name=name, target="local", scenario="compromised-ec2",
                         role="OrganizationAccountAccessRole", admin_account=admin,
                         admin_home=regions[0],
                         labs=[ClassLab(a, r) for a in (student, other) for r in regions])
    classes = ClassStore(home)
    classes.save(record)
    room = Classroom(base, LabStore(home), classes, record, SharedInterrupts(NoSignals()))
    return Administrator(room, record, classes)


def reach(org, account: str, region: str) -> Cloud:
    base = org[0]
    return accounts.reach(base, account, region, accounts.assume(
        base, account, "OrganizationAccountAccessRole", "test"))


def test_a_crash_before_the_ids_were_journaled_is_undone_and_what_was_there_stays(org):
    base, (student, other, admin), _ = org
    # The other student had GuardDuty and Security Hub on before the class.
    before = reach(org, other, REGIONS[1])
    detector = before.client("guardduty").create_detector(Enable=True)["DetectorId"]
    before.client("securityhub").enable_security_hub(EnableDefaultStandards=False)
    side = administrator(org, "crashed")
    side.prepare(threading.Event())
    side.enlist(REGIONS[1], "gd-abc123", "198.51.100.7")
    side.publish(threading.Event(), 30.0)
    assert side.list_status(REGIONS[1]) == "ACTIVE"
    kinds = {e["kind"] for e in side.record.admin_made}
    assert kinds == {"gd-admin", "gd-detector", "gd-members", "sh-hub",
                     "sh-admin", "sh-members", "sh-aggregator", "list-bucket",
                     "threat-intel-set", "org-delegation", "org-access"}
    assert not any(e["account"] == other and e["region"] == REGIONS[1]
                   for e in side.record.admin_made if e["kind"] in ("gd-detector", "sh-hub"))
    # As if the process died after each call and before its id was written down.
    reread = ClassStore(side.classes.home).load("crashed")
    for entry in reread.admin_made:
        entry["id"] = None
    side.record.admin_made[:] = reread.admin_made
    assert side.release() == []
    assert side.record.admin_made == []
    kept = inventory(reach(org, other, REGIONS[1]))
    assert kept == {"detector": [detector], "securityhub": ["enabled"]}
    for account in (student, other, admin):
        for region in REGIONS:
            if (account, region) != (other, REGIONS[1]):
                assert inventory(reach(org, account, region)) == {}, (account, region)
    for region in REGIONS:
        managing = accounts.reach(base, base.account, region, None)
        assert managing.client("guardduty").list_organization_admin_accounts()[
            "AdminAccounts"] == []
        assert managing.client("securityhub").list_organization_admin_accounts()[
            "AdminAccounts"] == []
    assert organization_changes(base) == {}


def organization_changes(base: Cloud) -> dict:
    """The delegated administrators and trusted services Organizations names for GuardDuty
    and Security Hub."""
    org = base.client("organizations")
    found = {}
    for service in ("guardduty.amazonaws.com", "securityhub.amazonaws.com"):
        admins = org.list_delegated_administrators(ServicePrincipal=service)[
            "DelegatedAdministrators"]
        if admins:
            found[service] = [a["Id"] for a in admins]
    trusted = [s["ServicePrincipal"] for s in org.list_aws_service_access_for_organization()[
        "EnabledServicePrincipals"] if s["ServicePrincipal"].split(".")[0] in (
        "guardduty", "securityhub")]
    if trusted:
        found["trusted"] = trusted
    return found


def test_another_administrator_already_designated_stops_the_class_in_one_line(org):
    base, (student, other, admin), _ = org
    base.client("guardduty").enable_organization_admin_account(AdminAccountId=other)
    side = administrator(org, "taken", REGIONS[:1])
    with pytest.raises(ConfigError) as info:
        side.prepare(threading.Event())
    assert f"already has the administrator {other}" in info.value.message
    assert info.value.hint.startswith(f"pass --admin-account {other}")
    assert not [e for e in side.record.admin_made if e["kind"].startswith("gd-")]
    assert side.release() == [] and side.record.admin_made == []


def test_an_administrator_another_class_stands_in_is_refused_until_that_class_is_gone(org):
    first = administrator(org, "first", REGIONS[:1])
    first.prepare(threading.Event())
    second = administrator(org, "first-too", REGIONS[:1])  # a name the first's begins
    with pytest.raises(ConfigError) as info:
        second.prepare(threading.Event())
    assert info.value.message.startswith(
        f"administrator {first.account} still serves class first (its bucket gdlab-cls-first-")
    assert "'gdlab class teardown first'" in info.value.hint
    assert second.record.admin_made == []  # refused before any change
    assert first.release() == []
    second.prepare(threading.Event())
    assert second.made("gd-admin", REGIONS[0]) is not None
    assert second.release() == [] and second.record.admin_made == []


def test_two_classes_started_at_the_same_moment_never_both_go_on(org):
    first = administrator(org, "same-a", REGIONS[:1])
    second = administrator(org, "same-b", REGIONS[:1])
    own_bucket = first._bucket

    def racing(region):  # type: ignore[no-untyped-def]
        own_bucket(region)
        second._bucket(region)  # the other class makes its bucket meanwhile

    first._bucket = racing  # type: ignore[method-assign]
    for side, other in ((first, "same-b"), (second, "same-a")):
        with pytest.raises(ConfigError, match=f"still serves class {other} "):
            side.prepare(threading.Event())
        assert [e["kind"] for e in side.record.admin_made] == ["list-bucket"]
    assert first.release() == [] and second.release() == []
    assert first.record.admin_made == second.record.admin_made == []


def test_a_signal_stops_the_preparation_between_its_calls(org):
    side = administrator(org, "stopped", REGIONS[:1])
    stop = threading.Event()
    stop.set()
    side.prepare(stop)
    assert side.record.admin_made == []


def test_a_lost_record_is_rebuilt_from_the_journal_in_the_administrators_buckets(org):
    base, (student, other, admin), _ = org
    side = administrator(org, "elsewhere")
    side.prepare(threading.Event())
    made = sorted(map(str, side.record.admin_made))
    # Another machine: a record of that name knowing only the administrator.
    fresh = ClassRecord(name="elsewhere", target="local", scenario="compromised-ec2",
                        role="OrganizationAccountAccessRole", admin_account=admin)
    classes = ClassStore(org[2] / "other-machine")
    room = Classroom(base, LabStore(org[2] / "other-machine"), classes, fresh,
                     SharedInterrupts(NoSignals()))
    found = Administrator(room, fresh, classes)
    assert found.recover(list(REGIONS)) == len(side.record.admin_made)
    assert sorted(map(str, fresh.admin_made)) == made
    assert found.release() == []
    for account in (student, other, admin):
        for region in REGIONS:
            assert inventory(reach(org, account, region)) == {}, (account, region)
    assert organization_changes(base) == {}


def test_a_hostile_copy_of_the_journal_is_one_line(org):
    side = administrator(org, "hostile", REGIONS[:1])
    side.prepare(threading.Event())
    bucket = side.made("list-bucket", REGIONS[0])["id"]
    s3 = reach(org, side.account, REGIONS[0]).client("s3")
    s3.put_object(Bucket=bucket, Key="gdlab-class-journal.json", Body=json.dumps(
        {"class": "hostile", "entries": [{"kind": "gd-detector", "account": "../../etc",
                                          "region": REGIONS[0], "id": None}]}).encode())
    fresh = ClassRecord(name="hostile", target="local", scenario="compromised-ec2",
                        role="OrganizationAccountAccessRole", admin_account=side.account)
    with pytest.raises(ConfigError) as info:
        Administrator(side.room, fresh, side.classes).recover([REGIONS[0]])
    assert "damaged" in info.value.message and "\n" not in str(info.value)
    assert side.release() == []


def test_an_organization_already_administered_keeps_its_administrator_and_members(org):
    base, (student, other, admin), _ = org
    base.client("guardduty").enable_organization_admin_account(AdminAccountId=admin)
    admin_gd = reach(org, admin, REGIONS[0]).client("guardduty")
    (detector,) = admin_gd.list_detectors()["DetectorIds"]
    admin_gd.create_members(DetectorId=detector, AccountDetails=[
        {"AccountId": student, "Email": "student@example.com"}])
    side = administrator(org, "adopted", REGIONS[:1])
    side.prepare(threading.Event())
    mine = [e for e in side.record.admin_made if e["region"] == REGIONS[0]]
    assert not [e for e in mine if e["kind"] == "gd-admin"]
    assert [e["accounts"] for e in mine if e["kind"] == "gd-members"] == [[other]]
    assert side.release() == []
    # What was there before the class is there after it.
    assert [a["AdminAccountId"] for a in base.client("guardduty").
            list_organization_admin_accounts()["AdminAccounts"]] == [admin]
    members = admin_gd.list_members(DetectorId=detector)["Members"]
    assert [(m["AccountId"], m["RelationshipStatus"]) for m in members] == [
        (student, "Enabled")]
    assert admin_gd.list_detectors()["DetectorIds"] == [detector]
