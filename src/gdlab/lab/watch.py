"""Follow the incident hop by hop until every hop is seen or the deadline passes."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gdlab.errors import LOCAL_HINT, GdlabError, describe, describe_endpoint_error, safe_url
from gdlab.lab.hops import HopSpec
from gdlab.lab.state import now_iso
from gdlab.lab.steps import LabContext

EXPECTED_LOCAL_SECONDS = 2  # the local cloud answers within a second or two


def expected_seconds(ctx: LabContext, spec: HopSpec) -> float:
    return EXPECTED_LOCAL_SECONDS if ctx.cloud.is_local else spec.expected_aws_seconds


def hops_of(ctx: LabContext) -> list[HopSpec]:
    """The hops the lab's scenario is watched through (its scenario.py `hops()`)."""
    from gdlab.scenario import ScenarioError

    make = getattr(ctx.scenario.module(), "hops", None)
    specs = make() if callable(make) else None
    if not isinstance(specs, list) or not specs or not all(
            isinstance(s, HopSpec) for s in specs):
        raise ScenarioError(f"scenario {ctx.scenario.name}: hops() must return a list of "
                            "HopSpecs (gdlab.lab.hops)")
    return specs


# An endpoint is lost when at least this many polls in a row, spanning at least this long,
# could not reach it (connection refused, no answer, connection closed): a refused
# connection is noticed in 10 s, an endpoint that hangs after two bounded polls (~50 s).
# One failed poll, or a blip shorter than that, is survived.
LOST_AFTER_POLLS = 2
LOST_AFTER_SECONDS = 10.0
# (first, longest) pause between polls: the local cloud answers at once; AWS rate-limits.
PAUSES = {"local": (0.05, 0.5), "aws": (5.0, 30.0)}


class EndpointLost(GdlabError):
    """The cloud stopped answering while watching: waiting for the deadline would only end
    with hints about hops that cannot be seen."""


def is_connection_error(exc: BaseException) -> bool:
    """The endpoint could not be reached or did not answer (not an AWS error, which means
    it answers)."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError))


@dataclass
class Hop:
    key: str
    label: str
    seen: bool = False
    at: str | None = None
    elapsed: float | None = None  # seconds since the trigger
    detail: str = ""
    expected: float | None = None  # seconds after the trigger it usually takes
    waited: float = 0.0  # seconds since the trigger at the last look, while not seen

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "waited"}


@dataclass
class WatchResult:
    hops: list[Hop]
    complete: bool
    seconds: float
    finding_id: str | None = None
    hints: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
            "finding_id": self.finding_id,
            "hops": [h.to_dict() for h in self.hops],
            "hints": self.hints,
        }


def triggered_at(ctx: LabContext) -> datetime | None:
    for event in reversed(ctx.state.timeline):
        if event.phase == "triggered":
            return datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    return None


class Watcher:
    """Polls only the hops not yet seen, in the order the scenario lists them."""

    def __init__(self, ctx: LabContext, specs: list[HopSpec] | None = None):
        self.ctx = ctx
        self.specs = specs if specs is not None else hops_of(ctx)
        self.hops = {
            s.key: Hop(s.key, s.label, expected=expected_seconds(ctx, s)) for s in self.specs
        }
        self.finding: dict[str, Any] | None = None
        self.since = triggered_at(ctx) or datetime.now(timezone.utc)
        # The connection error of the last poll when nothing in it reached the endpoint.
        self.unreachable: BaseException | None = None

    def see(self, key: str, detail: str) -> None:
        hop = self.hops[key]
        hop.detail = detail
        if hop.seen:
            return
        hop.seen = True
        hop.at = now_iso()
        hop.elapsed = (datetime.now(timezone.utc) - self.since).total_seconds()
        phase = next(s.phase for s in self.specs if s.key == key)
        if phase and self.ctx.state.phase in ("ready", "triggered", "detected"):
            self.ctx.state.event(f"{hop.label}: {detail}", phase=phase)
        else:
            self.ctx.state.event(f"{hop.label}: {detail}")

    def note(self, key: str, detail: str) -> None:
        """What a look found instead of the hop."""
        self.hops[key].detail = detail

    def poll(self) -> None:
        waited = (datetime.now(timezone.utc) - self.since).total_seconds()
        for hop in self.hops.values():
            if not hop.seen:
                hop.waited = waited
        self._poll()

    def _poll(self) -> None:
        """One look at every hop not yet seen; a failed look is shown and retried next time.
        A look that cannot reach the endpoint ends the poll (the others would not either)
        and sets `unreachable`, unless an earlier look of the same poll got an answer."""
        self.unreachable = None
        answered = False
        for spec in self.specs:
            if self.hops[spec.key].seen and not spec.again:
                continue
            try:
                spec.look(self)
            except Exception as exc:  # throttling, a transient error: say so, keep watching
                self.hops[spec.key].detail = f"could not check: {describe(exc)[0]}"
                if is_connection_error(exc):
                    if not answered:
                        self.unreachable = exc
                    break
                answered = True  # an AWS error is an answer
            else:
                answered = True

    @property
    def complete(self) -> bool:
        return all(h.seen for h in self.hops.values())

    def hint(self, key: str) -> str:
        return next(s.hint for s in self.specs if s.key == key)


def lost(ctx: LabContext, exc: BaseException, polls: int, seconds: float) -> EndpointLost:
    url = ctx.cloud.endpoint_url
    where = safe_url(url) if url else "AWS"
    known = describe_endpoint_error(exc, url, local=ctx.cloud.is_local)
    what = known[0] if known else describe(exc)[0]
    hint = (
        f"{LOCAL_HINT}; if it was stopped, the lab's resources are gone"
        if ctx.cloud.is_local
        else "check the network and --endpoint-url; 'gdlab watch' resumes where it stopped"
    )
    return EndpointLost(
        f"lost the endpoint {where} while watching lab {ctx.lab}: {what}, "
        f"for {seconds:.0f} s ({polls} polls in a row)",
        hint,
    )


def watch(
    ctx: LabContext,
    timeout_seconds: float | None = None,
    on_update: Callable[[list[Hop]], None] | None = None,
) -> WatchResult:
    """Poll with backoff and jitter until every hop is seen or the deadline passes. Raises
    EndpointLost when the endpoint stops answering for several polls in a row (see
    LOST_AFTER_*), or is still not answering when the deadline comes."""
    if timeout_seconds is None:
        timeout_seconds = float(
            ctx.scenario.watch_local_seconds
            if ctx.cloud.is_local
            else ctx.scenario.watch_aws_seconds
        )
    # Polls give up fast: the loop is their retry, and a lost endpoint shows in seconds.
    ctx = dataclasses.replace(ctx, cloud=ctx.cloud.bounded())
    watcher = Watcher(ctx)
    started = time.monotonic()
    delay, cap = PAUSES["local" if ctx.cloud.is_local else "aws"]
    failed_polls, failing_since = 0, 0.0
    while True:
        poll_started = time.monotonic()
        watcher.poll()
        if on_update:
            on_update(list(watcher.hops.values()))
        if watcher.complete:
            break
        remaining = timeout_seconds - (time.monotonic() - started)
        if watcher.unreachable is None:
            failed_polls = 0
        else:
            if failed_polls == 0:
                failing_since = poll_started
            failed_polls += 1
            failing = time.monotonic() - failing_since
            # at the deadline, failed polls in a row say more than hints about hops
            if failed_polls >= LOST_AFTER_POLLS and (
                failing >= LOST_AFTER_SECONDS or remaining <= 0
            ):
                error = lost(ctx, watcher.unreachable, failed_polls, failing)
                ctx.state.event(str(error), kind="error")
                raise error
        if remaining <= 0:
            break
        time.sleep(min(remaining, delay * (0.7 + random.random() * 0.6)))
        delay = min(cap, delay * 1.5)
    hops = list(watcher.hops.values())
    result = WatchResult(
        hops=hops,
        complete=watcher.complete,
        seconds=time.monotonic() - started,
        finding_id=watcher.finding["Id"] if watcher.finding else None,
        hints=[watcher.hint(h.key) for h in hops if not h.seen],
    )
    if not result.complete:
        missing = ", ".join(h.label for h in hops if not h.seen)
        ctx.state.event(f"watch ended at its deadline; not seen: {missing}", kind="error")
    return result
