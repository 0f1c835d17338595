"""Rich views of the incident: the ping, the hops as they happen, the verify table, the
JUnit XML a CI system reads, and the run's summary."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table

CHECK_STYLE = {
    "pass": ("PASS", "bold green"),
    "fail": ("FAIL", "bold red"),
    "inconclusive": ("INCONCLUSIVE", "bold yellow"),
}


def ping_view(console: Console, result: Any) -> None:
    style = "green" if result.delivered else "red"
    console.print(
        f"[bold]{result.command}[/bold] on {result.instance_id} via SSM "
        f"(command {result.command_id}): [{style}]{result.status}[/{style}]"
        f" in {result.seconds:.2f}s"
    )
    text = (result.output or result.error_output).strip()
    if text:
        console.print(Panel(escape(text), title="output", title_align="left", expand=False))


def hops_table(hops: list[Any], spinning: bool = True) -> Table:
    table = Table(title="Incident", title_justify="left")
    table.add_column("hop")
    table.add_column("")
    table.add_column("seen at (UTC)", style="dim")
    table.add_column("after trigger", justify="right")
    table.add_column("detail", overflow="fold")
    for hop in hops:
        if hop.seen:
            mark: Any = "[green]✓[/green]"
        elif spinning:
            mark = Spinner("dots", style="yellow")
        else:
            mark = "[red]✗[/red]"
        at = hop.at[11:23] if hop.at else ""
        elapsed = f"{hop.elapsed:.2f}s" if hop.elapsed is not None else ""
        table.add_row(hop.label, mark, at, elapsed, escape(hop.detail))
    return table


def watch_summary(console: Console, result: Any) -> None:
    if result.complete:
        console.print(f"[bold green]every hop seen[/bold green] in {result.seconds:.2f}s")
        return
    console.print(
        f"[bold red]deadline reached[/bold red] after {result.seconds:.0f}s; what to check:"
    )
    for hint in result.hints:
        console.print(f"  • {escape(hint)}", soft_wrap=True)


def verify_table(verdict: Any) -> Table:
    table = Table(title=f"Verify lab {verdict.lab}", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("evidence", overflow="fold")
    for check in verdict.checks:
        label, style = CHECK_STYLE[check.status]
        table.add_row(
            f"{check.title}\n[dim]{check.name}[/dim]", f"[{style}]{label}[/]", check.evidence
        )
    return table


def verify_view(console: Console, verdict: Any) -> None:
    console.print(verify_table(verdict))
    passed = sum(c.passed for c in verdict.checks)
    style = "bold green" if verdict.passed else "bold red"
    console.print(f"[{style}]{passed}/{len(verdict.checks)} checks passed[/{style}]")


def junit_xml(verdict: Any, seconds: float = 0.0) -> str:
    """JUnit XML: one testcase per check; inconclusive counts as a failure with its reason."""
    failures = sum(1 for c in verdict.checks if not c.passed)
    suite = ET.Element(
        "testsuite",
        name=f"gdlab.verify.{verdict.lab}",
        tests=str(len(verdict.checks)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    for check in verdict.checks:
        case = ET.SubElement(suite, "testcase", classname=f"gdlab.{verdict.lab}", name=check.name)
        if not check.passed:
            failure = ET.SubElement(
                case, "failure", message=f"{check.status}: {check.title}", type=check.status
            )
            failure.text = check.evidence
        out = ET.SubElement(case, "system-out")
        out.text = check.evidence
    suites = ET.Element("testsuites", tests=str(len(verdict.checks)), failures=str(failures))
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")


def timeline_table(state: Any, since: str | None = None) -> Table:
    from datetime import datetime

    table = Table(title=f"Timeline of lab {state.lab}", title_justify="left")
    table.add_column("+s", justify="right", style="dim")
    table.add_column("phase")
    table.add_column("event", overflow="fold")
    events = [e for e in state.timeline if since is None or e.time >= since]
    if not events:
        return table
    start = datetime.fromisoformat(events[0].time.replace("Z", "+00:00"))
    for event in events:
        at = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
        message = escape(event.message)
        table.add_row(
            f"{(at - start).total_seconds():.2f}",
            event.phase or "",
            f"[red]{message}[/red]" if event.kind == "error" else message,
        )
    return table
