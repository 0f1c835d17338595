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


# --- damaged and hostile state files ------------------------------------------------------
def sound(lab="gd-test1", **change):
    data = LabState(lab=lab, scenario="compromised-ec2", target="local",
                    region="us-east-1").to_dict()
    data.update(change)
    return data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([1, 2], "holds a list"),
        (sound(resources="x"), "'resources' must be a list"),
        (sound(timeline=5), "'timeline' must be a list"),
        (sound(resources=[5]), "resources[0] must be an object"),
        (sound(resources=[{"key": "vpc", "type": "AWS::EC2::VPC", "status": "gone"}]),
         "'status' is 'gone'"),
        (sound(resources=[{"key": "vpc", "type": "T", "attrs": []}]), "'attrs' must be"),
        (sound(phase="exploded"), "'phase' is 'exploded'"),
        (sound(target="mars"), "'target' is 'mars'"),
        (sound(region=None), "'region' must be a non-empty string, not null"),
        (sound(options=[]), "'options' must be an object"),
        (sound(lab="../../etc/victim"), "the file is named gd-test1.json"),
        (sound(timeline=[{"time": "t", "message": 3}]), "timeline[0]: 'message'"),
    ],
)
def test_damaged_state_is_named_with_what_is_wrong(store, data, problem):
    from gdlab.errors import DamagedState

    store.dir.mkdir(parents=True)
    store.path("gd-test1").write_text(json.dumps(data))
    with pytest.raises(DamagedState) as err:
        store.load("gd-test1")
    assert problem in str(err.value)
    assert "gdlab teardown --lab gd-test1" in str(err.value)


def test_bad_json_and_symlinks_are_damaged_and_never_followed(store, tmp_path):
    from gdlab.errors import DamagedState

    store.dir.mkdir(parents=True)
    store.path("gd-bad1").write_text("{not json")
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps(sound("gd-link1")))
    store.path("gd-link1").symlink_to(victim)
    for lab, problem in (("gd-bad1", "not JSON"), ("gd-link1", "symlink")):
        with pytest.raises(DamagedState, match=problem):
            store.load(lab)
    # Writing a lab whose file is a symlink replaces the link; the target is untouched.
    before = victim.read_bytes()
    store.save(LabState(lab="gd-link1", scenario="x", target="local", region="us-east-1"))
    assert victim.read_bytes() == before and not store.path("gd-link1").is_symlink()


def test_scan_lists_damaged_files_and_keeps_the_sound_ones(store):
    make(store, "gd-good1")
    store.path("gd-bad1").write_text("[]")
    store.path("abc\n").with_name("abc\n.json").write_text("{}")
    labs, damaged = store.scan()
    assert [s.lab for s in labs] == ["gd-good1"]
    assert {d.lab: d.reason for d in damaged} == {
        "abc\n": "its name is not a lab id", "gd-bad1": "the file holds a list, not an object"}
    by_lab = {d.lab: d for d in damaged}
    assert "gdlab teardown --lab gd-bad1" in by_lab["gd-bad1"].hint
    assert "remove" in by_lab["abc\n"].hint


def test_private_fields_in_a_file_are_ignored(store):
    data = sound("gd-test1", _store="x", _tolerate_write_errors=True)
    store.dir.mkdir(parents=True)
    store.path("gd-test1").write_text(json.dumps(data))
    state = store.load("gd-test1")
    assert state._store is store and state._tolerate_write_errors is False


@pytest.mark.parametrize("bad", ["abc\n", "gd-one\n", "\ngd-one", "../x", "gd-one/.."])
def test_lab_ids_are_matched_whole(bad):
    with pytest.raises(UsageError):
        validate_lab_id(bad)


def test_current_pointer_with_a_newline_or_a_bad_id_is_ignored(store):
    make(store, "gd-one")
    (store.home / "current").write_text("../gd-one\n")
    assert store.current() is None
    (store.home / "current").write_text("gd-one\n")
    assert store.current() == "gd-one"


def test_folders_are_private_and_a_symlinked_folder_is_refused(tmp_path):
    from gdlab.lab.locks import UnsafePath

    store = LabStore(tmp_path / "home")
    make(store)
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = LabStore(tmp_path / "home2")
    other.home.mkdir()
    other.dir.symlink_to(elsewhere)
    with pytest.raises(UnsafePath, match="symlink"):
        make(other)
    assert list(elsewhere.iterdir()) == []


def test_a_write_error_names_the_lab_and_what_to_do(store, monkeypatch):
    import errno

    from gdlab.lab.state import StateWriteError

    state = make(store)

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "save", full)
    with pytest.raises(StateWriteError) as err:
        state.event("x")
    assert "gd-test1" in str(err.value) and "no space left on device" in str(err.value)
    assert "gdlab teardown --lab gd-test1" in str(err.value)
