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


def test_the_lab_comes_from_the_scenario_folder():
    from gdlab.lab.plan import plan_for

    scenario = load("compromised-ec2")
    assert scenario.finding_types == ("UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",)
    plan = plan_for(scenario)
    assert [s.key for s in plan.steps] == [s.key for s in scenario.module().steps()]
    assert plan_for(scenario) is plan  # built once: the same step objects everywhere


@pytest.mark.parametrize("source, message", [
    (None, "scenario file missing: .*scenario.py"),
    ("raise RuntimeError('broken on purpose')", "failed to load: RuntimeError: broken"),
    ("STEPS = []", "has no steps\\(\\) function"),
])
def test_a_broken_scenario_module_is_one_clear_error(scenario_copy, source, message):
    module = scenario_copy / "scenario.py"
    if source is None:
        module.unlink()
    else:
        module.write_text(source + "\n")
    with pytest.raises(ScenarioError, match=message):
        load("compromised-ec2").module()


def test_steps_with_an_unknown_need_are_refused_when_the_plan_is_built(scenario_copy):
    from gdlab.lab import plan

    module = scenario_copy / "scenario.py"
    module.write_text(module.read_text() + (
        "\n\n_steps = steps\n\n\ndef steps():\n    made = _steps()\n"
        "    made[0].needs = ('nowhere',)\n    return made\n"))
    with pytest.raises(ScenarioError, match="unknown step\\(s\\): nowhere"):
        plan.build(load("compromised-ec2").module().steps())


def test_finding_types_must_start_with_finding_type(scenario_copy):
    toml = scenario_copy / "scenario.toml"
    toml.write_text(toml.read_text().replace(
        "severity = 5.0", 'severity = 5.0\nfinding_types = ["Recon:EC2/Portscan"]'))
    with pytest.raises(ScenarioError, match="finding_types must be a list"):
        load("compromised-ec2")


def test_a_scenario_without_behaviour_or_user_data_loads():
    s = load("credential-exfiltration")
    assert s.behaviour is None
    assert s.render_user_data("gd-1a2b3c", "") is None
    assert s.finding_types == (
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",)
    assert (s.flow_logs_local_seconds, s.flow_logs_aws_seconds) == (30, 900)
    # The workshop's rule name, with the lab id: 64 characters, AWS's limit, for a generated
    # id; a longer --lab is refused in one line before anything is made.
    assert s.name_for("rule", "gd-1a2b3c") == \
        "GuardDuty-Event-IAMUser-InstanceCredentialExfiltration-gd-1a2b3c"
    s.check_names("gd-1a2b3c")
    with pytest.raises(UsageError, match="at most 9 characters"):
        s.check_names("my-long-lab")


def test_a_name_a_step_needs_but_the_toml_lacks_is_named():
    s = load("credential-exfiltration")
    with pytest.raises(ScenarioError, match="names.forensic_group"):
        s.name_for("forensic_group", "gd-1a2b3c")
