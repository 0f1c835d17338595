"""Prove the incident: named checks, each passed or not, with the evidence it saw.

The verdict rule: every property of the incident (below) must be proven by at least one
check that passed, and no check may fail. An inconclusive check (it could not see) is shown
with its reason but does not sink a property another check proved: on AWS isolation cuts
the SSM agent too, so `ping-blocked` usually cannot run, and the flow log proves it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gdlab.lab.steps import LabContext

if TYPE_CHECKING:
    from gdlab.lab import flows

# A scenario's properties: what its incident must show, and the checks that can prove each.
Properties = dict[str, tuple[str, ...]]


@dataclass
class Check:
    name: str
    title: str
    status: str  # pass | fail | inconclusive
    evidence: str
    proves: str | None = None  # the property it proves, set from the scenario's properties

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "property": self.proves,
            "passed": self.passed,
            "status": self.status,
            "evidence": self.evidence,
        }


@dataclass
class Verdict:
    lab: str
    checks: list[Check]
    properties: Properties

    def __post_init__(self) -> None:
        owner = {check: prop for prop, names in self.properties.items() for check in names}
        for check in self.checks:
            check.proves = check.proves or owner.get(check.name)

    def proven(self) -> dict[str, list[str]]:
        """Each property and the checks that passed for it (empty: not proven)."""
        return {
            prop: [c.name for c in self.checks if c.name in names and c.passed]
            for prop, names in self.properties.items()
        }

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.status == "fail"]

    @property
    def unproven(self) -> list[str]:
        return [prop for prop, by in self.proven().items() if not by]

    @property
    def passed(self) -> bool:
        return not self.failed and not self.unproven

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "properties": [
                {"name": prop, "proven": bool(by), "proven_by": by}
                for prop, by in self.proven().items()
            ],
        }


def scenario_proof(ctx: LabContext) -> tuple[Any, Properties]:
    """The scenario's checks() and PROPERTIES (its scenario.py)."""
    from gdlab.scenario import ScenarioError

    module = ctx.scenario.module()
    make, properties = getattr(module, "checks", None), getattr(module, "PROPERTIES", None)
    if not callable(make) or not isinstance(properties, dict) or not properties:
        raise ScenarioError(f"scenario {ctx.scenario.name}: scenario.py needs checks() and "
                            "PROPERTIES (what the incident must show, and which checks "
                            "prove each)")
    return make, properties


def verify(ctx: LabContext, waiting: flows.Waiting | None = None) -> Verdict:
    """The scenario's checks, then the verdict. `waiting` hears about waits (flow-log
    delivery takes minutes on AWS), so nobody thinks verify hung."""
    from gdlab.lab.class_view import administrator_proof

    make, properties = scenario_proof(ctx)
    checks = make(ctx, waiting)
    more, more_properties = administrator_proof(ctx)  # a class's GuardDuty administrator
    verdict = Verdict(ctx.lab, checks + more, {**properties, **more_properties})
    if verdict.passed:
        ctx.state.event("verified: every property proven, no check failed", phase="verified")
    else:
        why = [f"failed {', '.join(verdict.failed)}"] if verdict.failed else []
        why += [f"not proven {', '.join(verdict.unproven)}"] if verdict.unproven else []
        ctx.state.event(f"verify failed: {'; '.join(why)}", kind="error")
    return verdict
