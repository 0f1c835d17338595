"""The whole incident in one go — setup, trigger, watch, verify, teardown — as data.

`run()` walks the phases, tears the lab down on every path (a failed step, a signal, an
error of its own) unless `keep`, and returns a `RunReport`; what the CLI shows while it
goes comes through `RunEvents` (each hook does nothing by default), and how a signal is
felt through an `Interrupts` (cli.signals.Signals is one). Nothing here prints.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gdlab.errors import Interrupted, describe

if TYPE_CHECKING:  # the CLI imports this module: boto3 and the lab core load when a run starts
    from gdlab.cloud import Cloud
    from gdlab.lab.evidence import Evidence
    from gdlab.lab.flows import Waiting
    from gdlab.lab.lifecycle import StepEvent
    from gdlab.lab.state import LabState, LabStore
    from gdlab.lab.steps import LabContext
    from gdlab.lab.trigger import TriggerResult
    from gdlab.lab.verify import Verdict
    from gdlab.lab.watch import Hop, WatchResult
    from gdlab.scenario import Scenario

Mails = list[dict[str, Any]]  # as `gdlab mail --json` prints them


class Declined(Exception):
    """The user said no to creating billable resources: the setup step ends as 'declined'."""


class Interrupts(Protocol):
    """What a run needs of the signal handling (cli.signals.Signals fits)."""

    stop: threading.Event  # first signal: start nothing new
    cancel: threading.Event  # second signal: stop the teardown between groups too

    @property
    def interrupted(self) -> str | None: ...
    def interruptible(self) -> ContextManager[None]: ...
    def note(self, name: str = "SIGINT") -> None: ...
    def tearing_down(self) -> None: ...
    def done(self) -> None: ...


class NoSignals:
    """Interrupts for a run nobody can signal (tests, library use): `stop` may still be set."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.cancel = threading.Event()
        self.received: list[str] = []

    @property
    def interrupted(self) -> str | None:
        return self.received[0] if self.received else None

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        if self.stop.is_set():
            raise KeyboardInterrupt
        yield

    def note(self, name: str = "SIGINT") -> None:
        if not self.received:
            self.received.append(name)
            self.stop.set()

    def tearing_down(self) -> None:
        return None

    def done(self) -> None:
        return None


class RunEvents:
    """Hooks called as the run goes; override what you render."""

    def phase(self, name: str) -> None:
        """A step begins (setup, trigger, watch, verify, teardown)."""

    def failed(self, name: str, error: str) -> None:
        """A step raised; `error` is its one line ('declined' when the user said no)."""

    def interrupted(self, name: str, signal: str | None, message: str | None) -> None:
        """A signal ended the step; `message` is Interrupted's own, if that is what ended it."""

    def confirm(self, cloud: Cloud) -> None:
        """Before the lab is opened (a signal interrupts it at once): raise Declined to stop."""

    def named(self, lab: str) -> None:
        """The lab now has its id (the signal handler names it from here on)."""

    def opened(self, state: LabState, scenario: Scenario, cloud: Cloud, resuming: bool) -> None:
        """The lab's state exists; its steps are about to be created."""

    def progress(self, event: StepEvent) -> None:
        """One setup or teardown step done."""

    def ready(self, state: LabState, seconds: float) -> None:
        """Setup finished."""

    def triggered(self, result: TriggerResult) -> None:
        """The trigger's answer."""

    def watching(self) -> ContextManager[Callable[[list[Hop]], None] | None]:
        """Around the watch: yields its on_update callback (None: no live view)."""
        return contextlib.nullcontext(None)

    def watched(self, result: WatchResult) -> None:
        """The watch ended (complete or at its deadline), still inside `watching()`."""

    def waiting(self) -> ContextManager[Waiting | None]:
        """Around verify: yields the callback for its waits (the flow-log delivery)."""
        return contextlib.nullcontext(None)


@dataclass
class StepReport:
    step: str
    ok: bool
    seconds: float
    error: str | None = None
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"step": self.step, "ok": self.ok, "seconds": self.seconds}
        if self.error is not None:
            data["error"] = self.error
        if self.interrupted:
            data["interrupted"] = True
        return data


@dataclass
class RunReport:
    """What `gdlab run --json` prints (to_dict), plus the state the summary is drawn from."""

    target: str | None = None
    region: str | None = None
    steps: list[StepReport] = field(default_factory=list)
    state: LabState | None = None
    keep: bool = False
    trigger: TriggerResult | None = None
    watch: WatchResult | None = None
    verify: Verdict | None = None
    emails: Mails | None = None
    topic_arn: str = ""  # where the e-mails went (the topic is gone after teardown)
    evidence: Evidence | None = None  # for an incident report, gathered before teardown
    seconds: float = 0.0
    api_calls: int = 0
    interrupted: str | None = None
    passed: bool = False

    @property
    def lab(self) -> str | None:
        return self.state.lab if self.state else None

    @property
    def since(self) -> Any:
        """When the lab's timeline began: the summary shows this run's part of it."""
        return self.state.timeline[0].time if self.state and self.state.timeline else None

    @property
    def failed(self) -> list[str]:
        return [s.step for s in self.steps if not s.ok]

    def step(self, name: str) -> StepReport | None:
        return next((s for s in self.steps if s.step == name), None)

    def to_dict(self) -> dict[str, Any]:
        # README "JSON outputs": the keys and their order as `gdlab run --json` always had them.
        data: dict[str, Any] = {
            "passed": self.passed,
            "steps": [s.to_dict() for s in self.steps],
            "lab": self.lab,
            "target": self.target,
            "region": self.region,
        }
        if self.trigger is not None:
            data["trigger"] = self.trigger.to_dict()
        if self.watch is not None:
            data["watch"] = self.watch.to_dict()
        if self.verify is not None:
            data["verify"] = self.verify.to_dict()
        if self.emails is not None:
            data["emails"] = self.emails
        data.update(seconds=self.seconds, api_calls=self.api_calls, interrupted=self.interrupted)
        return data


class _Run:
    def __init__(self, report: RunReport, sig: Interrupts, events: RunEvents):
        self.report, self.sig, self.events = report, sig, events

    def step(self, name: str, fn: Callable[[], Any], interruptible: bool = False) -> Any:
        """One phase, its outcome recorded. `interruptible`: it only reads and waits in this
        thread, so a signal ends it at once; otherwise a signal lets it finish what it began."""
        t0 = time.monotonic()
        self.events.phase(name)
        try:
            if interruptible:
                with self.sig.interruptible():
                    value = fn()
            else:
                value = fn()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.sig.note()  # a KeyboardInterrupt raised without a signal counts as Ctrl-C
            said = exc.message if isinstance(exc, Interrupted) else None
            line = str(exc) if said is not None else f"interrupted ({self.sig.interrupted})"
            self.report.steps.append(StepReport(name, False, _since(t0), line, interrupted=True))
            self.events.interrupted(name, self.sig.interrupted, said)
            return None
        except Exception as exc:
            line = "declined" if isinstance(exc, Declined) else describe(exc)[0]
            self.report.steps.append(StepReport(name, False, _since(t0), line))
            self.events.failed(name, line)
            return None
        self.report.steps.append(StepReport(name, True, _since(t0)))
        return value

    def fail_last(self, error: str) -> None:
        self.report.steps[-1].ok = False
        self.report.steps[-1].error = error


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 3)


def run(
    cloud: Callable[[], Cloud],
    store: LabStore,
    scenario: str,
    *,
    lab: str | None = None,
    email: str | None = None,
    keep: bool = False,
    timeout: float | None = None,
    sig: Interrupts | None = None,
    events: RunEvents | None = None,
    mails: Callable[[Cloud, LabState], Mails | None] | None = None,
    evidence: bool = False,
    class_name: str | None = None,
) -> RunReport:
    """Set up, trigger, watch, verify, then tear down (always, unless `keep`). `cloud` is
    called inside the setup step, so a cloud that cannot be reached is that step's failure;
    `mails` reads the lab's e-mails before the teardown (None: none are collected);
    `evidence`: gather an incident report's evidence before the teardown, and what the
    teardown removed after it (report.evidence). Inputs are validated by the caller. Once
    `sig.stop` is set no further phase starts."""
    sig = sig or NoSignals()
    events = events or RunEvents()
    started = time.monotonic()
    report = RunReport(keep=keep)
    walk = _Run(report, sig, events)
    counted: dict[str, int] = {}

    def the_cloud_counted() -> Cloud:
        """The cloud, with its API-call count when this run first used it: one process may
        run several scenarios through one cloud (run --all)."""
        made_cloud = cloud()
        counted.setdefault("before", made_cloud.api_call_count)
        return made_cloud

    made = walk.step(
        "setup",
        lambda: _setup(the_cloud_counted(), store, scenario, lab, email, sig, events, report,
                       class_name),
    )
    # A failed setup still leaves the lab it opened (report.state), which teardown removes.
    lab_ctx: LabContext | None = made
    the_cloud = the_cloud_counted()
    report.target, report.region = the_cloud.target, the_cloud.region
    try:
        _detect(walk, lab_ctx, timeout)
    finally:
        # Teardown runs whatever happened before it, signals included: nothing billable stays.
        _close(walk, the_cloud, store, lab_ctx, mails, evidence)
    report.seconds = _since(started)
    report.api_calls = the_cloud.api_call_count - counted["before"]
    report.interrupted = sig.interrupted
    report.passed = (
        not sig.interrupted
        and all(s.ok for s in report.steps)
        and report.verify is not None
        and report.verify.passed
    )
    return report


@dataclass
class AllReport:
    """What `gdlab run --all --json` prints: every scenario's run report, and the verdict."""

    runs: list[tuple[str, RunReport]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # an interrupt came before their turn
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.runs) and not self.not_run and all(r.passed for _n, r in self.runs)

    @property
    def interrupted(self) -> str | None:
        return next((r.interrupted for _n, r in self.runs if r.interrupted), None)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed,
                "scenarios": [{"scenario": name, **report.to_dict()}
                              for name, report in self.runs],
                "not_run": self.not_run, "seconds": self.seconds}


def run_all(
    cloud: Callable[[], Cloud],
    store: LabStore,
    scenarios: list[str],
    *,
    events_for: Callable[[str], RunEvents],
    sig: Interrupts | None = None,
    **options: Any,
) -> AllReport:
    """Every scenario's run, one after another, each a lab of its own torn down before the
    next starts (so the Elastic IP quota and the region's one detector are never contended).
    A failed scenario does not stop the others; an interrupt does: the running one is torn
    down and the rest are not started. `options` are run()'s."""
    sig = sig or NoSignals()
    started = time.monotonic()
    found = AllReport()
    for name in scenarios:
        if sig.stop.is_set():
            found.not_run.append(name)
            continue
        found.runs.append((name, run(cloud, store, name, sig=sig, events=events_for(name),
                                     **options)))
    found.seconds = _since(started)
    return found


def _setup(cloud, store, scenario_name, lab, email, sig, events, report, class_name=None):  # type: ignore[no-untyped-def]
    """Preflight, confirm, open the lab, create its steps. Once `sig.stop` is set nothing
    new is created: before the lab is opened Interrupted is raised; during setup no new
    step starts, the running ones finish and are journaled, then Interrupted."""
    from gdlab.lab.lifecycle import context, open_lab, preflight, setup
    from gdlab.scenario import load

    scenario = load(scenario_name)
    with sig.interruptible():  # preflight and the confirmation only read and wait
        resuming = preflight(cloud, store, scenario, lab)
        events.confirm(cloud)
    if sig.stop.is_set():
        raise Interrupted("interrupted before the lab was opened: nothing was created")
    state = open_lab(store, cloud, scenario, lab=lab, email=email, class_name=class_name)
    events.named(state.lab)
    report.state = state
    events.opened(state, scenario, cloud, resuming)
    lab_ctx = context(cloud, state, scenario)
    t0 = time.monotonic()
    setup(lab_ctx, progress=events.progress, cancel=sig.stop)
    events.ready(state, time.monotonic() - t0)
    return lab_ctx


def _detect(walk: _Run, lab_ctx: LabContext | None, timeout: float | None) -> None:
    """trigger -> watch -> verify; stops short when setup did not finish, the trigger
    failed (no incident to watch for: the run has failed, and waiting out the watch's
    deadline would only delay the teardown) or a signal came."""
    from gdlab.lab import trigger as trigger_core
    from gdlab.lab import verify as verify_core
    from gdlab.lab import watch as watch_core

    sig, events, report = walk.sig, walk.events, walk.report
    if lab_ctx is None or sig.stop.is_set():
        return
    result = walk.step("trigger", lambda: trigger_core.set_off(lab_ctx), interruptible=True)
    if result is None:
        return
    report.trigger = result
    events.triggered(result)
    failure = result.failure()
    if failure:
        walk.fail_last(failure[0])
    if failure or sig.stop.is_set():
        return

    def watch_now() -> WatchResult:
        with events.watching() as on_update:
            result = watch_core.watch(lab_ctx, timeout_seconds=timeout, on_update=on_update)
            events.watched(result)
        return result

    watched = walk.step("watch", watch_now, interruptible=True)
    if watched is not None:
        report.watch = watched
        if not watched.complete:
            walk.fail_last("deadline reached before every hop was seen")
    if sig.stop.is_set():
        return

    def verify_now() -> Verdict:
        with events.waiting() as waiting:
            return verify_core.verify(lab_ctx, waiting=waiting)

    verdict = walk.step("verify", verify_now, interruptible=True)
    if verdict is not None:
        report.verify = verdict
        if not verdict.passed:
            walk.fail_last("not every check passed")


def _close(walk: _Run, cloud: Cloud, store: LabStore, lab_ctx: LabContext | None,
           mails: Callable[[Cloud, LabState], Mails | None] | None, evidence: bool) -> None:
    """Collect the e-mails (and a report's evidence), then tear the lab down unless
    `keep`. A first signal during the teardown lets it finish; the next one (`sig.cancel`)
    stops it between groups."""
    from gdlab.lab import lifecycle
    from gdlab.scenario import load

    report, sig = walk.report, walk.sig
    state = report.state
    if state is not None and mails is not None:
        report.emails = mails(cloud, state)
        topic = state.live("sns-topic")
        report.topic_arn = topic.id if topic and topic.id else ""
    if state is None:
        return
    ctx = lab_ctx or lifecycle.context(cloud, state, load(state.scenario))
    if evidence:
        report.evidence = _evidence(ctx, report, interrupted=sig.stop.is_set())
    if report.keep:
        return
    progress = walk.events.progress
    if report.evidence is not None:
        progress = _recording(progress, report.evidence.teardown)
    sig.tearing_down()
    try:
        walk.step(
            "teardown",
            lambda: lifecycle.teardown(ctx, store=store, progress=progress, cancel=sig.cancel),
        )
    finally:
        sig.done()
        if report.evidence is not None:
            report.evidence.phase = state.phase


def _evidence(ctx: LabContext, report: RunReport, interrupted: bool) -> Evidence:
    """What the report shows, read while the lab exists. After a signal the cloud is not
    asked (the teardown should start at once): the report holds what the run already knew."""
    from gdlab.lab import evidence

    said = "the run was interrupted: the cloud was not read again for this report"
    if not interrupted:
        try:
            return evidence.gather(ctx, watch=report.watch, verdict=report.verify,
                                   emails=report.emails)
        except Exception as exc:  # noqa: BLE001 - the teardown must still run
            said = f"the cloud could not be read for this report: {describe(exc)[0]}"
    found = evidence.from_state(ctx.state, ctx.scenario)
    if report.watch is not None:
        found.hops = evidence.hops_from_watch(report.watch, ctx.state)
    if report.verify is not None:
        found.checks = evidence.checks_of(report.verify)
        found.properties = report.verify.to_dict()["properties"]
    found.emails = [dict(m) for m in report.emails or []]
    found.notes.append(said)
    return found


def _recording(progress: Callable[[StepEvent], None],
               into: list[dict[str, Any]]) -> Callable[[StepEvent], None]:
    """`progress`, and each step's outcome kept for the report's teardown table."""

    def record(event: StepEvent) -> None:
        into.append({"key": event.key, "label": event.label, "status": event.status,
                     "id": event.id})
        progress(event)

    return record
