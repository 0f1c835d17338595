"""A lost lab's scenario comes from the gdlab:scenario tag its resources carry."""

from __future__ import annotations

import pytest

from gdlab.lab import discovery
from gdlab.scenario import DEFAULT_SCENARIO, ScenarioError


def vpc(cloud, lab: str, scenario: str | None) -> None:
    tags = [{"Key": "gdlab:lab", "Value": lab}]
    if scenario:
        tags.append({"Key": "gdlab:scenario", "Value": scenario})
    cloud.client("ec2").create_vpc(CidrBlock="10.9.0.0/24", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": tags}])


def test_the_scenario_is_read_from_the_labs_tags(cloud):
    vpc(cloud, "gd-tag1", "credential-exfiltration")
    vpc(cloud, "gd-tag2", "compromised-ec2")
    assert discovery.scenario_of(cloud, "gd-tag1") == "credential-exfiltration"
    assert discovery.scenario_of(cloud, "gd-tag2") == "compromised-ec2"


def test_the_detector_says_when_nothing_in_ec2_does(cloud):
    cloud.client("guardduty").create_detector(Enable=True, Tags={
        "gdlab:lab": "gd-tag3", "gdlab:scenario": "credential-exfiltration"})
    assert discovery.scenario_of(cloud, "gd-tag3") == "credential-exfiltration"


def test_a_lab_with_no_scenario_tag_is_the_default_scenarios(cloud):
    vpc(cloud, "gd-tag4", None)
    assert discovery.scenario_of(cloud, "gd-tag4") == DEFAULT_SCENARIO
    assert discovery.scenario_of(cloud, "gd-none1") == DEFAULT_SCENARIO


def test_two_scenarios_for_one_lab_are_refused(cloud):
    vpc(cloud, "gd-tag5", "compromised-ec2")
    vpc(cloud, "gd-tag5", "credential-exfiltration")
    with pytest.raises(ScenarioError, match="several scenarios"):
        discovery.scenario_of(cloud, "gd-tag5")
