import json

import pytest
from botocore.exceptions import ClientError

from gdlab.errors import PreflightError, StepFailed, UsageError
from gdlab.lab import discovery, lifecycle, locks
from gdlab.lab.plan import PLAN, STEPS
from gdlab.lab.steps import LAB_TAG, SCENARIO_TAG

MUTATING = ("Create", "Put", "Run", "Allocate", "Associate", "Attach", "Authorize", "Revoke",
            "Add", "Enable", "Subscribe", "Modify")


def test_setup_creates_every_resource_tagged(new_lab, cloud, leftovers):
    ctx = new_lab(email="soc@example.com")
    lifecycle.setup(ctx)
    state = ctx.state
    assert state.phase == "ready"
    live = {r.key for r in state.resources if r.status == "created"}
    assert live == set(STEPS)
    ec2 = cloud.client("ec2")
    vpc = ec2.describe_vpcs(VpcIds=[state.id_of("vpc")])["Vpcs"][0]
    tags = {t["Key"]: t["Value"] for t in vpc["Tags"]}
    assert tags[LAB_TAG] == "gd-test01" and tags[SCENARIO_TAG] == "compromised-ec2"
    assert not vpc.get("IsDefault")
    compromised = ec2.describe_instances(InstanceIds=[state.id_of("instance-compromised")])[
        "Reservations"
    ][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in compromised["Tags"]}
    assert tags["Name"] == "GuardDuty-Example: Compromised Instance: Scenario 1"
    assert tags[LAB_TAG] == "gd-test01"
    assert compromised["MetadataOptions"]["HttpTokens"] == "required"
    assert compromised["IamInstanceProfile"]["Arn"].endswith("/gdlab-gd-test01-instance")
    assert compromised["State"]["Name"] == "running"
    eni = compromised["NetworkInterfaces"][0]
    eni_tags = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])[
        "NetworkInterfaces"
    ][0].get("TagSet", [])
    assert {t["Key"]: t["Value"] for t in eni_tags}.get(LAB_TAG) == "gd-test01"
    # the EIP is public and on the malicious instance
    address = ec2.describe_addresses(AllocationIds=[state.id_of("eip")])["Addresses"][0]
    assert address["InstanceId"] == state.id_of("instance-malicious")
    assert {t["Key"]: t["Value"] for t in address["Tags"]}[LAB_TAG] == "gd-test01"
    # threat list: private, encrypted bucket with the EIP; set activated
    s3 = cloud.client("s3")
    bucket = state.id_of("bucket")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    body = s3.get_object(Bucket=bucket, Key="threat-list.txt")["Body"].read().decode()
    assert address["PublicIp"] in body.splitlines()
    gd = cloud.client("guardduty")
    tis = gd.get_threat_intel_set(
        DetectorId=state.id_of("detector"), ThreatIntelSetId=state.id_of("threat-intel-set")
    )
    assert tis["Name"] == "Example-Threat-List-gd-test01" and tis["Format"] == "TXT"
    assert tis["Status"] in ("ACTIVATING", "ACTIVE")
    # no SSH anywhere; the forensic group has zero rules
    for group in ec2.describe_security_groups(Filters=ctx.lab_filter())["SecurityGroups"]:
        for perm in group["IpPermissions"]:
            assert perm.get("IpProtocol") != "tcp" or not (
                perm.get("FromPort", 0) <= 22 <= perm.get("ToPort", 65535)
            ) or group["GroupId"] == state.id_of("sg-untracking")
    forensic = ec2.describe_security_groups(GroupIds=[state.id_of("sg-forensic")])[
        "SecurityGroups"
    ][0]
    assert forensic["IpPermissions"] == [] and forensic["IpPermissionsEgress"] == []
    # the response side
    rule = cloud.client("events").describe_rule(Name=state.id_of("rule"))
    assert json.loads(rule["EventPattern"])["detail"]["type"] == [
        "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
    ]
    targets = cloud.client("events").list_targets_by_rule(Rule=state.id_of("rule"))["Targets"]
    assert {t["Id"] for t in targets} == {"gdlab-email", "gdlab-responder"}
    sns_target = next(t for t in targets if t["Id"] == "gdlab-email")
    assert "InputTemplate" in sns_target["InputTransformer"]
    fn = cloud.client("lambda").get_function(FunctionName=state.id_of("function"))
    assert "VpcConfig" not in fn["Configuration"] or not fn["Configuration"]["VpcConfig"].get(
        "SubnetIds"
    )
    env = fn["Configuration"]["Environment"]["Variables"]
    assert env["FORENSIC_GROUP_ID"] == state.id_of("sg-forensic")
    policy = json.loads(
        cloud.client("lambda").get_policy(FunctionName=state.id_of("function"))["Policy"]
    )
    condition = policy["Statement"][0]["Condition"]
    assert condition["ArnLike"]["AWS:SourceArn"] == rule["Arn"]
    subs = cloud.client("sns").list_subscriptions_by_topic(TopicArn=state.id_of("sns-topic"))
    assert [s["Endpoint"] for s in subs["Subscriptions"]] == ["soc@example.com"]
    retention = cloud.client("logs").describe_log_groups(
        logGroupNamePrefix=state.id_of("log-group")
    )["logGroups"][0]
    assert retention["retentionInDays"] == 7


def test_teardown_leaves_nothing_and_is_idempotent(new_lab, store, leftovers):
    before = leftovers()
    ctx = new_lab()
    lifecycle.setup(ctx)
    assert leftovers("gd-test01")
    lifecycle.teardown(ctx, store)
    assert leftovers() == before
    assert ctx.state.phase == "torn-down"
    assert lifecycle.teardown(ctx, store) == []


def test_dry_run_deletes_nothing(new_lab, store, leftovers):
    ctx = new_lab()
    lifecycle.setup(ctx)
    present = leftovers()
    events = lifecycle.teardown(ctx, store, dry_run=True)
    assert {e.status for e in events} == {"would-delete"}
    assert {e.key for e in events} == set(STEPS) - {"sns-subscription"}
    assert leftovers() == present


def test_setup_resumes_and_creates_only_what_is_missing(new_lab, cloud):
    ctx = new_lab()
    lifecycle.setup(ctx)
    calls_before = cloud.api_call_count
    events = []
    lifecycle.setup(ctx, progress=events.append)
    assert {e.status for e in events} == {"exists"}
    assert cloud.api_call_count == calls_before  # nothing asked of AWS


def test_adopted_detector_and_hub_survive_teardown(new_lab, cloud, store):
    gd = cloud.client("guardduty")
    detector = gd.create_detector(Enable=True)["DetectorId"]
    cloud.client("securityhub").enable_security_hub(EnableDefaultStandards=False)
    ctx = new_lab()
    lifecycle.setup(ctx)
    assert ctx.state.live("detector").ownership == "adopted"
    assert ctx.state.live("detector").id == detector
    assert ctx.state.live("securityhub").ownership == "adopted"
    lifecycle.teardown(ctx, store)
    assert gd.list_detectors()["DetectorIds"] == [detector]
    assert gd.list_threat_intel_sets(DetectorId=detector)["ThreatIntelSetIds"] == []
    cloud.client("securityhub").describe_hub()  # still enabled


def test_created_detector_and_hub_are_removed(new_lab, cloud, store, leftovers):
    ctx = new_lab()
    lifecycle.setup(ctx)
    assert ctx.state.live("detector").ownership == "created"
    lifecycle.teardown(ctx, store)
    assert "detector" not in leftovers() and "securityhub" not in leftovers()


def test_suspended_detector_is_a_clear_error(new_lab, cloud):
    cloud.client("guardduty").create_detector(Enable=False)
    with pytest.raises(PreflightError, match="suspended"):
        lifecycle.setup(new_lab())


def test_six_threat_lists_already_is_a_clear_error(new_lab, cloud, store, leftovers):
    gd = cloud.client("guardduty")
    detector = gd.create_detector(Enable=True)["DetectorId"]
    for i in range(6):
        gd.create_threat_intel_set(DetectorId=detector, Name=f"other-{i}", Format="TXT",
                                   Location=f"s3://elsewhere/list-{i}.txt", Activate=False)
    ctx = new_lab()
    with pytest.raises(PreflightError, match="6 threat lists"):
        lifecycle.setup(ctx)
    lifecycle.teardown(ctx, store)
    assert len(gd.list_threat_intel_sets(DetectorId=detector)["ThreatIntelSetIds"]) == 6
    assert set(leftovers()) == {"detector", "threat-intel-set"}


def test_lost_state_file_teardown_by_tag_sweep(new_lab, cloud, store, scenario, leftovers):
    before = leftovers()
    ctx = new_lab("gd-lost1")
    lifecycle.setup(ctx)
    store.path("gd-lost1").unlink()
    state = discovery.rebuild_lost_lab(store, cloud, scenario, "gd-lost1")
    lifecycle.teardown(lifecycle.context(cloud, state, scenario), store)
    assert leftovers() == before


def test_discover_labs_finds_labs_by_tag(new_lab, cloud, scenario):
    lifecycle.setup(new_lab("gd-seen1"))
    assert discovery.discover_labs(cloud, scenario) == {"gd-seen1"}


def test_resume_refuses_other_target_or_torn_down(new_lab, cloud, store, scenario):
    ctx = new_lab()
    lifecycle.setup(ctx)
    lifecycle.teardown(ctx, store)
    with pytest.raises(UsageError, match="torn down"):
        lifecycle.open_lab(store, cloud, scenario, lab="gd-test01")


def _calls_per_step(new_lab, cloud) -> dict[str, int]:
    """How many mutating calls each step makes, measured on a clean run."""
    counts: dict[str, int] = {}
    current = {"step": None}

    def count(model, **_):
        if current["step"] and model.name.startswith(MUTATING):
            counts[current["step"]] = counts.get(current["step"], 0) + 1

    ctx = new_lab("gd-count1")
    for service in ("ec2", "iam", "s3", "guardduty", "securityhub", "sns", "lambda", "logs",
                    "events"):
        cloud.client(service).meta.events.register("before-call", count)
    for step in PLAN:
        current["step"] = step.key
        if step.applies(ctx):
            lifecycle._create(ctx, step)
    for service in ("ec2", "iam", "s3", "guardduty", "securityhub", "sns", "lambda", "logs",
                    "events"):
        cloud.client(service).meta.events.unregister("before-call", count)
    return counts


def _inject(cloud, step_key: str, at: int):
    """Make the `at`-th mutating call made while `step_key` creates or configures fail like
    AWS would."""
    seen = {"n": 0, "active": False}

    def hook(model, **_):
        if seen["active"] and model.name.startswith(MUTATING):
            seen["n"] += 1
            if seen["n"] == at:
                raise ClientError(
                    {"Error": {"Code": "InternalFailure", "Message": "injected"}}, model.name
                )

    for service in ("ec2", "iam", "s3", "guardduty", "securityhub", "sns", "lambda", "logs",
                    "events"):
        cloud.client(service).meta.events.register("before-call", hook)
    step = STEPS[step_key]

    def armed(method):
        def call(*args):
            seen["active"] = True
            try:
                return method(*args)
            finally:
                seen["active"] = False

        return call

    return seen, armed(step.create), armed(step.configure)


@pytest.mark.slow
def test_failure_at_every_step_leaks_nothing_and_resumes(
    new_lab, cloud, store, leftovers, monkeypatch
):
    counts = _calls_per_step(new_lab, cloud)
    lifecycle.teardown(lifecycle.context(cloud, store.load("gd-count1"), new_lab().scenario),
                       store)
    baseline = leftovers()
    cases = [(key, 1) for key in counts] + [(k, n) for k, n in counts.items() if n > 1]
    assert len(cases) >= len(STEPS) - 1
    assert {"flow-log-group", "flow-log-role", "flow-log"} <= set(counts)
    for index, (key, at) in enumerate(cases):
        lab = f"gd-f{index:03d}"
        seen, create, configure = _inject(cloud, key, at)
        monkeypatch.setattr(STEPS[key], "create", create)
        monkeypatch.setattr(STEPS[key], "configure", configure)
        ctx = new_lab(lab, email="soc@example.com")
        with pytest.raises(StepFailed, match="injected"):
            lifecycle.setup(ctx, workers=1)  # one step at a time: the n-th call is that step's
        monkeypatch.undo()
        seen["active"] = False
        seen["n"] = -10**6  # disarm
        if index % 2:
            # resume completes the lab, then teardown removes it all
            lifecycle.setup(ctx)
            assert ctx.state.phase == "ready", key
            live = [r for r in ctx.state.resources if r.status == "created"]
            assert all(r.attrs.get("configured") for r in live), key
        lifecycle.teardown(ctx, store)
        assert leftovers() == baseline, f"leak after failing {key} call {at}"


def test_a_shared_detector_stays_while_another_lab_uses_it(new_lab, cloud, store, leftovers):
    first = new_lab("gd-first")
    lifecycle.setup(first)
    second = new_lab("gd-second")
    lifecycle.setup(second)
    assert second.state.live("detector").ownership == "shared"
    assert second.state.live("securityhub").ownership == "shared"
    events = lifecycle.teardown(first, store)
    kept = {e.key: e.detail for e in events if e.status == "kept"}
    assert kept == {"detector": "still used by lab gd-second",
                    "securityhub": "still used by lab gd-second"}
    assert cloud.client("guardduty").list_detectors()["DetectorIds"]  # still in use
    assert store.load("gd-first").phase == "torn-down"
    lifecycle.teardown(second, store)
    assert leftovers() == {}  # the last lab using them removed them


def test_a_lab_set_up_later_shares_what_a_torn_down_creator_left_in_use(
    new_lab, cloud, store, leftovers
):
    """a makes the detector, b shares it, a goes (b keeps it), c comes: c shares it with b,
    and whichever of b and c goes last removes it."""
    a, b = new_lab("gd-sh-a"), new_lab("gd-sh-b")
    lifecycle.setup(a)
    lifecycle.setup(b)
    lifecycle.teardown(a, store)
    c = new_lab("gd-sh-c")
    lifecycle.setup(c)
    assert c.state.live("detector").ownership == "shared"
    lifecycle.teardown(c, store)
    assert cloud.client("guardduty").list_detectors()["DetectorIds"]  # b still uses it
    lifecycle.teardown(b, store)
    assert leftovers() == {}


def test_a_busy_lab_does_not_stop_a_teardown_from_leaving_it_the_detector(
    new_lab, cloud, store, leftovers, tmp_path
):
    """A `gdlab run` in another terminal holds its lab for minutes. Teardown used to need
    that lock to hand the detector over, failed, and the detector leaked."""
    import subprocess
    import sys

    a, b = new_lab("gd-busy-a"), new_lab("gd-busy-b")
    lifecycle.setup(a)
    lifecycle.setup(b)
    while locks.holds(store.lock_path("gd-busy-b")):  # opening it took b's lock for us
        store.release("gd-busy-b")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); sys.stdin.read()", str(store.lock_path("gd-busy-b"))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lifecycle.teardown(a, store)  # no LabBusy
    finally:
        holder.communicate("")
    assert store.load("gd-busy-a").phase == "torn-down"
    lifecycle.teardown(lifecycle.context(cloud, store.load("gd-busy-b"), b.scenario), store)
    assert leftovers() == {}


def test_labs_torn_down_side_by_side_in_one_process_leave_nothing(
    new_lab, cloud, store, leftovers
):
    """Threads of one process share its file locks: the thread lock keeps their looks and
    deletes apart, so whichever ends last removes the detector and hub."""
    import threading

    labs = [new_lab(f"gd-par{n}") for n in range(3)]
    for ctx in labs:
        lifecycle.setup(ctx)
    errors: list[BaseException] = []

    def down(ctx):
        try:
            lifecycle.teardown(ctx, store)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=down, args=(ctx,)) for ctx in labs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert leftovers() == {}


def test_a_detector_that_was_there_before_gdlab_is_never_shared(new_lab, cloud, store):
    detector = cloud.client("guardduty").create_detector(Enable=True)["DetectorId"]
    a, b = new_lab("gd-pre-a"), new_lab("gd-pre-b")
    lifecycle.setup(a)
    lifecycle.setup(b)
    assert b.state.live("detector").ownership == "adopted"
    lifecycle.teardown(a, store)
    lifecycle.teardown(b, store)
    assert cloud.client("guardduty").list_detectors()["DetectorIds"] == [detector]


# --- nothing leaks, whatever happens ------------------------------------------------------
def test_teardown_deletes_duplicates_the_journal_never_saw(new_lab, cloud, store, leftovers):
    """A race or a crash between a create and its journal entry can leave a second copy:
    teardown sweeps every kind of resource by tag, not only what the journal lacks."""
    ctx = new_lab("gd-dup1")
    lifecycle.setup(ctx)
    ec2 = cloud.client("ec2")
    spec = ctx.tag_specs("vpc", name="duplicate")
    ec2.create_vpc(CidrBlock="10.1.0.0/24", TagSpecifications=spec)
    ec2.allocate_address(Domain="vpc", TagSpecifications=ctx.tag_specs("elastic-ip"))
    lifecycle.teardown(ctx, store)
    assert leftovers() == {}


def test_teardown_finishes_after_instances_were_terminated_behind_its_back(
    new_lab, cloud, store, leftovers
):
    """kill -9 after TerminateInstances and before the journal said so: the next teardown
    finds them terminated (or gone) and finishes."""
    ctx = new_lab("gd-kill1")
    lifecycle.setup(ctx)
    ids = [ctx.id_of("instance-compromised"), ctx.id_of("instance-malicious")]
    cloud.client("ec2").terminate_instances(InstanceIds=ids)
    lifecycle.teardown(ctx, store)
    assert leftovers() == {}
    assert store.load("gd-kill1").phase == "torn-down"


def test_teardown_goes_on_when_the_journal_cannot_be_written(
    new_lab, cloud, store, leftovers, monkeypatch
):
    import errno

    ctx = new_lab("gd-full1")
    lifecycle.setup(ctx)

    def disk_full(_state):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "save", disk_full)
    with pytest.raises(StepFailed) as err:
        lifecycle.teardown(ctx, store)
    assert leftovers() == {}
    text = str(err.value)
    assert "every resource was deleted" in text and "no space left on device" in text
    assert "gdlab teardown --lab gd-full1" in text
    monkeypatch.undo()
    lifecycle.teardown(lifecycle.context(cloud, store.load("gd-full1"), ctx.scenario), store)
    assert store.load("gd-full1").phase == "torn-down"


def test_the_last_lab_removes_the_detector_whatever_copy_it_loaded(
    new_lab, cloud, store, scenario, leftovers
):
    """teardown --all loads every lab first: b's copy, loaded before a went, still decides
    right, because who else uses the detector is read from the other labs as they are now."""
    a = new_lab("gd-own1")
    lifecycle.setup(a)
    b = new_lab("gd-use1")
    lifecycle.setup(b)
    stale_b = store.load("gd-use1")
    lifecycle.teardown(a, store)
    lifecycle.teardown(lifecycle.context(cloud, stale_b, scenario), store)
    assert leftovers() == {}


def test_a_dry_run_writes_nothing(new_lab, cloud, store, scenario):
    ctx = new_lab("gd-dry1")
    lifecycle.setup(ctx)
    before = store.path("gd-dry1").read_bytes()
    events = lifecycle.teardown(ctx, store, dry_run=True)
    assert events and all(e.status in ("would-delete", "kept") for e in events)
    assert store.path("gd-dry1").read_bytes() == before
    store.path("gd-dry1").unlink()
    rebuilt = discovery.rebuild_lost_lab(store, cloud, scenario, "gd-dry1", dry_run=True)
    assert rebuilt.lab == "gd-dry1" and not store.exists("gd-dry1")
    lifecycle.teardown(lifecycle.context(cloud, rebuilt, scenario), store, dry_run=True)
    assert not store.exists("gd-dry1")


def test_a_damaged_state_file_is_rebuilt_from_the_sweep_and_kept_aside(
    new_lab, cloud, store, scenario, leftovers
):
    lifecycle.setup(new_lab("gd-dmg1"))
    store.path("gd-dmg1").write_text('{"lab": "../../etc/victim"}')
    state = discovery.rebuild_lost_lab(store, cloud, scenario, "gd-dmg1")
    kept = list(store.dir.glob("gd-dmg1.json.damaged-*"))
    assert len(kept) == 1 and "victim" in kept[0].read_text()
    lifecycle.teardown(lifecycle.context(cloud, state, scenario), store)
    assert leftovers() == {}


def test_discovery_finds_a_lab_from_any_single_leftover(new_lab, cloud, scenario):
    ctx = new_lab("gd-left1")
    name = f"/aws/lambda/{ctx.name('function')}"
    cloud.client("logs").create_log_group(logGroupName=name)
    cloud.client("sns").create_topic(Name=ctx.name("topic"))
    assert discovery.discover_labs(cloud, scenario) == {"gd-left1"}
