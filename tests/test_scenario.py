import shutil

import pytest

from gdlab import scenario as scenario_module
from gdlab.errors import UsageError
from gdlab.scenario import ScenarioError, list_scenarios, load


def test_compromised_ec2_loads():
    s = load("compromised-ec2")
    assert s.finding_type == "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
    assert s.severity == 5.0
    assert s.behaviour.count == 6 and s.behaviour.every_seconds == 60
    assert s.name_for("rule", "gd-abc123") == "GuardDuty-Event-EC2-MaliciousIPCaller-gd-abc123"
    assert s.names["compromised_instance"] == "GuardDuty-Example: Compromised Instance: Scenario 1"
    assert s.finding_type in s.event_pattern["detail"]["type"]


def test_derived_names_fit_aws_limits():
    s = load()
    lab = "a" * 12  # the longest lab id allowed
    assert len(s.name_for("function", lab)) <= 64
    assert len(s.name_for("rule", lab)) <= 64
    assert len(s.name_for("topic", lab)) <= 256
    assert len(f"gdlab-{lab}-responder") <= 64
    # bucket: gdlab-<lab>-<account>-<region>
    assert len(f"gdlab-{lab}-123456789012-ap-southeast-1") <= 63


def test_user_data_renders_behaviour():
    text = load().render_user_data("gd-abc123", "3.4.5.6")
    assert "ExecStart=/usr/bin/ping -c 6 -i 10 3.4.5.6" in text
    assert "OnUnitActiveSec=60" in text
    assert "OnBootSec=300" in text
    assert "{" not in text.replace("${", "")


def test_list_scenarios():
    names = [s.name for s in list_scenarios()]
    assert "compromised-ec2" in names


def test_unknown_scenario_is_usage_error():
    with pytest.raises(UsageError) as err:
        load("nope")
    assert "compromised-ec2" in str(err.value)


@pytest.fixture
def scenario_copy(tmp_path, monkeypatch):
    src = scenario_module.scenarios_root() / "compromised-ec2"
    dst = tmp_path / "compromised-ec2"
    shutil.copytree(src, dst)
    monkeypatch.setattr(scenario_module, "scenarios_root", lambda: tmp_path)
    load.cache_clear()
    yield dst
    load.cache_clear()


def test_missing_key_is_clear(scenario_copy):
    toml = scenario_copy / "scenario.toml"
    toml.write_text(toml.read_text().replace('finding_type = "', 'finding_kind = "'))
    with pytest.raises(ScenarioError, match="missing 'finding_type'"):
        load("compromised-ec2")


def test_pattern_must_match_finding_type(scenario_copy):
    (scenario_copy / "event-pattern.json").write_text(
        '{"source": ["aws.guardduty"], "detail": {"type": ["Recon:EC2/Portscan"]}}'
    )
    with pytest.raises(ScenarioError, match="would never fire"):
        load("compromised-ec2")


def test_bad_toml_is_clear(scenario_copy):
    (scenario_copy / "scenario.toml").write_text("name = ")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load("compromised-ec2")
