"""A class's record: its names, accounts and regions checked as typed, written privately
and read back; a damaged or hostile record is one line, never a traceback or a lab elsewhere."""

from __future__ import annotations

import json
import os
import stat

import pytest

from gdlab.errors import LabNotFound, UsageError
from gdlab.lab.classroom import (
    ClassLab,
    ClassRecord,
    ClassStore,
    DamagedClass,
    parse_accounts,
    parse_regions,
    session_name,
    validate_class_name,
)


@pytest.mark.parametrize("name", ["ab", "Upper", "1st", "a--b", "ends-", "x" * 25, "a b"])
def test_a_bad_class_name_is_a_usage_error(name):
    with pytest.raises(UsageError):
        validate_class_name(name)


def test_accounts_and_regions_are_read_in_order_each_once():
    assert parse_accounts(" 111111111111,222222222222,111111111111, ") == [
        "111111111111", "222222222222"]
    assert parse_regions("us-east-1,eu-west-1,us-east-1,us-gov-west-1") == [
        "us-east-1", "eu-west-1", "us-gov-west-1"]
    for bad in ("11111111111", "1111111111111", "abcdefghijkl"):
        with pytest.raises(UsageError):
            parse_accounts(bad)
    with pytest.raises(UsageError):
        parse_regions("us-east")


def test_the_session_name_says_gdlab_and_the_class_within_stss_limit():
    assert session_name("sec-101") == "gdlab-class-sec-101"
    assert len(session_name("x" * 24)) <= 64


def test_a_record_is_written_private_and_read_back(tmp_path):
    store = ClassStore(tmp_path)
    record = ClassRecord(name="sec-101", target="local", scenario="compromised-ec2",
                         role="OrganizationAccountAccessRole",
                         labs=[ClassLab("111111111111", "us-east-1", lab="gd-abc123",
                                        status="passed", seconds=12.5)])
    store.save(record)
    path = store.path("sec-101")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = store.load("sec-101")
    assert again.labs == record.labs and again.scenario == "compromised-ec2"
    assert store.names() == ["sec-101"]
    store.forget("sec-101")
    with pytest.raises(LabNotFound, match="no class 'sec-101'"):
        store.load("sec-101")


@pytest.mark.parametrize("text", [
    "{not json", "[]", json.dumps({"name": "../../etc", "target": "local",
                                   "scenario": "x", "role": "r"}),
    json.dumps({"name": "sec-101", "target": "local", "scenario": "x", "role": "r",
                "labs": [{"account": "1; rm -rf /", "region": "us-east-1"}]}),
    json.dumps({"name": "sec-101", "target": "local", "scenario": "x", "role": "r",
                "labs": [{"account": "111111111111", "region": "us-east-1",
                          "lab": "../../x"}]}),
    json.dumps({"name": "sec-101", "target": "local", "scenario": "x", "role": "a/b"}),
    # The administrator's journal names only what gdlab writes there.
    json.dumps({"name": "sec-101", "target": "local", "scenario": "x", "role": "r",
                "admin_account": "11111111111x"}),
    json.dumps({"name": "sec-101", "target": "local", "scenario": "x", "role": "r",
                "admin_account": "111111111111", "admin_made": [
                    {"kind": "rm-rf", "account": "111111111111", "region": "us-east-1"}]}),
    json.dumps({"name": "sec-101", "target": "local", "scenario": "x", "role": "r",
                "admin_account": "111111111111", "admin_made": [
                    {"kind": "gd-members", "account": "111111111111", "region": "us-east-1",
                     "accounts": ["*"]}]}),
    json.dumps({"name": "sec-101", "target": "local", "scenario": "x", "role": "r",
                "admin_made": {"kind": "gd-admin"}}),
])
def test_a_damaged_or_hostile_record_is_one_line(tmp_path, text):
    store = ClassStore(tmp_path)
    store.dir.mkdir(parents=True)
    store.path("sec-101").write_text(text)
    with pytest.raises(DamagedClass) as info:
        store.load("sec-101")
    assert "damaged" in str(info.value) and "\n" not in str(info.value)


def test_a_record_that_is_a_symlink_is_not_followed(tmp_path):
    store = ClassStore(tmp_path)
    store.dir.mkdir(parents=True)
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    store.path("sec-101").symlink_to(secret)
    with pytest.raises(DamagedClass):
        store.load("sec-101")


def test_a_class_held_by_another_process_is_refused_in_one_line(tmp_path):
    import subprocess
    import sys

    from gdlab.errors import LabBusy

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from gdlab.lab.classroom import ClassStore; "
         f"ClassStore({str(tmp_path)!r}).hold('sec-101'); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LabBusy) as info:
            ClassStore(tmp_path).hold("sec-101")
        assert "class sec-101 is in use by" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    ClassStore(tmp_path).hold("sec-101")  # the OS let it go with the process
