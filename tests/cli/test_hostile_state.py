"""A gdlab home someone else has been at: state files that lie about their lab, have the wrong
shape or are symlinks out of the home, lock and pointer files that are symlinks, a lab id
with a newline. gdlab must say what is wrong in one line, go on with what is sound, and never
write anything outside its home (nor anything at all on a dry run).

Read-only commands run in this process (run_cli, tests/conftest.py); whatever needs a cloud
runs as a real `gdlab` process, in the test's own home, against one local cloud per module
(module_cloud, tests/cli/conftest.py) reached through --endpoint-url."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

TRACEBACK = "Traceback (most recent call last)"
ID = "hostile-1"
ACCOUNT = "123456789012"


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert TRACEBACK not in text, text


def sound_state(lab: str, **changes: Any) -> dict[str, Any]:
    """A state file as gdlab writes it (what a naive reader would trust)."""
    state = {
        "lab": lab, "scenario": "compromised-ec2", "target": "local", "region": "us-east-1",
        "endpoint": None, "account": ACCOUNT, "local_cloud": None, "phase": "ready",
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
        "options": {}, "resources": [], "timeline": [],
    }
    state.update(changes)
    return state


def entry(path: Path) -> tuple[Any, ...]:
    """What a file, folder or symlink is, without following it: kind, mode, size, mtime and
    a hash of the bytes, so any write, truncation or replacement shows."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ("file", stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """entry() of everything under `root`, root included, symlinks not followed, leaving out
    the folders in `skip` (the homes gdlab may write)."""
    found: dict[str, tuple[Any, ...]] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        found[folder] = entry(here)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in files + [d for d in dirs if (here / d).is_symlink()]:
            found[str(here / name)] = entry(here / name)
    return found


# --- the hostile files ---------------------------------------------------------------------
# name: (what to write into <home>/labs/<ID>.json, or a callable making it; what labs says)
def _symlink_out(labs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{ID}.json").write_text(json.dumps(sound_state(ID)))
    (labs / f"{ID}.json").symlink_to(outside / f"{ID}.json")


HOSTILE: dict[str, tuple[Any, str]] = {
    # a naive join of labs/ and this id is <tmp_path>/victim.json, outside the home
    "lab-id-escapes-the-home": (sound_state("../../victim"),
                                "'lab' says '../../victim' but the file is named"),
    "top-level-list": ([sound_state(ID)], "the file holds a list, not an object"),
    "resources-a-string": (sound_state(ID, resources="x"), "'resources' must be a list"),
    "timeline-a-number": (sound_state(ID, timeline=5), "'timeline' must be a list"),
    "unknown-phase": (sound_state(ID, phase="exploded"), "'phase' is 'exploded'"),
    "target-mars": (sound_state(ID, target="mars"), "'target' is 'mars'"),
    "required-fields-null": (
        {**sound_state(ID), "lab": None, "scenario": None, "target": None, "region": None,
         "phase": None},
        "must be a non-empty string, not null",
    ),
    "not-json": ('{"lab": "hostile-1", "phase": ', "it is not JSON"),
    "symlink-out-of-the-home": (_symlink_out, "it is a symlink"),
}


def plant(home: Path, tmp_path: Path, variant: str, lab: str = ID) -> Path:
    """Write the hostile state file of `variant` as <home>/labs/<lab>.json, and victims
    outside the home where a naive path join would land."""
    labs = home / "labs"
    labs.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in ("victim.json", "victim.lock", "victim"):
        (tmp_path / name).write_text("the victim's own bytes\n")
    content, _ = HOSTILE[variant]
    path = labs / f"{lab}.json"
    if callable(content):
        content(labs, tmp_path)
        if lab != ID:
            (labs / f"{ID}.json").rename(path)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        if isinstance(content, dict) and content.get("lab") == ID:
            content = {**content, "lab": lab}
        path.write_text(json.dumps(content, indent=2))
    return path


def damaged_line(home: Path, lab: str) -> str:
    return f"error: lab {lab}'s state file {home / 'labs' / f'{lab}.json'} is damaged: "


@pytest.fixture
def no_stray_cloud(gdlab_home: Path, free_port: int, monkeypatch: pytest.MonkeyPatch):
    """In-process commands get a port of their own; a local cloud one of them started by
    mistake is stopped."""
    monkeypatch.setenv("GDLAB_LOCAL_PORT", str(free_port))
    yield
    from gdlab.local import daemon

    with contextlib.suppress(Exception):
        daemon.stop(gdlab_home)


# --- 5. each hostile file, through the read-only commands -----------------------------------
@pytest.mark.parametrize("variant", sorted(HOSTILE))
def test_a_damaged_state_file_is_one_line_and_nothing_is_written(
    variant: str, run_cli: Any, gdlab_home: Path, tmp_path: Path, no_stray_cloud: None
):
    home = gdlab_home
    plant(home, tmp_path, variant)
    (home / "current").write_text(ID + "\n")
    reason = HOSTILE[variant][1]
    outside, inside = snapshot(tmp_path, skip=(home,)), snapshot(home)

    for args in (["status", "--lab", ID], ["status"], ["verify", "--lab", ID],
                 ["trigger", "--lab", ID], ["watch", "--lab", ID]):
        code, out, err = run_cli(*args)
        no_traceback(out, err)
        assert code == 1, (args, code, out, err)
        assert out == "", (args, out)
        lines = err.splitlines()
        assert len(lines) == 1, (args, err)
        assert lines[0].startswith(damaged_line(home, ID)), (args, err)
        assert reason in lines[0], (args, err)

    code, out, err = run_cli("labs")
    no_traceback(out, err)
    assert code == 0, err
    assert ID in out and "damaged" in out, out
    code, out, err = run_cli("labs", "--json")
    no_traceback(out, err)
    assert code == 0, err
    rows = [row for row in json.loads(out) if row["lab"] == ID]
    assert len(rows) == 1, out
    assert rows[0]["phase"] == "damaged" and reason in rows[0]["damaged"], rows

    assert snapshot(tmp_path, skip=(home,)) == outside
    assert snapshot(home) == inside
    for name in ("victim.json", "victim.lock", "victim"):
        assert (tmp_path / name).read_text() == "the victim's own bytes\n"


# --- 5. every hostile file at once, plus a sound lab, through teardown --all -----------------
def hostile_home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A home holding every hostile file, each as its own lab id: {lab: reason}."""
    home = tmp_path / "home"
    labs: dict[str, str] = {}
    for index, variant in enumerate(sorted(HOSTILE), start=1):
        lab = f"dmg-{index}"
        plant(home, tmp_path, variant, lab=lab)
        labs[lab] = HOSTILE[variant][1]
    # a name gdlab never writes: listed as damaged, never taken for a lab id
    (home / "labs" / "Not A Lab.json").write_text(json.dumps(sound_state(ID)))
    return home, labs


@pytest.mark.slow
def test_teardown_all_dry_run_writes_nothing_with_damaged_files(
    module_cloud: Any, tmp_path: Path
):
    home, damaged = hostile_home(tmp_path)
    outside, inside = snapshot(tmp_path, skip=(home,)), snapshot(home)
    result = module_cloud.run_elsewhere("teardown", "--all", "--dry-run", home=home)
    no_traceback(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    for lab in damaged:
        assert lab in result.stdout + result.stderr
    assert snapshot(tmp_path, skip=(home,)) == outside
    assert snapshot(home) == inside


@pytest.mark.slow
def test_teardown_all_names_each_damaged_lab_in_one_line(module_cloud: Any, tmp_path: Path):
    home, damaged = hostile_home(tmp_path)
    result = module_cloud.run_elsewhere("teardown", "--all", "--dry-run", home=home,
                                        columns=None)
    text = result.stdout + result.stderr
    for lab, reason in damaged.items():
        lines = [line for line in text.splitlines() if f"lab {lab}:" in line]
        assert len(lines) == 1 and reason in lines[0], text
        assert "would be set aside" in lines[0], text  # nothing of it in the cloud


@pytest.mark.slow
def test_teardown_all_tears_down_a_sound_lab_beside_damaged_ones(
    module_cloud: Any, tmp_path: Path
):
    home, damaged = hostile_home(tmp_path)
    made = module_cloud.run_elsewhere("setup", "--lab", "sound-1", home=home)
    assert made.returncode == 0, made.stdout + made.stderr
    assert module_cloud.inventory("sound-1")
    outside = snapshot(tmp_path, skip=(home,))
    files = {lab: entry(home / "labs" / f"{lab}.json") for lab in damaged}
    down = module_cloud.run_elsewhere("teardown", "--all", "--yes", home=home)
    no_traceback(down.stdout, down.stderr)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "lab sound-1 torn down" in down.stdout, down.stdout
    assert module_cloud.inventory("sound-1") == {}
    for lab in damaged:
        assert lab in down.stdout + down.stderr
        # nothing of it in the cloud: the file is set aside as it was (renamed, not changed)
        (aside,) = (home / "labs").glob(f"{lab}.json.damaged-*")
        assert entry(aside) == files[lab]
        assert not os.path.lexists(home / "labs" / f"{lab}.json")
    assert snapshot(tmp_path, skip=(home,)) == outside
    labs = json.loads(module_cloud.run_elsewhere("labs", "--json", home=home).stdout)
    # a name gdlab never writes is only listed: a person removes it
    assert {row["lab"]: row["phase"] for row in labs} == {
        "sound-1": "torn-down", "Not A Lab": "damaged"}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["unknown-phase", "symlink-out-of-the-home"])
def test_teardown_of_a_damaged_lab_rebuilds_it_from_the_cloud(
    module_cloud: Any, tmp_path: Path, variant: str
):
    home, lab = tmp_path / "home", "rebuild-1" if variant == "unknown-phase" else "rebuild-2"
    made = module_cloud.run_elsewhere("setup", "--lab", lab, home=home)
    assert made.returncode == 0, made.stdout + made.stderr
    (home / "labs" / f"{lab}.json").unlink()
    path = plant(home, tmp_path, variant, lab=lab)
    before = path.read_bytes() if not path.is_symlink() else os.readlink(path)
    outside = snapshot(tmp_path, skip=(home,))

    status = module_cloud.run_elsewhere("status", "--lab", lab, home=home)
    assert status.returncode == 1 and len(status.stderr.splitlines()) == 1, status.stderr
    inside = snapshot(home)
    dry = module_cloud.run_elsewhere("teardown", "--lab", lab, "--dry-run", home=home)
    no_traceback(dry.stdout, dry.stderr)
    assert dry.returncode == 0 and "would-delete" in dry.stdout, dry.stdout + dry.stderr
    assert snapshot(home) == inside  # rebuilt in memory only: nothing set aside, no lock
    down = module_cloud.run_elsewhere("teardown", "--lab", lab, home=home)
    no_traceback(down.stdout, down.stderr)
    assert down.returncode == 0, down.stdout + down.stderr
    assert module_cloud.inventory(lab) == {}
    (aside,) = (home / "labs").glob(f"{lab}.json.damaged-*")
    assert (os.readlink(aside) if aside.is_symlink() else aside.read_bytes()) == before
    rebuilt = module_cloud.run_elsewhere("status", "--lab", lab, "--json", home=home)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["phase"] == "torn-down"
    assert snapshot(tmp_path, skip=(home,)) == outside


@pytest.mark.slow
def test_a_damaged_lab_with_nothing_in_the_cloud_goes_as_its_hint_says(
    module_cloud: Any, tmp_path: Path
):
    home = tmp_path / "home"
    path = plant(home, tmp_path, "unknown-phase", lab="gone-1")
    damaged = path.read_bytes()
    listed = json.loads(module_cloud.run_elsewhere("labs", "--json", home=home).stdout)
    assert [row["phase"] for row in listed if row["lab"] == "gone-1"] == ["damaged"]
    status = module_cloud.run_elsewhere("status", "--lab", "gone-1", home=home)
    assert "'gdlab teardown --lab gone-1' rebuilds it" in status.stderr, status.stderr
    down = module_cloud.run_elsewhere("teardown", "--lab", "gone-1", home=home)
    no_traceback(down.stdout, down.stderr)
    listed = json.loads(module_cloud.run_elsewhere("labs", "--json", home=home).stdout)
    assert [row for row in listed if row["phase"] == "damaged"] == [], (down.stderr, listed)
    (aside,) = (home / "labs").glob("gone-1.json.damaged-*")  # kept for a person to read
    assert aside.read_bytes() == damaged


@pytest.mark.slow
def test_a_state_file_that_is_a_fifo_does_not_hang_gdlab_labs(
    gdlab_home: Path, no_stray_cloud: None
):
    import subprocess
    import sys

    (gdlab_home / "labs").mkdir(mode=0o700)
    os.mkfifo(gdlab_home / "labs" / "fifo-1.json")
    gdlab = str(Path(sys.executable).with_name("gdlab"))
    try:  # a hang guard, not a timing check: gdlab labs reads a few small files
        result = subprocess.run([gdlab, "labs", "--json"], capture_output=True, text=True,
                                timeout=10, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("gdlab labs did not end: it is blocked opening the FIFO")
    assert result.returncode == 0, result.stderr
    assert [row["phase"] for row in json.loads(result.stdout)] == ["damaged"]


# --- 6. a dry run on a torn-down lab with a leftover ------------------------------------------
@pytest.mark.slow
def test_dry_run_on_a_torn_down_lab_with_a_leftover_writes_no_byte(module_cloud: Any):
    """In the local cloud's own home (its pid file and log included), as a user has it."""
    cloud, lab = module_cloud, "left-1"
    assert cloud.run("setup", "--lab", lab).returncode == 0
    assert cloud.run("teardown", "--lab", lab).returncode == 0
    topic = cloud.client("sns").create_topic(
        Name=f"GuardDuty-Example-{lab}", Tags=[{"Key": "gdlab:lab", "Value": lab}])["TopicArn"]
    try:
        before = snapshot(cloud.home)
        for args in (["teardown", "--all", "--dry-run"], ["teardown", "--lab", lab, "--dry-run"],
                     ["teardown", "--all", "--dry-run", "--json"]):
            result = cloud.run(*args)
            no_traceback(result.stdout, result.stderr)
            assert result.returncode == 0, (args, result.stdout, result.stderr)
            assert topic in result.stdout, (args, result.stdout)
            assert snapshot(cloud.home) == before, args
        report = json.loads(result.stdout)
        (mine,) = [entry for entry in report if entry["lab"] == lab]
        assert [(a["id"], a["status"]) for a in mine["actions"]] == [(topic, "would-delete")]
    finally:
        down = cloud.run("teardown", "--lab", lab)
    assert down.returncode == 0, down.stdout + down.stderr
    assert cloud.inventory(lab) == {}


# --- 7. a lab id with a trailing newline ------------------------------------------------------
@pytest.mark.parametrize("command", [["setup"], ["status"], ["teardown"], ["teardown",
                                     "--dry-run"], ["trigger"], ["watch"], ["verify"], ["run"],
                                     ["mail"]])
@pytest.mark.parametrize("lab", ["abc\n", "gd-demo1\n", "../../victim"])
def test_a_lab_id_with_a_newline_is_refused_before_anything(
    command: list[str], lab: str, run_cli: Any, gdlab_home: Path, no_stray_cloud: None
):
    code, out, err = run_cli(*command, "--lab", lab)
    no_traceback(out, err)
    assert code == 2, (code, out, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: invalid lab id"), err
    assert list(gdlab_home.iterdir()) == []


# --- 8. lock, pointer and folders that are symlinks out of the home ---------------------------
def target_file(tmp_path: Path, name: str, text: str) -> Path:
    target = tmp_path / name
    target.write_text(text)
    return target


@pytest.mark.slow
def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(
    module_cloud: Any, tmp_path: Path
):
    home, lab = tmp_path / "home", "lock-1"
    (home / "labs").mkdir(parents=True)
    target = target_file(tmp_path, "precious.txt", "not gdlab's\n")
    (home / "labs" / f"{lab}.lock").symlink_to(target)
    outside = snapshot(tmp_path, skip=(home,))
    for args in (["setup", "--lab", lab], ["teardown", "--lab", lab]):
        result = module_cloud.run_elsewhere(*args, home=home)
        no_traceback(result.stdout, result.stderr)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "is a symlink" in lines[0], (args, result.stderr)
        assert snapshot(tmp_path, skip=(home,)) == outside, args
    assert module_cloud.inventory(lab) == {}


@pytest.mark.slow
def test_a_symlinked_current_pointer_is_replaced_never_written_through(
    module_cloud: Any, tmp_path: Path
):
    home, lab = tmp_path / "home", "cur-1"
    home.mkdir()
    target = target_file(tmp_path, "precious.txt", f"{lab}\n")  # even naming a lab
    (home / "current").symlink_to(target)
    outside = snapshot(tmp_path, skip=(home,))
    status = module_cloud.run_elsewhere("status", home=home)
    assert status.returncode == 1 and "no current lab" in status.stderr, status.stderr
    try:
        made = module_cloud.run_elsewhere("setup", "--lab", lab, home=home)
        assert made.returncode == 0, made.stdout + made.stderr
        assert snapshot(tmp_path, skip=(home,)) == outside
        assert not (home / "current").is_symlink()
        assert (home / "current").read_text() == f"{lab}\n"
    finally:
        down = module_cloud.run_elsewhere("teardown", "--lab", lab, home=home)
    assert down.returncode == 0, down.stdout + down.stderr
    assert snapshot(tmp_path, skip=(home,)) == outside
    assert module_cloud.inventory(lab) == {}


@pytest.mark.slow
def test_a_symlinked_quota_lock_or_labs_folder_is_refused(module_cloud: Any, tmp_path: Path):
    """The Elastic IP quota's lock (<home>/locks/eip-...lock) and the labs folder itself."""
    home = tmp_path / "home"
    (home / "locks").mkdir(parents=True)
    target = target_file(tmp_path, "precious.txt", "not gdlab's\n")
    (home / "locks" / f"eip-local-{ACCOUNT}-us-east-1.lock").symlink_to(target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = tmp_path / "home2"
    other.mkdir()
    (other / "labs").symlink_to(elsewhere, target_is_directory=True)
    outside = snapshot(tmp_path, skip=(home, other))
    try:
        made = module_cloud.run_elsewhere("setup", "--lab", "qlock-1", home=home)
        no_traceback(made.stdout, made.stderr)
        assert made.returncode == 1, made.stdout + made.stderr
        errors = [line for line in made.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "is a symlink" in errors[0], made.stderr
        assert snapshot(tmp_path, skip=(home, other)) == outside
    finally:
        down = module_cloud.run_elsewhere("teardown", "--lab", "qlock-1", home=home)
    assert down.returncode == 0, down.stdout + down.stderr
    assert module_cloud.inventory("qlock-1") == {}

    made = module_cloud.run_elsewhere("setup", "--lab", "qlock-2", home=other)
    no_traceback(made.stdout, made.stderr)
    assert made.returncode == 1, made.stdout + made.stderr
    assert "is a symlink" in made.stderr, made.stderr
    assert list(elsewhere.iterdir()) == []
    assert snapshot(tmp_path, skip=(home, other)) == outside
    assert module_cloud.inventory("qlock-2") == {}


# --- folders 0700, files 0600 -------------------------------------------------------------
@pytest.mark.slow
def test_the_home_gdlab_makes_is_private_like_everything_in_it(
    module_cloud: Any, tmp_path: Path
):
    state_root = tmp_path / "xdg-state"
    home = state_root / "gdlab"  # platformdirs' user_state_dir with XDG_STATE_HOME
    try:
        made = module_cloud.run_elsewhere("setup", "--lab", "perm-1", home=tmp_path / "unused",
                                          GDLAB_HOME=None, XDG_STATE_HOME=str(state_root))
        assert made.returncode == 0, made.stdout + made.stderr
        modes = {str(path): stat.S_IMODE(path.lstat().st_mode)
                 for path in [home, *home.rglob("*")]}
        assert modes == {path: 0o700 if Path(path).is_dir() else 0o600 for path in modes}
    finally:
        module_cloud.run_elsewhere("teardown", "--lab", "perm-1", home=tmp_path / "unused",
                                   GDLAB_HOME=None, XDG_STATE_HOME=str(state_root))
    assert module_cloud.inventory("perm-1") == {}
