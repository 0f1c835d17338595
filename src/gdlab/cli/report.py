"""gdlab report: a lab's incident as one self-contained HTML file, for sharing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gdlab.cli.common import err_console, obj, writable
from gdlab.errors import GdlabError, LabCloudGone


def register(app: typer.Typer) -> None:
    app.command("report")(report)


class ReportWriteError(GdlabError):
    """The report file could not be written."""


def report(
    ctx: typer.Context,
    lab: str = typer.Option(None, "--lab", help="Lab id (default: the current lab)."),
    output: Path = typer.Option(
        None, "--output", "-o",
        help="Where to write the HTML (default: gdlab-report-<lab>.html here).",
        show_default=False,
    ),
    verify: bool = typer.Option(
        True, "--verify/--no-verify",
        help="Run the scenario's checks for the verify table (read-only; the lab's phase "
             "is left as it is).",
    ),
) -> None:
    """Write the lab's incident as one self-contained HTML file: the architecture, the
    timeline, the finding, the e-mails, the verify checks and the isolation. A lab that was
    torn down still gives a report, from its state.

    \b
    Example: gdlab report --lab gd-1a2b3c -o incident.html
    """
    from gdlab.lab import evidence
    from gdlab.scenario import load

    writable(output, "the report")
    app = obj(ctx)
    state = app.store.resolve(lab)
    scenario = load(state.scenario)
    if state.phase == "torn-down":
        found = evidence.from_state(state, scenario)
    else:
        try:
            cloud = app.cloud_for_lab(state)
        except LabCloudGone:
            found = evidence.from_state(state, scenario)
            found.notes.append("the local cloud that held this lab is gone: the report is "
                               "made from the lab's state only")
        else:
            from gdlab.lab.lifecycle import context

            lab_ctx = context(cloud, state, scenario)
            verdict = checks_of(app, lab_ctx) if verify and state.phase not in (
                "setting-up", "ready") else None
            found = evidence.gather(lab_ctx, verdict=verdict)
    path = output if output is not None else Path(f"gdlab-report-{state.lab}.html")
    write(path, [found])
    typer.echo(f"wrote {path}")
    if found.notes:
        for note in found.notes:
            err_console().print(f"[dim]note: {note}[/dim]")


def write(path: Path, evidences: list[Any], title: str | None = None) -> None:
    """The report of these labs' evidence, as one HTML file at `path`."""
    from gdlab.render.report import html

    try:
        path.write_text(html(evidences, title), encoding="utf-8")
        path.chmod(0o644)  # a report holds no secret: it is meant to be shared
    except OSError as exc:
        raise ReportWriteError(f"cannot write the report to {path}: "
                               f"{(exc.strerror or str(exc)).lower()}") from None


def checks_of(app, lab_ctx):  # type: ignore[no-untyped-def]
    """The scenario's checks as verify runs them, under the lab's lock, without recording
    a verdict in the lab's timeline."""
    from gdlab.lab.verify import Verdict, scenario_proof

    app.store.acquire(lab_ctx.lab)
    make, properties = scenario_proof(lab_ctx)
    return Verdict(lab_ctx.lab, make(lab_ctx, None), properties)
