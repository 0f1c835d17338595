"""Finding labs in the cloud without their state files: which lab ids have resources there,
and a state rebuilt for one of them from a sweep by tag and exact name."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gdlab.cloud import Cloud
from gdlab.errors import LabNotFound
from gdlab.lab.lifecycle import context, teardown_plan
from gdlab.lab.state import LAB_ID, LabState, LabStore
from gdlab.lab.steps import LAB_TAG, SCENARIO_TAG
from gdlab.scenario import DEFAULT_SCENARIO, Scenario, ScenarioError

_LAB = r"(?P<lab>[a-z0-9][a-z0-9-]{1,10}[a-z0-9])"


def _tagged(resources: Iterable[dict[str, Any]], tags_key: str = "Tags") -> set[str]:
    return {
        t["Value"] for r in resources for t in r.get(tags_key) or [] if t.get("Key") == LAB_TAG
    }


def _pattern(template: str) -> re.Pattern[str]:
    """A name template such as 'GuardDuty-Example-{lab}' as a regex capturing the lab."""
    before, _, after = template.partition("{lab}")
    return re.compile(re.escape(before) + _LAB + re.escape(after))


def _matching(names: Iterable[str], pattern: re.Pattern[str]) -> set[str]:
    return {m["lab"] for name in names if (m := pattern.fullmatch(name))}


def discover_labs(cloud: Cloud, scenario: Scenario) -> set[str]:
    """Lab ids that have resources in this account and region, found by tag, IAM path and
    the scenario's names, so `teardown --all` also removes labs whose state file is gone and
    whatever a lab left of any kind (a log group alone, a topic alone)."""
    from gdlab.lab.steps.compute import IAM_PATH
    from gdlab.lab.steps.flowlogs import group_name_for

    labs: set[str] = set()
    ec2 = cloud.client("ec2")
    tagged = [{"Name": "tag-key", "Values": [LAB_TAG]}]
    labs |= _tagged(ec2.describe_vpcs(Filters=tagged)["Vpcs"])
    labs |= _tagged(ec2.describe_security_groups(Filters=tagged)["SecurityGroups"])
    labs |= _tagged(ec2.describe_addresses(Filters=tagged)["Addresses"])
    for reservation in ec2.describe_instances(Filters=tagged)["Reservations"]:
        alive = [i for i in reservation["Instances"] if i["State"]["Name"] != "terminated"]
        labs |= _tagged(alive)
    for page in cloud.client("iam").get_paginator("list_roles").paginate(PathPrefix=IAM_PATH):
        for role in page["Roles"]:
            name = role["RoleName"]
            if name.startswith("gdlab-") and name.count("-") >= 2:
                labs.add(name[len("gdlab-") : name.rindex("-")])
    function = _pattern(scenario.names["function"])
    for page in cloud.client("lambda").get_paginator("list_functions").paginate():
        labs |= _matching((f["FunctionName"] for f in page["Functions"]), function)
    log_groups = _pattern("/aws/lambda/" + scenario.names["function"])
    for page in cloud.client("logs").get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix="/aws/lambda/" + scenario.names["function"].partition("{lab}")[0]
    ):
        labs |= _matching((g["logGroupName"] for g in page["logGroups"]), log_groups)
    flow_log_groups = _pattern(group_name_for("{lab}"))
    for page in cloud.client("logs").get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=group_name_for("{lab}").partition("{lab}")[0]
    ):
        labs |= _matching((g["logGroupName"] for g in page["logGroups"]), flow_log_groups)
    for page in ec2.get_paginator("describe_flow_logs").paginate(Filters=tagged):
        labs |= _tagged(page["FlowLogs"])
    topic = _pattern(scenario.names["topic"])
    for page in cloud.client("sns").get_paginator("list_topics").paginate():
        labs |= _matching((t["TopicArn"].rsplit(":", 1)[-1] for t in page["Topics"]), topic)
    rule = _pattern(scenario.names["rule"])
    rules = cloud.client("events").list_rules(
        NamePrefix=scenario.names["rule"].partition("{lab}")[0]
    )["Rules"]
    labs |= _matching((r["Name"] for r in rules), rule)
    bucket = re.compile(rf"gdlab-{_LAB}-{re.escape(cloud.account)}-{re.escape(cloud.region)}")
    labs |= _matching((b["Name"] for b in cloud.client("s3").list_buckets()["Buckets"]), bucket)
    guardduty = cloud.client("guardduty")
    for detector_id in guardduty.list_detectors()["DetectorIds"]:
        tags = guardduty.get_detector(DetectorId=detector_id).get("Tags", {})
        if tags.get(LAB_TAG):
            labs.add(tags[LAB_TAG])
    return {lab for lab in labs if LAB_ID.fullmatch(lab) and "--" not in lab}


def scenario_of(cloud: Cloud, lab: str) -> str:
    """The scenario a lab was set up with, read from the gdlab:scenario tag its resources
    carry (its VPC, groups, addresses, instances, or detector); the default scenario when
    none is left that says (a lab of an older gdlab, or one with nothing tagged left)."""
    ec2 = cloud.client("ec2")
    mine = [{"Name": f"tag:{LAB_TAG}", "Values": [lab]}]
    tagged: list[dict[str, Any]] = []
    tagged += ec2.describe_vpcs(Filters=mine)["Vpcs"]
    tagged += ec2.describe_security_groups(Filters=mine)["SecurityGroups"]
    tagged += ec2.describe_addresses(Filters=mine)["Addresses"]
    for reservation in ec2.describe_instances(Filters=mine)["Reservations"]:
        tagged += reservation["Instances"]
    found = {t["Value"] for r in tagged for t in r.get("Tags") or []
             if t.get("Key") == SCENARIO_TAG}
    if not found:
        guardduty = cloud.client("guardduty")
        for detector_id in guardduty.list_detectors()["DetectorIds"]:
            tags = guardduty.get_detector(DetectorId=detector_id).get("Tags", {})
            if tags.get(LAB_TAG) == lab and tags.get(SCENARIO_TAG):
                found.add(tags[SCENARIO_TAG])
    if len(found) > 1:
        raise ScenarioError(f"lab '{lab}' has resources tagged for several scenarios: "
                            f"{', '.join(sorted(found))}")
    return found.pop() if found else DEFAULT_SCENARIO


def rebuild_lost_lab(
    store: LabStore, cloud: Cloud, scenario: Scenario, lab: str, dry_run: bool = False
) -> LabState:
    """A state for a lab whose file is gone or damaged, if the cloud still holds any of its
    resources. A damaged file is kept beside it (renamed), never overwritten. A dry run
    builds the state in memory and writes nothing."""
    state = LabState(
        lab=lab,
        scenario=scenario.name,
        target=cloud.target,
        region=cloud.region,
        account=cloud.account,
        local_cloud=cloud.settings.local_cloud_id if cloud.is_local else None,
        endpoint=cloud.endpoint_url if cloud.target == "aws" else None,
    )
    ctx = context(cloud, state, scenario)
    if not any(teardown_plan(ctx)):
        raise LabNotFound(
            f"no lab '{lab}': no usable state file in {store.dir} and nothing tagged "
            f"gdlab:lab={lab} in {cloud.target} {cloud.region}",
            "gdlab labs lists known labs; check --target/--region",
        )
    if dry_run:
        return state
    note = "state rebuilt from a tag sweep (the state file was lost)"
    if store.exists(lab):
        aside = store.set_aside(lab)
        note = f"state rebuilt from a tag sweep (the damaged file is kept as {aside.name})"
    store.create(state)
    state.event(note)
    return state


def class_labs(cloud: Cloud, class_name: str) -> set[str]:
    """Lab ids in this account and region whose resources carry gdlab:class=`class_name`
    (its network, groups, addresses, instances, or the detector it made)."""
    from gdlab.lab.steps import CLASS_TAG

    ec2 = cloud.client("ec2")
    mine = [{"Name": f"tag:{CLASS_TAG}", "Values": [class_name]}]
    labs = _tagged(ec2.describe_vpcs(Filters=mine)["Vpcs"])
    labs |= _tagged(ec2.describe_security_groups(Filters=mine)["SecurityGroups"])
    labs |= _tagged(ec2.describe_addresses(Filters=mine)["Addresses"])
    for reservation in ec2.describe_instances(Filters=mine)["Reservations"]:
        labs |= _tagged(i for i in reservation["Instances"] if i["State"]["Name"] != "terminated")
    guardduty = cloud.client("guardduty")
    for detector_id in guardduty.list_detectors()["DetectorIds"]:
        tags = guardduty.get_detector(DetectorId=detector_id).get("Tags", {})
        if tags.get(CLASS_TAG) == class_name and tags.get(LAB_TAG):
            labs.add(tags[LAB_TAG])
    return {lab for lab in labs if LAB_ID.fullmatch(lab) and "--" not in lab}
