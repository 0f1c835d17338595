"""gdlab teardown: remove every trace of a lab, from its journal and a tag sweep."""

from __future__ import annotations

import typer

from gdlab.cli.common import console, obj, print_json
from gdlab.errors import (
    DamagedState,
    GdlabError,
    Interrupted,
    LabCloudGone,
    LabNotFound,
    StepFailed,
    UsageError,
)


def register(app: typer.Typer) -> None:
    app.command("teardown")(teardown)


def teardown(
    ctx: typer.Context,
    lab: str = typer.Option(None, "--lab", help="Lab id (default: the current lab)."),
    all_labs: bool = typer.Option(False, "--all", help="Every lab of this target and region."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting on AWS."),
    json_out: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Delete everything a lab created, in dependency order; adopted GuardDuty and Security
    Hub are kept, shared ones go with the last lab using them. Works from the tag sweep
    alone if the state file is lost.

    \b
    Example: gdlab teardown --lab gd-1a2b3c --dry-run
    """
    from gdlab.cli import signals
    from gdlab.lab.state import validate_lab_id

    if lab and all_labs:
        raise UsageError("--lab and --all exclude each other", "pass one of them")
    app = obj(ctx)
    store = app.store
    if lab:
        validate_lab_id(lab)
    if all_labs:
        lab_ids = _every_lab(app)
    else:
        lab_id = lab or store.current()
        if lab_id is None:
            raise LabNotFound("no current lab", "pass --lab ID, or --all")
        lab_ids = [lab_id]
    out = console() if not json_out else None
    report: list[dict] = []
    failures: list[str] = []
    # Ctrl-C, SIGTERM, SIGHUP: the deletes in flight finish, then the teardown stops and
    # names what is left (Interrupted, exit 130); with --all no further lab is begun.
    with signals.handling(lab_ids[0] if len(lab_ids) == 1 else None, teardown_only=True) as sig:
        for lab_id in lab_ids:
            if sig.cancel.is_set():
                raise Interrupted(
                    "teardown interrupted before lab(s) "
                    + ", ".join(lab_ids[lab_ids.index(lab_id) :])
                    + " were begun",
                    "rerun 'gdlab teardown --all' to finish",
                )
            _each(app, lab_id, dry_run, yes, out, all_labs, sig, report, failures)
    if not report and out:
        out.print("nothing to tear down")
    if json_out:
        print_json(report if all_labs else report[0])
    if failures:
        raise StepFailed(
            f"{len(failures)} lab(s) not fully torn down: {'; '.join(failures)}",
            "rerun 'gdlab teardown --all' to finish",
        )


def _each(app, lab_id, dry_run, yes, out, all_labs, sig, report, failures) -> None:  # type: ignore[no-untyped-def]
    """One lab of the command; with --all, its failure is reported and the others go on."""
    from rich.markup import escape

    try:
        entry = _one(app, lab_id, dry_run, yes, out, all_labs, sig.cancel)
    except Interrupted:
        raise  # a signal stops the whole command, not just this lab
    except GdlabError as exc:
        if not all_labs:
            raise
        failures.append(f"{lab_id}: {exc}")
        report.append({"lab": lab_id, "dry_run": dry_run, "error": str(exc)})
        if out:
            out.print(f"[bold red]lab {escape(lab_id)}:[/bold red] {escape(str(exc))}")
        return
    if entry is not None:
        report.append(entry)


def _every_lab(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Every lab of this target and region: known ones not yet torn down, damaged ones, and
    whatever the cloud holds that is tagged or named for a lab (torn down or not)."""
    from gdlab.lab.discovery import discover_labs
    from gdlab.lab.state import LAB_ID
    from gdlab.scenario import list_scenarios

    cloud = app.cloud()
    sound, damaged = app.store.scan()
    ids = {
        s.lab
        for s in sound
        if (s.target, s.region) == (cloud.target, cloud.region) and s.phase != "torn-down"
    }
    ids |= {d.lab for d in damaged if LAB_ID.fullmatch(d.lab)}
    for scenario in list_scenarios():  # each scenario names its resources its own way
        ids |= discover_labs(cloud, scenario)
    return sorted(ids)


def _one(app, lab_id: str, dry_run: bool, yes: bool, out, discovered_only: bool, cancel):  # type: ignore[no-untyped-def]
    """Tear one lab down under its lock, from a state read just now. None: nothing of it was
    found (--all)."""
    from gdlab.lab.state import LabStore

    store: LabStore = app.store
    if dry_run:  # a dry run writes nothing, not even a lock file
        return _teardown_locked(app, lab_id, dry_run, yes, out, discovered_only, cancel)
    try:
        store.acquire(lab_id)
    except OSError:
        # A full or read-only home with no lock file yet: the cloud's resources are still
        # deleted; teardown says at the end what it could not record.
        held = False
    else:
        held = True
    try:
        return _teardown_locked(app, lab_id, dry_run, yes, out, discovered_only, cancel)
    finally:
        if held:
            store.release(lab_id)


def _teardown_locked(app, lab_id, dry_run, yes, out, discovered_only, cancel):  # type: ignore[no-untyped-def]
    from rich.markup import escape

    from gdlab.cli.setup import confirm_billable
    from gdlab.lab import lifecycle
    from gdlab.lab.discovery import rebuild_lost_lab, scenario_of
    from gdlab.render.lab import step_line
    from gdlab.scenario import load

    store = app.store
    state = None
    damaged: DamagedState | None = None
    try:
        state = store.load(lab_id)
    except DamagedState as exc:
        damaged = exc
    except LabNotFound:
        if store.exists(lab_id):
            raise
    if state is not None:
        try:
            cloud = app.cloud_for_lab(state)
        except LabCloudGone:
            return _forget(state, dry_run, out)
    else:
        cloud = app.cloud()
        try:
            scenario = load(scenario_of(cloud, lab_id))  # from its gdlab:scenario tag
            state = rebuild_lost_lab(store, cloud, scenario, lab_id, dry_run=dry_run)
        except LabNotFound:
            if damaged is not None:
                return _set_aside(store, lab_id, damaged, cloud, dry_run, out)
            if discovered_only:
                return None  # a name that looked like a lab's, with nothing tagged for it
            raise
        if damaged is not None and out:
            verb = "would be rebuilt" if dry_run else "rebuilt"
            out.print(
                f"[yellow]lab {lab_id}: its state file is damaged ({escape(damaged.reason)}); "
                f"{verb} from the cloud's tags[/yellow]",
                soft_wrap=True,
            )
    lab_ctx = lifecycle.context(cloud, state, load(state.scenario))
    if not dry_run:
        from gdlab.cli import signals

        with signals.interruptible():  # a prompt only waits: a signal ends it at once
            confirm_billable(cloud, yes, f"gdlab will delete lab {lab_id}")
    if out:
        verb = "Would delete" if dry_run else "Tearing down"
        out.print(f"[bold]{verb} lab {lab_id}[/bold] on {cloud.target} {cloud.region}")
    events = lifecycle.teardown(
        lab_ctx,
        store=store,
        dry_run=dry_run,
        progress=(lambda e: step_line(out, e)) if out else (lambda e: None),
        cancel=cancel,
    )
    if out:
        deleted = sum(1 for e in events if e.status in ("deleted", "would-delete"))
        if not events:
            out.print(f"lab {lab_id}: nothing left to delete")
        elif dry_run:
            out.print(f"{deleted} resource(s) would be deleted; rerun without --dry-run")
        else:
            out.print(f"[bold green]lab {lab_id} torn down[/bold green]: {deleted} deleted")
    return {
        "lab": lab_id,
        "dry_run": dry_run,
        "actions": [
            {"key": e.key, "id": e.id, "status": e.status, "detail": e.detail} for e in events
        ],
    }


def _set_aside(store, lab_id, damaged, cloud, dry_run: bool, out):  # type: ignore[no-untyped-def]
    """A damaged lab with nothing of it in the cloud: its file goes aside (kept, renamed),
    so `gdlab labs` no longer lists it."""
    from rich.markup import escape

    aside = None if dry_run else store.set_aside(lab_id).name
    if out:
        kept = "would be set aside" if dry_run else f"is kept as {aside}"
        out.print(
            f"lab {lab_id}: nothing of it in {cloud.target} {cloud.region}; its damaged state "
            f"file ({escape(damaged.reason)}) {kept}",
            soft_wrap=True,
        )
    return {"lab": lab_id, "dry_run": dry_run, "actions": [], "damaged": damaged.reason,
            "set_aside": aside}


def _forget(state, dry_run: bool, out):  # type: ignore[no-untyped-def]
    """A local lab whose local cloud is gone: its resources went with it; forget them."""
    gone = [r for r in state.resources if r.status == "created"]
    detail = "gone with its local cloud"
    if not dry_run:
        for res in gone:
            res.status = "deleted"
        state.set_phase("torn-down", "forgotten: the local cloud that held the lab is gone")
    if out:
        out.print(
            f"lab {state.lab} {'would be forgotten' if dry_run else 'forgotten'}: the local "
            f"cloud that held it is gone, and its {len(gone)} resource(s) with it"
        )
    status = "would-delete" if dry_run else "deleted"
    return {
        "lab": state.lab,
        "dry_run": dry_run,
        "actions": [
            {"key": r.key, "id": r.id, "status": status, "detail": detail} for r in gone
        ],
    }
