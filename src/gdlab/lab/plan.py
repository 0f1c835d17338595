"""A lab's plan: its scenario's steps (scenarios/<name>/scenario.py) with the setup and
teardown orders derived from what each step declares (lab/graph.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from gdlab.lab import graph
from gdlab.lab.steps import Step

if TYPE_CHECKING:
    from gdlab.scenario import Scenario


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    by_key: dict[str, Step]
    needs: dict[str, tuple[str, ...]]
    priority: dict[str, float]  # longest chain of typical seconds from each step
    teardown: list[tuple[str, ...]]  # groups deleted together, first group first

    @property
    def elastic_ips(self) -> int:
        """Elastic IPs a whole setup allocates (what the preflight checks the quota for)."""
        return sum(step.elastic_ips for step in self.steps)


def build(steps: list[Step]) -> Plan:
    graph.validate(steps)
    return Plan(steps=tuple(steps), by_key={s.key: s for s in steps},
                needs={s.key: s.needs for s in steps}, priority=graph.priorities(steps),
                teardown=graph.teardown_groups(steps))


@cache
def _plan_of(name: str) -> Plan:
    from gdlab.scenario import ScenarioError, load

    made = load(name).module().steps()
    if not isinstance(made, list) or not all(isinstance(s, Step) for s in made):
        raise ScenarioError(f"scenario {name}: steps() must return a list of Steps")
    return build(made)


def plan_for(scenario: Scenario) -> Plan:
    """The scenario's plan, built once per process (steps are shared, stateless objects)."""
    return _plan_of(scenario.name)


def __getattr__(name: str) -> Any:
    """PLAN, STEPS, NEEDS, PRIORITY, TEARDOWN_ORDER: the default scenario's plan."""
    views = {"PLAN": lambda p: list(p.steps), "STEPS": lambda p: p.by_key,
             "NEEDS": lambda p: p.needs, "PRIORITY": lambda p: p.priority,
             "TEARDOWN_ORDER": lambda p: p.teardown}
    if name not in views:
        raise AttributeError(name)
    from gdlab.scenario import DEFAULT_SCENARIO

    return views[name](_plan_of(DEFAULT_SCENARIO))
