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


def trigger_view(console: Console, result: Any) -> None:
    """A scenario's trigger result (gdlab.lab.trigger.TriggerResult)."""
    already = result.already_happened()
    if already:
        console.print(f"{escape(already)} ([yellow]skipped[/yellow])")
        return
    style = "green" if result.delivered else "red"
    console.print(
        f"[bold]{escape(result.headline())}[/bold]: [{style}]{result.status}[/{style}]"
        f" in {result.seconds:.2f}s"
    )
    text = result.output_text()
    if text:
        console.print(Panel(escape(text), title="output", title_align="left", expand=False))


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def bar(done: float, width: int = 10) -> str:
    filled = max(0, min(width, int(done * width)))
    return "█" * filled + "░" * (width - filled)


def hops_table(hops: list[Any], spinning: bool = True) -> Table:
    table = Table(title="Incident", title_justify="left")
    table.add_column("hop")
    table.add_column("")
    table.add_column("seen at (UTC)", style="dim")
    table.add_column("after trigger", justify="right")
    table.add_column("usually", justify="right", style="dim")
    table.add_column("detail", overflow="fold")
    for hop in hops:
        if hop.seen:
            mark: Any = "[green]✓[/green]"
        elif spinning:
            mark = Spinner("dots", style="yellow")
        else:
            mark = "[red]✗[/red]"
        at = hop.at[11:23] if hop.at else ""
        usually = f"~{duration(hop.expected)}" if hop.expected else ""
        if hop.elapsed is not None:
            elapsed = f"{hop.elapsed:.2f}s"
        elif spinning and hop.expected:
            elapsed = f"[yellow]{bar(hop.waited / hop.expected)}[/yellow] {duration(hop.waited)}"
        else:
            elapsed = ""
        table.add_row(hop.label, mark, at, elapsed, usually, escape(hop.detail))
    return table


class PlainProgress:
    """Waits told in plain lines, for output that is not a terminal (a CI log): each hop
    when it is seen, and every `every` seconds what is still awaited against its usual time."""

    def __init__(self, console: Console, every: float = 30.0):
        import time

        self.console = console
        self.every = every
        self.clock = time.monotonic
        self.last = self.clock()
        self.told: set[str] = set()

    def hops(self, hops: list[Any]) -> None:
        for hop in hops:
            if hop.seen and hop.key not in self.told:
                self.told.add(hop.key)
                self.console.print(
                    f"seen: {hop.label} after {duration(hop.elapsed or 0)} — {escape(hop.detail)}",
                    soft_wrap=True,
                )
        waiting = [h for h in hops if not h.seen]
        if waiting and self.clock() - self.last >= self.every:
            self.last = self.clock()
            self.console.print(
                "waiting for: "
                + "; ".join(
                    f"{h.label} ({duration(h.waited)} of usually ~{duration(h.expected or 0)})"
                    for h in waiting
                ),
                soft_wrap=True,
            )

    def wait(self, what: str, waited: float, allowed: float) -> None:
        if self.clock() - self.last >= self.every:
            self.last = self.clock()
            self.console.print(
                f"waiting for {escape(what)}: {duration(waited)} of up to {duration(allowed)}",
                soft_wrap=True,
            )


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
    inconclusive = sum(c.status == "inconclusive" for c in verdict.checks)
    style = "bold green" if verdict.passed else "bold red"
    line = f"{passed}/{len(verdict.checks)} checks passed"
    if inconclusive:
        line += f", {inconclusive} inconclusive"
    proven = verdict.proven()
    line += f"; {sum(bool(by) for by in proven.values())}/{len(proven)} properties proven"
    if verdict.unproven:
        line += f" (not proven: {', '.join(verdict.unproven)})"
    console.print(f"[{style}]{escape(line)}[/{style}]", soft_wrap=True)


def junit_suite(verdict: Any, seconds: float = 0.0, name: str | None = None) -> ET.Element:
    """One test suite: a testcase per check (inconclusive is skipped, with its reason), and a
    `verdict` testcase that fails when a property is not proven by any check."""
    failed = [c for c in verdict.checks if c.status == "fail"]
    skipped = [c for c in verdict.checks if c.status == "inconclusive"]
    failures = len(failed) + (1 if verdict.unproven else 0)
    total = len(verdict.checks) + 1
    suite = ET.Element(
        "testsuite",
        name=name or f"gdlab.verify.{verdict.lab}",
        tests=str(total),
        failures=str(failures),
        errors="0",
        skipped=str(len(skipped)),
        time=f"{seconds:.3f}",
    )
    for check in verdict.checks:
        case = ET.SubElement(suite, "testcase", classname=f"gdlab.{verdict.lab}", name=check.name)
        if check.status == "fail":
            failure = ET.SubElement(case, "failure", message=f"fail: {check.title}", type="fail")
            failure.text = check.evidence
        elif check.status == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {check.evidence}")
        out = ET.SubElement(case, "system-out")
        out.text = check.evidence
    case = ET.SubElement(suite, "testcase", classname=f"gdlab.{verdict.lab}", name="verdict")
    proven = verdict.proven()
    summary = "; ".join(f"{prop}: {', '.join(by) or 'not proven'}" for prop, by in proven.items())
    if verdict.unproven:
        failure = ET.SubElement(
            case,
            "failure",
            message=f"not proven: {', '.join(verdict.unproven)}",
            type="unproven",
        )
        failure.text = summary
    ET.SubElement(case, "system-out").text = summary
    return suite


def _document(suites: list[ET.Element]) -> str:
    tests = sum(int(s.get("tests", "0")) for s in suites)
    failures = sum(int(s.get("failures", "0")) for s in suites)
    errors = sum(int(s.get("errors", "0")) for s in suites)
    root = ET.Element("testsuites", tests=str(tests), failures=str(failures))
    if errors:
        root.set("errors", str(errors))
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def junit_xml(verdict: Any, seconds: float = 0.0) -> str:
    """`gdlab verify --junit`: the verdict as one test suite."""
    return _document([junit_suite(verdict, seconds)])


def runs_junit_xml(runs: list[tuple[str, Any]]) -> str:
    """`gdlab run --junit`: one suite per scenario run, named gdlab.run.<scenario>. A run
    that ended before verify is a suite with one errored testcase saying which step failed."""
    suites = []
    for scenario, report in runs:
        name = f"gdlab.run.{scenario}"
        if report.verify is not None:
            suites.append(junit_suite(report.verify, report.seconds, name))
            continue
        suite = ET.Element("testsuite", name=name, tests="1", failures="0", errors="1",
                           skipped="0", time=f"{report.seconds:.3f}")
        case = ET.SubElement(suite, "testcase", classname=f"gdlab.{report.lab or scenario}",
                             name="run")
        broken = next((s for s in report.steps if not s.ok), None)
        why = (f"{broken.step} failed: {broken.error or 'interrupted'}" if broken
               else report.interrupted or "the run ended before verify")
        ET.SubElement(case, "error", message=why, type="run").text = why
        suites.append(suite)
    return _document(suites)


def all_runs_table(found: dict[str, Any]) -> Table:
    """`gdlab run --all`'s last table, from its JSON report (`AllReport.to_dict()`): a row
    per scenario, its hops seen and checks passed."""
    table = Table(title="Every scenario", title_justify="left")
    for column in ("scenario", "lab", "hops seen", "checks passed", "verdict", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for run in found["scenarios"]:
        hops = (run.get("watch") or {}).get("hops") or []
        checks = (run.get("verify") or {}).get("checks") or []
        table.add_row(
            escape(str(run["scenario"])), escape(str(run.get("lab") or "-")),
            f"{sum(bool(h.get('seen')) for h in hops)}/{len(hops)}" if hops else "-",
            f"{sum(c.get('status') == 'pass' for c in checks)}/{len(checks)}" if checks else "-",
            "[green]PASSED[/green]" if run.get("passed") else "[red]FAILED[/red]",
            f"{float(run.get('seconds') or 0):.1f}")
    for name in found["not_run"]:
        table.add_row(escape(name), "-", "-", "-", "[yellow]not run[/yellow]", "-")
    return table


def merged_junit_xml(documents: list[str]) -> str:
    """The suites of several `gdlab run --junit` files (side-by-side runs), in order, as one
    document."""
    suites = []
    for text in documents:
        root = ET.fromstring(text)
        suites.extend(root.findall("testsuite") if root.tag == "testsuites" else [root])
    return _document(suites)


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
