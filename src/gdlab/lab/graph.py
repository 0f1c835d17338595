"""A lab's steps as a dependency graph, from what each step declares (`needs`, `outlives`,
`typical_seconds`): the order setup may start them in, which to start first when several
are ready, and the groups teardown deletes together. Nothing here is hand-kept per scenario."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gdlab.scenario import ScenarioError

if TYPE_CHECKING:
    from gdlab.lab.steps import Step


def validate(steps: Sequence[Step]) -> None:
    """Keys are unique, every declared key names a step of the lab, and nothing needs
    itself through a cycle."""
    keys = [step.key for step in steps]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ScenarioError(f"steps declared twice: {', '.join(duplicates)}")
    known = set(keys)
    for step in steps:
        unknown = [k for k in (*step.needs, *step.outlives) if k not in known]
        if unknown:
            raise ScenarioError(f"step '{step.key}' declares unknown step(s): "
                                f"{', '.join(unknown)}")
    setup_order(steps)  # each raises on a cycle
    teardown_groups(steps)


def setup_order(steps: Sequence[Step]) -> list[Step]:
    """Every step after what it needs; otherwise in the order the scenario lists them."""
    remaining = list(steps)
    placed: set[str] = set()
    order: list[Step] = []
    while remaining:
        ready = next((s for s in remaining if all(n in placed for n in s.needs)), None)
        if ready is None:
            cycle = ", ".join(s.key for s in remaining)
            raise ScenarioError(f"steps need each other in a cycle: {cycle}")
        remaining.remove(ready)
        placed.add(ready.key)
        order.append(ready)
    return order


def _dependents(steps: Sequence[Step]) -> dict[str, set[str]]:
    """key -> the steps whose resources must be gone before this one's: those that need it,
    and those it outlives (a group that instances may have been moved into)."""
    found: dict[str, set[str]] = {step.key: set() for step in steps}
    for step in steps:
        for need in step.needs:
            found[need].add(step.key)
        found[step.key].update(step.outlives)
    return found


def priorities(steps: Sequence[Step]) -> dict[str, float]:
    """The longest chain of typical seconds from each step to the end of setup: when more
    steps are ready than can run, the ones on the longest chain start first."""
    needed_by: dict[str, list[str]] = {step.key: [] for step in steps}
    for step in steps:
        for need in step.needs:
            needed_by[need].append(step.key)
    weight = {step.key: step.typical_seconds for step in steps}
    result: dict[str, float] = {}
    for step in reversed(setup_order(steps)):
        result[step.key] = weight[step.key] + max(
            (result[k] for k in needed_by[step.key]), default=0.0)
    return result


def teardown_groups(steps: Sequence[Step]) -> list[tuple[str, ...]]:
    """Groups of keys deleted together, each after every group whose resources depend on it:
    a step's level is one more than the deepest level among its dependents."""
    dependents = _dependents(steps)
    level: dict[str, int] = {}

    def depth(key: str, trail: tuple[str, ...] = ()) -> int:
        if key in level:
            return level[key]
        if key in trail:
            raise ScenarioError(f"teardown order has a cycle: {' -> '.join((*trail, key))}")
        level[key] = 1 + max((depth(d, (*trail, key)) for d in dependents[key]), default=-1)
        return level[key]

    order = [step.key for step in steps]
    for key in order:
        depth(key)
    groups: dict[int, list[str]] = {}
    for key in order:
        groups.setdefault(level[key], []).append(key)
    return [tuple(groups[n]) for n in sorted(groups)]
