import json
import stat

import pytest

from gdlab.errors import LabNotFound, UsageError
from gdlab.lab.state import LabState, LabStore, new_lab_id, validate_lab_id


@pytest.fixture
def store(tmp_path):
    return LabStore(tmp_path)


def make(store, lab="gd-test1"):
    return store.create(LabState(lab=lab, scenario="compromised-ec2", target="local",
                                 region="us-east-1"))


def test_new_lab_ids_are_valid_and_distinct():
    ids = {new_lab_id() for _ in range(50)}
    assert len(ids) == 50
    for lab in ids:
        assert validate_lab_id(lab) == lab
        assert lab.startswith("gd-") and len(lab) == 9


@pytest.mark.parametrize("bad", ["GD-1", "ab", "a" * 13, "-abc", "abc-", "a_b", "a--b", "ab c"])
def test_invalid_lab_ids_are_usage_errors(bad):
    with pytest.raises(UsageError) as err:
        validate_lab_id(bad)
    assert err.value.exit_code == 2


def test_state_file_is_private_and_atomic(store):
    state = make(store)
    path = store.path(state.lab)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob(".*.tmp"))
    assert json.loads(path.read_text())["lab"] == "gd-test1"


def test_journal_records_intent_then_id(store):
    state = make(store)
    state.intend("vpc", "AWS::EC2::VPC", "lab vpc")
    on_disk = store.load(state.lab)
    assert on_disk.resource("vpc").status == "pending"
    assert on_disk.resource("vpc").id is None
    state.record("vpc", "AWS::EC2::VPC", "vpc-123", cidr="10.0.0.0/24")
    on_disk = store.load(state.lab)
    assert on_disk.live("vpc").id == "vpc-123"
    assert on_disk.live("vpc").attrs == {"cidr": "10.0.0.0/24"}
    state.forget("vpc")
    assert store.load(state.lab).live("vpc") is None


def test_current_lab_and_resolve(store):
    with pytest.raises(LabNotFound):
        store.resolve(None)
    make(store, "gd-one")
    make(store, "gd-two")
    assert store.current() == "gd-two"
    assert store.resolve(None).lab == "gd-two"
    assert store.resolve("gd-one").lab == "gd-one"
    with pytest.raises(LabNotFound):
        store.resolve("gd-nope")
    assert [s.lab for s in store.all()] == ["gd-one", "gd-two"]


def test_timeline_and_phase(store):
    state = make(store)
    state.set_phase("ready", "setup complete")
    state.event("something went wrong", kind="error")
    loaded = store.load(state.lab)
    assert loaded.phase == "ready"
    assert [e.message for e in loaded.timeline] == ["setup complete", "something went wrong"]


def test_gdlab_home_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("GDLAB_HOME", str(tmp_path / "home"))
    assert LabStore().home == tmp_path / "home"
