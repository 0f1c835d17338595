"""Rich views of labs: step progress lines, the status page, the list of labs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

STATUS_STYLE = {
    "created": ("✓", "green"),
    "found": ("✓", "green"),
    "configured": ("✓", "green"),
    "adopted": ("↺", "cyan"),
    "shared": ("↺", "cyan"),
    "exists": ("·", "dim"),
    "deleted": ("✗", "yellow"),
    "kept": ("↺", "cyan"),
    "would-delete": ("-", "yellow"),
    "failed": ("!", "bold red"),
}

def ready_line(state: Any, seconds: float) -> str:
    """The line setup ends with: how many resources, and how many it did not make."""
    live = [r for r in state.resources if r.status == "created"]
    kept = {o: sum(1 for r in live if r.ownership == o) for o in ("adopted", "shared")}
    others = ", ".join(f"{n} {o}" for o, n in kept.items() if n) or "0 adopted"
    return (
        f"[bold green]lab {state.lab} ready[/bold green] in {seconds:.1f}s: "
        f"{len(live)} resources ({others}). Next: gdlab trigger"
    )


PHASE_STYLE = {
    "setting-up": "yellow",
    "ready": "cyan",
    "triggered": "magenta",
    "detected": "bold magenta",
    "isolated": "bold green",
    "revoked": "bold green",
    "disabled": "bold green",
    "restored": "bold green",
    "verified": "bold green",
    "torn-down": "dim",
}


def step_line(console: Console, event: Any) -> None:
    mark, style = STATUS_STYLE.get(event.status, ("?", "white"))
    elapsed = f"{event.elapsed:6.2f}s" if event.elapsed else " " * 7
    ident = event.id or ""
    detail = f"  [dim]{escape(event.detail)}[/dim]" if event.detail else ""
    console.print(
        f" [{style}]{mark}[/{style}] {elapsed}  {event.label:<44} [{style}]{event.status:<12}[/]"
        f" [bold]{ident}[/bold]{detail}",
        soft_wrap=True,
    )


def _short_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return iso


def status_view(console: Console, state: Any) -> None:
    phase_style = PHASE_STYLE.get(state.phase, "white")
    console.print(
        f"[bold]lab {state.lab}[/bold]  scenario [bold]{state.scenario}[/bold]  "
        f"target [bold]{state.target}[/bold]  region [bold]{state.region}[/bold]  "
        f"account {state.account or '?'}"
    )
    console.print(f"phase: [{phase_style}]{state.phase}[/{phase_style}]")
    from gdlab.lab.plan import plan_for
    from gdlab.scenario import ScenarioError, UsageError, load

    try:
        steps = plan_for(load(state.scenario)).steps
    except (ScenarioError, UsageError):  # a lab of a scenario this gdlab no longer has
        steps = ()
    order = {step.key: index for index, step in enumerate(steps)}
    table = Table(title="Resources", title_justify="left", show_lines=False, expand=False)
    table.add_column("resource", no_wrap=True)
    table.add_column("id", overflow="fold")
    table.add_column("status", no_wrap=True)
    for res in sorted(state.resources, key=lambda r: order.get(r.key, len(order))):
        style = {"created": "green", "pending": "yellow", "deleted": "dim"}.get(res.status, "")
        adopted = f" ({res.ownership})" if res.ownership != "created" else ""
        table.add_row(res.key, res.id or "-", f"[{style}]{res.status}[/{style}]{adopted}")
    console.print(table)
    timeline = Table(title="Timeline", title_justify="left")
    timeline.add_column("time (UTC)", style="dim")
    timeline.add_column("event", overflow="fold")
    for event in state.timeline[-30:]:
        style = "red" if event.kind == "error" else ("bold" if event.phase else "")
        message = escape(event.message)  # cloud text may hold [brackets]
        timeline.add_row(_short_time(event.time), f"[{style}]{message}[/]" if style else message)
    console.print(timeline)


def labs_table(
    console: Console, labs: list[Any], current: str | None, damaged: list[Any] = ()
) -> None:
    if not labs and not damaged:
        console.print("no labs yet — 'gdlab setup' creates one, 'gdlab run' runs the whole lab")
        return
    table = Table()
    table.add_column("lab", no_wrap=True)
    table.add_column("scenario", overflow="fold")
    table.add_column("target")
    table.add_column("region", no_wrap=True)
    table.add_column("phase", no_wrap=True)
    table.add_column("live", justify="right")
    table.add_column("created (UTC)", style="dim", no_wrap=True)
    for state in labs:
        live = sum(1 for r in state.resources if r.status == "created")
        mark = "* " if state.lab == current else "  "
        style = PHASE_STYLE.get(state.phase, "white")
        table.add_row(
            mark + state.lab,
            state.scenario,
            state.target,
            state.region,
            f"[{style}]{state.phase}[/{style}]",
            str(live),
            state.created_at[5:16].replace("T", " "),
        )
    for bad in damaged:
        mark = "* " if bad.lab == current else "  "
        shown = escape(mark + repr(bad.lab)[1:-1])  # a hostile name shows its \n, never acts
        table.add_row(shown, "", "", "", "[bold red]damaged[/bold red]", "", "")
    console.print(table)
    for bad in damaged:
        console.print(
            f"[red]{escape(repr(bad.lab)[1:-1])}[/red]: {escape(bad.reason)} — {escape(bad.hint)}",
            soft_wrap=True,
        )

