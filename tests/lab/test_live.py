"""The same setup and teardown against a real AWS account. Skipped unless GDLAB_LIVE_AWS=1
(with credentials and a region in the environment); it creates billable resources for a few
minutes and removes them."""

import json
import os

import pytest

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("GDLAB_LIVE_AWS") != "1", reason="set GDLAB_LIVE_AWS=1 to use a real account"
    ),
]


@pytest.fixture
def live_env(monkeypatch):
    # tests/conftest.py fakes credentials for every test; a live run needs the real ones back.
    real = {k: v for k, v in _REAL_ENV.items() if v}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in real.items():
        monkeypatch.setenv(name, value)
    return real


# Captured at import, before the autouse fixture replaces them with fakes.
_REAL_ENV = {
    name: os.environ.get(name)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_REGION", "AWS_DEFAULT_REGION")
}


def test_live_setup_then_teardown_leaves_nothing(run_cli, live_env):
    code, out, err = run_cli("--target", "aws", "setup", "--lab", "gd-live01", "--yes", "--json")
    try:
        assert code == 0, err
        state = json.loads(out)
        assert state["phase"] == "ready"
        live = {r["key"] for r in state["resources"] if r["status"] == "created"}
        assert {"vpc", "instance-compromised", "threat-intel-set", "function", "rule"} <= live
    finally:
        code, out, err = run_cli("--target", "aws", "teardown", "--lab", "gd-live01", "--yes",
                                 "--json")
    assert code == 0, err
    code, out, err = run_cli("--target", "aws", "teardown", "--lab", "gd-live01", "--yes",
                             "--dry-run", "--json")
    assert code == 0, err
    assert [a for a in json.loads(out)["actions"] if a["status"] == "would-delete"] == []
