"""gdlab scenarios, labs, status: what gdlab knows, read-only."""

from __future__ import annotations

import typer

from gdlab.cli.common import console, obj, print_json


def register(app: typer.Typer) -> None:
    app.command("scenarios")(scenarios)
    app.command("labs")(labs)
    app.command("status")(status)


def scenarios(
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the scenarios gdlab can run.

    \b
    Example: gdlab scenarios
    """
    from gdlab.scenario import list_scenarios

    found = list_scenarios()
    if json_out:
        print_json(
            [{"name": s.name, "title": s.title, "finding_type": s.finding_type,
              "finding_types": list(s.finding_types)} for s in found]
        )
        return
    from rich.table import Table

    table = Table()
    table.add_column("scenario")
    table.add_column("title")
    table.add_column("finding types", overflow="fold")
    for s in found:
        table.add_row(s.name, s.title, "\n".join(s.finding_types))
    console().print(table)


def labs(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the labs set up from this machine (* marks the current lab); a damaged state
    file is listed as such, with what is wrong.

    Example: gdlab labs
    """
    store = obj(ctx).store
    found, damaged = store.scan()
    current = store.current()
    if json_out:
        rows = [
            {
                "lab": s.lab,
                "scenario": s.scenario,
                "target": s.target,
                "region": s.region,
                "phase": s.phase,
                "current": s.lab == current,
                "created_at": s.created_at,
            }
            for s in found
        ]
        rows += [
            {
                "lab": d.lab,
                "scenario": None,
                "target": None,
                "region": None,
                "phase": "damaged",
                "current": d.lab == current,
                "created_at": None,
                "damaged": d.reason,
            }
            for d in damaged
        ]
        print_json(rows)
        return
    from gdlab.render.lab import labs_table

    labs_table(console(), found, current, damaged)


def status(
    ctx: typer.Context,
    lab: str = typer.Option(None, "--lab", help="Lab id (default: the current lab)."),
    json_out: bool = typer.Option(False, "--json", help="Print the lab state as JSON."),
) -> None:
    """Show a lab's phase, resources and timeline.

    Example: gdlab status --lab gd-1a2b3c --json
    """
    state = obj(ctx).store.resolve(lab)
    from gdlab.render.lab import status_view

    if json_out:
        print_json(state.to_dict())
    else:
        status_view(console(), state)
