"""Setup and teardown orders derived from what steps declare: needs, outlives, typical
seconds; bad declarations refused when the plan is built."""

from __future__ import annotations

import pytest

from gdlab.lab import graph
from gdlab.lab.plan import PLAN, PRIORITY, STEPS, TEARDOWN_ORDER
from gdlab.lab.steps import Step
from gdlab.scenario import ScenarioError, list_scenarios, load


class Fake(Step):
    def __init__(self, key, needs=(), outlives=(), seconds=1.0):
        self.key, self.needs, self.outlives, self.typical_seconds = key, needs, outlives, seconds

    def create(self, ctx):
        raise AssertionError("never run")

    def delete(self, ctx, res):
        raise AssertionError("never run")


def position(groups):
    return {key: index for index, group in enumerate(groups) for key in group}


def test_the_lab_tears_down_dependents_before_what_they_need():
    where = position(TEARDOWN_ORDER)
    assert set(where) == set(STEPS)
    for step in PLAN:
        for need in step.needs:
            assert where[step.key] < where[need], (step.key, need)
        for earlier in step.outlives:
            assert where[earlier] < where[step.key], (earlier, step.key)


def test_what_the_lab_relies_on_at_teardown():
    where = position(TEARDOWN_ORDER)
    # the rule stops invoking the responder before anything else goes
    assert where["targets"] == 0
    # both instances terminate together, before any group they may sit in, and before the
    # internet gateway is detached (AWS refuses while they hold public addresses)
    assert where["instance-malicious"] == where["instance-compromised"]
    for key in ("sg-forensic", "sg-untracking", "sg-compromised", "igw", "subnet"):
        assert where["instance-compromised"] < where[key]
    assert TEARDOWN_ORDER[-1] == ("vpc",)


def test_setup_starts_the_longest_chain_first():
    order = sorted(PLAN, key=lambda s: -PRIORITY[s.key])
    first_ready = [s.key for s in order if not s.needs][:2]
    assert first_ready[0] == "vpc"  # everything with a group hangs from it
    assert PRIORITY["log-group"] > PRIORITY["bucket"]  # the function's chain before the list's
    assert PRIORITY["responder-role"] > PRIORITY["instance-role"]


def test_setup_order_puts_needs_first_and_keeps_the_listed_order_otherwise():
    steps = [Fake("c", needs=("a",)), Fake("a"), Fake("b")]
    assert [s.key for s in graph.setup_order(steps)] == ["a", "c", "b"]


def test_priorities_are_the_longest_chain_of_seconds():
    steps = [Fake("a", seconds=1), Fake("b", needs=("a",), seconds=30), Fake("c", seconds=5),
             Fake("d", needs=("a", "c"), seconds=2)]
    assert graph.priorities(steps) == {"a": 31, "b": 30, "c": 7, "d": 2}


def test_teardown_groups_follow_needs_and_outlives():
    steps = [Fake("vpc"), Fake("group", needs=("vpc",), outlives=("instance",)),
             Fake("instance", needs=("vpc",))]
    assert graph.teardown_groups(steps) == [("instance",), ("group",), ("vpc",)]


@pytest.mark.parametrize("steps, message", [
    ([Fake("a"), Fake("a")], "declared twice: a"),
    ([Fake("a", needs=("ghost",))], "unknown step(s): ghost"),
    ([Fake("a", outlives=("ghost",))], "unknown step(s): ghost"),
    ([Fake("a", needs=("b",)), Fake("b", needs=("a",))], "cycle"),
])
def test_bad_declarations_are_refused(steps, message):
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        graph.validate(steps)


def test_a_teardown_cycle_through_outlives_is_refused():
    # a needs b (a goes first) yet outlives it (b goes first)
    steps = [Fake("a", needs=("b",), outlives=("b",)), Fake("b")]
    with pytest.raises(ScenarioError, match="cycle"):
        graph.teardown_groups(steps)


def test_a_step_reads_only_what_it_declared():
    from gdlab.lab.state import LabState
    from gdlab.lab.steps import LabContext
    from gdlab.scenario import load

    state = LabState(lab="gd-graph1", scenario="compromised-ec2", target="local",
                     region="us-east-1")
    state.record("vpc", "AWS::EC2::VPC", "vpc-1")
    state.record("eip", "AWS::EC2::EIP", "eipalloc-1", public_ip="203.0.113.9")
    lab = LabContext(cloud=None, state=state, scenario=load())
    subnet = lab.for_step(Fake("subnet", needs=("vpc",)))
    assert subnet.id_of("vpc") == "vpc-1"
    with pytest.raises(ScenarioError, match="step 'subnet' reads 'eip' without declaring it"):
        subnet.attr("eip", "public_ip")
    assert lab.attr("eip", "public_ip") == "203.0.113.9"  # the lab as a whole reads anything
    assert subnet.state is lab.state and subnet._memo is lab._memo



def test_the_preflight_counts_the_elastic_ips_the_plan_allocates():
    from gdlab.lab.plan import plan_for
    from gdlab.scenario import load

    assert plan_for(load()).elastic_ips == 1
    assert graph and STEPS["eip"].elastic_ips == 1


def test_the_responder_steps_need_what_their_spec_names():
    from gdlab.lab.steps.response import ISOLATION, Function, ResponderRole

    assert ResponderRole(ISOLATION).needs == ("sg-forensic", "sg-untracking")
    assert Function(ISOLATION).needs == ("responder-role", "sns-topic", "log-group",
                                         "sg-forensic", "sg-untracking")


@pytest.mark.parametrize("name", [s.name for s in list_scenarios()])
def test_every_scenario_plans_and_names_what_its_steps_name(name):
    from gdlab.lab.plan import plan_for

    scenario = load(name)
    plan = plan_for(scenario)
    where = position(plan.teardown)
    assert set(where) == set(plan.by_key)
    for step in plan.steps:
        for need in step.needs:
            assert need in plan.by_key, (name, step.key, need)
            assert where[step.key] < where[need], (step.key, need)
    # Every name a step looks up in [names] is there (SecurityGroup falls back to its own).
    for step in plan.steps:
        key = getattr(step, "role_key", "")
        assert not key or key in scenario.names, (name, step.key, key)
