"""One step per lab resource: how to create it, configure it, find it by its tags, and
delete it.

A step's create() records the resource's id in the journal the moment AWS returns it
(ctx.created); configure() then makes the follow-up calls, so an interruption never loses
an id and a resumed setup finishes a half-configured resource."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gdlab.lab.awsutil import tag_list

if TYPE_CHECKING:
    from gdlab.cloud import Cloud
    from gdlab.lab.state import LabState, Resource
    from gdlab.scenario import Scenario

LAB_TAG = "gdlab:lab"
CLASS_TAG = "gdlab:class"
SCENARIO_TAG = "gdlab:scenario"


@dataclass
class Found:
    """A resource discovered by a tag/name sweep rather than read from the journal."""

    id: str
    ownership: str = "created"
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabContext:
    cloud: Cloud
    state: LabState
    scenario: Scenario
    # Local cloud answers at once; AWS needs patience for eventual consistency.
    patience_seconds: float = 120.0
    # Seconds between waiter polls: AWS's instances take a minute, the local cloud's none.
    poll_seconds: float = 5.0
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # A step's own view (for_step): it reads only its own resource and those it declared in
    # Step.needs. None: the lab as a whole (trigger, watch, verify).
    step_key: str | None = None
    declared: frozenset[str] | None = None

    def for_step(self, step: Step) -> LabContext:
        """The context a step's create/configure/find/delete runs with (same state, cloud
        and memo)."""
        return replace(self, step_key=step.key, declared=frozenset((step.key, *step.needs)))

    def _readable(self, key: str) -> None:
        if self.declared is not None and key not in self.declared:
            from gdlab.scenario import ScenarioError

            raise ScenarioError(
                f"step '{self.step_key}' reads '{key}' without declaring it",
                f"add '{key}' to {self.step_key}'s needs")

    def once(self, name: str, compute: Callable[[], Any]) -> Any:
        """A value computed once per setup however many steps (in threads) ask for it."""
        with self._memo_lock:
            if name not in self._memo:
                self._memo[name] = compute()
            return self._memo[name]

    def waiter_config(self, max_seconds: float = 600.0) -> dict[str, Any]:
        delay = max(self.poll_seconds, 0.01)
        return {"Delay": delay, "MaxAttempts": max(1, int(max_seconds / delay))}

    @property
    def lab(self) -> str:
        return self.state.lab

    def name(self, key: str) -> str:
        return self.scenario.name_for(key, self.lab)

    def tags(self, name: str | None = None, **extra: str) -> dict[str, str]:
        tags = {LAB_TAG: self.lab, SCENARIO_TAG: self.scenario.name}
        if self.state.options.get("class"):  # a class's teardown finds it by this tag
            tags[CLASS_TAG] = str(self.state.options["class"])
        if name:
            tags["Name"] = name
        tags.update(extra)
        return tags

    def tag_specs(self, *resource_types: str, name: str | None = None) -> list[dict[str, Any]]:
        tags = tag_list(self.tags(name))
        return [{"ResourceType": rt, "Tags": tags} for rt in resource_types]

    def lab_filter(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{LAB_TAG}", "Values": [self.lab]}]

    def created(self, step: Step, id_: str, ownership: str = "created", **attrs: Any) -> None:
        """Journal the id; `configured` stays False until the step's follow-up calls are done
        (a resumed setup finishes them)."""
        self.state.record(
            step.key, step.type, id_, ownership=ownership, name=None, configured=False, **attrs
        )

    def id_of(self, key: str) -> str:
        self._readable(key)
        return self.state.id_of(key)

    def attr(self, key: str, name: str) -> Any:
        self._readable(key)
        res = self.state.live(key)
        return res.attrs.get(name) if res else None


class Step(ABC):
    key: str = ""
    type: str = ""
    label: str = ""
    # The steps whose resources this one's create uses: setup starts it once they are done,
    # teardown deletes it before them (lab/graph.py derives both orders from these).
    needs: tuple[str, ...] = ()
    # Steps whose resources must be gone before this one's is deleted although they do not
    # need it at setup (the forensic group outlives the instances the responder moves in).
    outlives: tuple[str, ...] = ()
    # About how long its create takes on AWS: of several ready steps, setup starts the ones
    # on the longest chain first.
    typical_seconds: float = 1.0
    # Elastic IPs its create allocates: the preflight checks the lab's total against the quota.
    elastic_ips: int = 0

    def applies(self, ctx: LabContext) -> bool:
        """Optional steps (the e-mail subscription) say whether this lab wants them."""
        return True

    def display_name(self, ctx: LabContext) -> str | None:
        return None

    @abstractmethod
    def create(self, ctx: LabContext) -> None:
        """Create the resource and call ctx.created() as soon as AWS returns its id."""

    def configure(self, ctx: LabContext, res: Resource) -> None:
        """Follow-up calls after the create (attach, rules, policies, waits). Idempotent: a
        resumed setup runs it again for a resource whose configuration did not finish."""
        return None

    def find(self, ctx: LabContext) -> list[Found]:
        """This lab's resources of this kind, found in the cloud by tag or exact name."""
        return []

    @abstractmethod
    def delete(self, ctx: LabContext, res: Resource) -> None:
        """Delete (or begin deleting) the resource; absent already counts as deleted."""

    def finish_delete(self, ctx: LabContext, res: Resource) -> None:
        """Wait for a delete begun by delete(); runs after the whole group has begun."""
        return None
