"""gdlab teardown: remove every trace of a lab, from its journal and a tag sweep."""

from __future__ import annotations

import typer

from gdlab.cli.common import console, obj, print_json
from gdlab.errors import GdlabError, LabNotFound, StepFailed, UsageError


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
    Hub are kept. Works from the tag sweep alone if the state file is lost.

    \b
    Example: gdlab teardown --lab gd-1a2b3c --dry-run
    """
    from gdlab.lab import lifecycle
    from gdlab.lab.state import validate_lab_id
    from gdlab.render.lab import step_line
    from gdlab.scenario import load

    if lab and all_labs:
        raise UsageError("--lab and --all exclude each other", "pass one of them")
    app = obj(ctx)
    store = app.store
    if lab:
        validate_lab_id(lab)
    states = []
    if all_labs:
        cloud = app.cloud()
        known = {
            s.lab: s
            for s in store.all()
            if s.target == cloud.target and s.region == cloud.region and s.phase != "torn-down"
        }
        for found in lifecycle.discover_labs(cloud):
            known.setdefault(found, None)
        states = [(name, known[name]) for name in sorted(known)]
    else:
        lab_id = lab or store.current()
        if lab_id is None:
            raise LabNotFound("no current lab", "pass --lab ID, or --all")
        states = [(lab_id, store.load(lab_id) if store.exists(lab_id) else None)]
    if not states:
        if json_out:
            print_json([])
        else:
            console().print("nothing to tear down")
        return
    out = console() if not json_out else None
    report: list[dict] = []
    failures: list[str] = []
    for lab_id, state in states:
        cloud = app.cloud_for_lab(state) if state else app.cloud()
        if state is None:
            state = lifecycle.rebuild_lost_lab(store, cloud, load(), lab_id)
        scenario = load(state.scenario)
        lab_ctx = lifecycle.context(cloud, state, scenario)
        if not dry_run:
            from gdlab.cli.setup import confirm_billable

            confirm_billable(cloud, yes, f"gdlab will delete lab {lab_id}")
        if out:
            verb = "Would delete" if dry_run else "Tearing down"
            out.print(f"[bold]{verb} lab {lab_id}[/bold] on {cloud.target} {cloud.region}")
        try:
            events = lifecycle.teardown(
                lab_ctx,
                store=store,
                dry_run=dry_run,
                progress=(lambda e: step_line(out, e)) if out else (lambda e: None),
            )
        except GdlabError as exc:
            if not all_labs:
                raise
            # --all: one lab's failure must not keep the others alive.
            failures.append(f"{lab_id}: {exc}")
            report.append({"lab": lab_id, "dry_run": dry_run, "error": str(exc)})
            continue
        report.append(
            {
                "lab": lab_id,
                "dry_run": dry_run,
                "actions": [
                    {"key": e.key, "id": e.id, "status": e.status, "detail": e.detail}
                    for e in events
                ],
            }
        )
        if out:
            deleted = sum(1 for e in events if e.status in ("deleted", "would-delete"))
            if not events:
                out.print(f"lab {lab_id}: nothing left to delete")
            elif dry_run:
                out.print(f"{deleted} resource(s) would be deleted; rerun without --dry-run")
            else:
                out.print(f"[bold green]lab {lab_id} torn down[/bold green]: {deleted} deleted")
    if json_out:
        print_json(report if all_labs else report[0])
    if failures:
        raise StepFailed(
            f"{len(failures)} lab(s) not fully torn down: {'; '.join(failures)}",
            "rerun 'gdlab teardown --all' to finish",
        )
