"""Setup and teardown: walk the plan, journal every create, undo by journal and tag sweep."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from gdlab.cloud import Cloud
from gdlab.errors import (
    GdlabError,
    Interrupted,
    StepFailed,
    UsageError,
    describe,
)
from gdlab.lab import sharing
from gdlab.lab.awsutil import not_yet_visible, retry
from gdlab.lab.plan import plan_for
from gdlab.lab.state import LabState, LabStore, Resource, new_lab_id, validate_lab_id
from gdlab.lab.steps import LabContext, Step
from gdlab.scenario import Scenario


@dataclass
class StepEvent:
    """Progress of one step, for the CLI to render as it happens."""

    key: str
    label: str
    status: str  # created | adopted | exists | found | deleted | kept | would-delete | failed
    id: str | None = None
    elapsed: float = 0.0
    detail: str | None = None


Progress = Callable[[StepEvent], None]


def _quiet(_: StepEvent) -> None:
    return None


def context(cloud: Cloud, state: LabState, scenario: Scenario) -> LabContext:
    return LabContext(
        cloud=cloud,
        state=state,
        scenario=scenario,
        patience_seconds=5.0 if cloud.is_local else 300.0,
        poll_seconds=0.02 if cloud.is_local else 5.0,
    )


def preflight(cloud: Cloud, store: LabStore, scenario: Scenario, lab: str | None) -> bool:
    """What setup checks before it creates anything: the credentials when it resumes `lab`,
    otherwise also the quotas the scenario's plan needs. True: the lab resumes."""
    resuming = bool(lab) and store.exists(lab)
    if resuming:
        cloud.account  # noqa: B018 - proves the credentials before touching anything
    else:
        cloud.preflight(eips_needed=plan_for(scenario).elastic_ips)
    return resuming


def open_lab(
    store: LabStore,
    cloud: Cloud,
    scenario: Scenario,
    lab: str | None = None,
    email: str | None = None,
    class_name: str | None = None,
) -> LabState:
    """A new lab's state, or the existing one when resuming `lab`; either way this process
    holds the lab's lock from here on (a second setup of it waits, then refuses).
    `class_name`: the class the lab belongs to (its resources are tagged gdlab:class)."""
    if lab:
        validate_lab_id(lab)
        scenario.check_names(lab)
        store.acquire(lab)
        if store.exists(lab):
            state = store.load(lab)
            if state.phase == "torn-down":
                raise UsageError(
                    f"lab {lab} was torn down", "set up a new lab (omit --lab or pick a new id)"
                )
            if state.target != cloud.target or state.region != cloud.region:
                raise UsageError(
                    f"lab {lab} lives in {state.target}/{state.region}, "
                    f"not {cloud.target}/{cloud.region}",
                    f"pass --target {state.target} --region {state.region}",
                )
            if state.scenario != scenario.name:
                raise UsageError(f"lab {lab} runs scenario {state.scenario}, not {scenario.name}")
            _rebind_if_cloud_gone(state, cloud)
            if email:
                state.options["email"] = email
            store.set_current(lab)
            return state
    if not lab:
        lab = new_lab_id()
        while store.exists(lab):
            lab = new_lab_id()
        store.acquire(lab)
    state = LabState(
        lab=lab,
        scenario=scenario.name,
        target=cloud.target,
        region=cloud.region,
        endpoint=cloud.endpoint_url if cloud.target == "aws" else None,
        account=cloud.account,
        local_cloud=cloud.settings.local_cloud_id if cloud.is_local else None,
        options={k: v for k, v in (("email", email), ("class", class_name)) if v},
    )
    store.create(state)
    state.event(f"lab {lab} opened for scenario {scenario.name}", phase="setting-up")
    return state


def _rebind_if_cloud_gone(state: LabState, cloud: Cloud) -> None:
    """A local lab whose local cloud is gone has nothing left: start it again from scratch
    in the running one, rather than resume ids that no longer exist."""
    running = cloud.settings.local_cloud_id
    if not cloud.is_local or not state.local_cloud or not running or running == state.local_cloud:
        return
    for res in state.resources:
        res.status = "deleted"
    state.local_cloud = running
    state.event(
        "the local cloud that held this lab is gone: building it again from scratch",
        phase="setting-up",
    )


def setup(
    ctx: LabContext,
    progress: Progress = _quiet,
    workers: int = 4,
    cancel: threading.Event | None = None,
) -> LabState:
    """Create whatever the lab is missing. Steps run side by side as soon as what they need
    is done (Step.needs); after a failure, or once `cancel` is set (a signal), no new step
    starts, the running ones finish and are journaled, and the first error (or Interrupted)
    is raised. Resumable."""
    state = ctx.state
    resumed = any(r.status == "created" for r in state.resources)
    state.event("setup resumed" if resumed else "setup started", phase="setting-up")
    # Of the steps that are ready, those on the longest chain of typical seconds start first
    # (the responder's: role, topic, function and its Active wait); ties keep plan order.
    plan = plan_for(ctx.scenario)
    steps = sorted((step for step in plan.steps if step.applies(ctx)),
                   key=lambda s: -plan.priority[s.key])
    wanted = {step.key for step in steps}
    done: set[str] = set()
    errors: list[BaseException] = []
    running: dict[Future[None], Step] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gdlab-setup") as pool:
        while steps or running:
            if cancel is not None and cancel.is_set() and not errors:
                state.event("setup interrupted: no new step started", kind="error")
                errors.append(
                    Interrupted(
                        f"setup of lab {state.lab} interrupted: no new step started, "
                        "the ones running finished and are journaled",
                        f"'gdlab teardown --lab {state.lab}' removes what was made",
                    )
                )
            if not errors:
                for step in [
                    s
                    for s in steps
                    if all(need in done or need not in wanted for need in s.needs)
                ]:
                    steps.remove(step)
                    running[pool.submit(_setup_step, ctx, step, progress)] = step
            if not running:
                break
            # A short timeout: a signal sets `cancel` from the main thread between polls.
            finished, _ = wait(running, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                try:
                    future.result()
                    done.add(step.key)
                except BaseException as exc:  # noqa: BLE001 - raised below, after the others
                    errors.append(exc)
    if errors:
        raise errors[0]
    state.set_phase("ready", "setup complete: lab ready")
    return state


def _setup_step(ctx: LabContext, step: Step, progress: Progress) -> None:
    state = ctx.state
    started = time.monotonic()
    done = state.live(step.key)
    if done and done.attrs.get("configured", True):
        progress(StepEvent(step.key, step.label, "exists", done.id))
        return
    try:
        status = _configure(ctx, step, done) if done else _create(ctx, step)
    except GdlabError as exc:
        state.event(f"{step.label}: {exc}", kind="error")
        progress(StepEvent(step.key, step.label, "failed", detail=str(exc)))
        raise
    except Exception as exc:
        line, _ = describe(exc)
        state.event(f"{step.label} failed: {line}", kind="error")
        progress(StepEvent(step.key, step.label, "failed", detail=line))
        raise StepFailed(
            f"setup failed at '{step.label}': {line}",
            f"'gdlab setup --lab {state.lab}' resumes, "
            f"'gdlab teardown --lab {state.lab}' removes what was made",
        ) from exc
    res = state.live(step.key)
    progress(
        StepEvent(step.key, step.label, status, res.id if res else None, time.monotonic() - started)
    )


def _create(ctx: LabContext, step: Step) -> str:
    """Create one step's resource; a pending intent is first looked for in the cloud."""
    ctx = ctx.for_step(step)
    state = ctx.state
    pending = state.resource(step.key)
    if pending is not None and pending.status == "pending":
        found = step.find(ctx)
        if found:
            state.record(
                step.key,
                step.type,
                found[0].id,
                found[0].ownership,
                configured=False,
                **found[0].attrs,
            )
            _configure(ctx, step, state.live(step.key))
            return "found"
    state.intend(step.key, step.type, step.display_name(ctx))
    step.create(ctx)
    res = state.live(step.key)
    if res is None:
        raise StepFailed(f"'{step.label}' returned without recording an id")
    _configure(ctx, step, res)
    return res.ownership


def _configure(ctx: LabContext, step: Step, res: Resource) -> str:
    """The step's follow-up calls, retried while AWS does not yet see the new resource."""
    ctx = ctx.for_step(step)
    if res.ownership == "created":
        retry(
            lambda: step.configure(ctx, res),
            when=not_yet_visible,
            deadline_seconds=ctx.patience_seconds,
            first_delay=min(1.0, ctx.poll_seconds * 10),
        )
    ctx.state.update(res, configured=True)
    return "configured"


@dataclass
class Doomed:
    step: Step
    resource: Resource


def teardown_plan(ctx: LabContext, sweep_errors: list[str] | None = None) -> list[list[Doomed]]:
    """What teardown deletes, group by group: the journal's ids plus what a sweep by tag and
    exact name finds, for every kind of resource, so a duplicate that anything made (a race,
    a crash between a create and its journal entry) is found and deleted too. A sweep that
    fails for one kind of resource is reported, and the others still run."""
    state = ctx.state
    groups: list[list[Doomed]] = []
    plan = plan_for(ctx.scenario)
    for keys in plan.teardown:
        group: list[Doomed] = []
        for key in keys:
            step = plan.by_key[key]
            seen: set[str] = set()
            for res in state.resources:
                if res.key == key and res.status == "created" and res.id and res.id not in seen:
                    group.append(Doomed(step, res))
                    seen.add(res.id)
            try:
                swept = step.find(ctx.for_step(step))
            except Exception as exc:
                if sweep_errors is None:
                    raise
                sweep_errors.append(f"sweep of {step.label}: {describe(exc)[0]}")
                swept = []
            for found in swept:
                if found.id not in seen:
                    res = Resource(
                        key,
                        step.type,
                        found.id,
                        found.ownership,
                        "created",
                        attrs=dict(found.attrs),
                    )
                    group.append(Doomed(step, res))
                    seen.add(found.id)
        if group:
            groups.append(group)
    return groups


def teardown(
    ctx: LabContext,
    store: LabStore | None = None,
    dry_run: bool = False,
    progress: Progress = _quiet,
    cancel: threading.Event | None = None,
) -> list[StepEvent]:
    """Delete everything the lab created, in dependency order. Idempotent. Once `cancel` is
    set (a second Ctrl-C), no new delete begins and Interrupted names what is left. A journal
    that cannot be written (full or read-only home) does not stop the deletes: that is said
    at the end. A dry run writes nothing."""
    state = ctx.state
    if dry_run:
        return _teardown(ctx, store, True, progress, cancel)
    state._tolerate_write_errors = True
    try:
        events = _teardown(ctx, store, False, progress, cancel)
    finally:
        state._tolerate_write_errors = False
    if state._write_error is not None:
        error, state._write_error = state._write_error, None
        raise StepFailed(
            f"lab {state.lab}: every resource was deleted, but its journal "
            f"{state._store.path(state.lab) if state._store else ''} could not be updated: "
            f"{(error.strerror or str(error)).lower()}",
            f"free space in or make {state._store.home if state._store else 'the home'} "
            f"writable, then rerun 'gdlab teardown --lab {state.lab}' to record it",
        )
    return events


def _teardown(
    ctx: LabContext,
    store: LabStore | None,
    dry_run: bool,
    progress: Progress,
    cancel: threading.Event | None,
) -> list[StepEvent]:
    state = ctx.state
    events: list[StepEvent] = []
    failures: list[str] = []

    def report(event: StepEvent) -> None:
        events.append(event)
        progress(event)

    if not dry_run:
        state.event("teardown started")
    groups = teardown_plan(ctx, failures)
    for index, group in enumerate(groups):
        if cancel is not None and cancel.is_set():
            left = [d for g in groups[index:] for d in g if d.resource.ownership != "adopted"]
            state.event(f"teardown interrupted: {len(left)} resource(s) remain", kind="error")
            kinds = list(dict.fromkeys(d.step.label for d in left))
            shown = ", ".join(kinds[:6]) + (f" and {len(kinds) - 6} more" if len(kinds) > 6 else "")
            raise Interrupted(
                f"teardown of lab {state.lab} interrupted; {len(left)} resource(s) remain "
                f"({shown}; 'gdlab status --lab {state.lab}' lists them)",
                f"'gdlab teardown --lab {state.lab}' finishes it",
            )
        begun: list[tuple[Doomed, float]] = []
        for doomed in group:
            res, step = doomed.resource, doomed.step
            if res.ownership == "adopted":
                report(StepEvent(res.key, step.label, "kept", res.id, detail="adopted, not ours"))
                if not dry_run:
                    state.forget(res.key)
                continue
            if res.key in sharing.SHARED_KEYS:
                try:
                    _end_shared(ctx, store or state._store, doomed, dry_run, report)
                except Exception as exc:
                    failures.append(_failed(report, doomed, exc))
                continue
            if dry_run:
                report(StepEvent(res.key, step.label, "would-delete", res.id))
                continue
            started = time.monotonic()
            try:
                step.delete(ctx.for_step(step), res)
                begun.append((doomed, started))
            except Exception as exc:
                failures.append(_failed(report, doomed, exc))
        for doomed, started in begun:
            res, step = doomed.resource, doomed.step
            try:
                step.finish_delete(ctx.for_step(step), res)
            except Exception as exc:
                failures.append(_failed(report, doomed, exc))
                continue
            res.status = "deleted"
            state.save()
            report(StepEvent(res.key, step.label, "deleted", res.id, time.monotonic() - started))
    if dry_run:
        return events
    if failures:
        state.event(f"teardown incomplete: {len(failures)} resource(s) remain", kind="error")
        raise StepFailed(
            f"teardown left {len(failures)} resource(s): {'; '.join(failures)}",
            f"rerun 'gdlab teardown --lab {state.lab}' to finish",
        )
    state.set_phase("torn-down", "teardown complete: nothing of the lab remains")
    return events


def _end_shared(
    ctx: LabContext, store: LabStore | None, doomed: Doomed, dry_run: bool, report: Progress
) -> None:
    """A detector or hub this lab made or shares: kept while another lab of this home uses
    it, else deleted, looked at and deleted under the place's lock (lab/sharing.py)."""
    state, res, step = ctx.state, doomed.resource, doomed.step
    with sharing.guarded(store, state, res.key) if not dry_run else contextlib.nullcontext():
        users = sharing.other_users(store, state, res.key, res.id or "")
        if users:
            report(StepEvent(res.key, step.label, "kept", res.id,
                             detail=f"still used by lab {', '.join(users)}"))
            if not dry_run:
                state.forget(res.key)
            return
        if dry_run:
            report(StepEvent(res.key, step.label, "would-delete", res.id))
            return
        started = time.monotonic()
        step.delete(ctx.for_step(step), res)
        step.finish_delete(ctx.for_step(step), res)
    res.status = "deleted"
    state.save()
    report(StepEvent(res.key, step.label, "deleted", res.id, time.monotonic() - started))


def _failed(report: Progress, doomed: Doomed, exc: Exception) -> str:
    line, _ = describe(exc)
    report(
        StepEvent(doomed.resource.key, doomed.step.label, "failed", doomed.resource.id, detail=line)
    )
    return f"{doomed.step.label} {doomed.resource.id}: {line}"
