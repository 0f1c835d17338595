"""gdlab run: the whole incident in one go — setup, trigger, watch, verify, teardown.

Options, usage errors, signals and rendering live here; the run itself is gdlab.lab.run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import typer
from rich.markup import escape

from gdlab.cli import signals
from gdlab.cli.common import (
    console,
    err_console,
    interrupt_explained,
    obj,
    print_json,
    writable,
)
from gdlab.errors import UsageError
from gdlab.lab.run import Declined, RunEvents, RunReport


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def _local_mails(cloud: Any, state: Any) -> list[dict[str, Any]] | None:
    """The lab's e-mails as the local cloud kept them (on AWS they go to inboxes)."""
    topic = state.live("sns-topic")
    if not cloud.is_local or not topic:
        return None
    from gdlab.cli.mail import lab_mails

    try:
        return lab_mails(cloud, topic.id)
    except Exception:  # the summary is still useful without the e-mails
        return None


def run(
    ctx: typer.Context,
    scenario: str = typer.Option(None, "--scenario",
                                 help="Scenario to run (default: compromised-ec2)."),
    every: bool = typer.Option(False, "--all",
                               help="Run every scenario, each in a lab of its own."),
    parallel: int = typer.Option(1, "--parallel", min=1, max=16,
                                 help="With --all: how many scenarios run side by side "
                                      "(within the Elastic IP quota)."),
    lab: str = typer.Option(None, "--lab", help="Lab id (default: a new gd-xxxxxx)."),
    email: str = typer.Option(None, "--email", help="Also e-mail the alerts to this address."),
    keep: bool = typer.Option(False, "--keep", help="Keep the lab afterwards (no teardown)."),
    timeout: str = typer.Option(None, "--timeout", help="Watch deadline, e.g. 90s or 20m."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before creating on AWS."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's report as JSON."),
    junit: Path = typer.Option(None, "--junit",
                               help="Also write JUnit XML: one test suite per scenario run."),
    report_file: Path = typer.Option(
        None, "--report",
        help="Also write the incident as one HTML file (gathered before teardown; with "
             "--all, a section per scenario)."),
    evidence_json: Path = typer.Option(None, "--evidence-json", hidden=True,
                                       help="Write the report's evidence as JSON "
                                            "(run --all --parallel reads it)."),
) -> None:
    """Run the whole incident: setup -> trigger -> watch -> verify -> teardown, then one
    summary (timeline, e-mails, verify table). Teardown runs even when a step fails, and
    on Ctrl-C, SIGTERM or SIGHUP (exit code 130): the calls in flight finish first; the
    same signal again stops the teardown and names what is left.

    \b
    Example: gdlab run            (local cloud, no AWS account needed)
    Example: gdlab run --all --junit runs.xml
    Example: gdlab run --all --parallel 4
    Example: gdlab run --report incident.html
    Example: gdlab run --target aws --region us-east-1 --yes --json
    """
    from gdlab.cli.detect import parse_duration
    from gdlab.cli.setup import validate_email
    from gdlab.lab import run as core
    from gdlab.lab.state import validate_lab_id
    from gdlab.scenario import DEFAULT_SCENARIO, list_scenarios, load

    # Bad input is a usage error (exit 2) before anything is created or started.
    seconds = parse_duration(timeout)
    if every and (scenario or lab):
        raise UsageError("--all runs every scenario, each in a new lab of its own",
                         "leave out --scenario and --lab, or leave out --all")
    if parallel > 1 and not every:
        raise UsageError("--parallel runs the scenarios of --all side by side",
                         "add --all, or leave out --parallel")
    if lab:
        validate_lab_id(lab)
    validate_email(email)
    load(scenario or DEFAULT_SCENARIO)
    writable(junit, "JUnit XML")
    writable(report_file, "the report")
    app = obj(ctx)
    if every:
        names = [s.name for s in list_scenarios()]
        if parallel > 1:
            return _side_by_side(app, names, parallel, yes=yes, json_out=json_out, junit=junit,
                                 report_file=report_file, email=email, keep=keep,
                                 timeout=seconds)
        return _run_all(app, names, email=email, keep=keep, timeout=seconds, yes=yes,
                        json_out=json_out, junit=junit, report_file=report_file)
    scenario = scenario or DEFAULT_SCENARIO
    # On the local target the background local cloud serves the run, as it serves every
    # command (started if needed): its moto backends stay warm from one run to the next.
    # SIGINT, SIGTERM and SIGHUP, at any phase: no new step or phase starts, the calls in
    # flight finish and are journaled, the lab is torn down, exit code 130; the same signal
    # again stops the teardown and names what is left (cli/signals.py).
    with signals.handling(lab, keep=keep) as sig:
        view = RunView(json_out, yes)
        report = core.run(
            app.cloud, app.store, scenario, lab=lab, email=email, keep=keep, timeout=seconds,
            sig=sig, events=view, mails=_local_mails,
            evidence=report_file is not None or evidence_json is not None,
        )
        _summary(report, view.out, json_out)
        _write_junit(junit, [(scenario, report)])
        _write_report(report_file, _evidences([report]), view.out)
        _write_evidence(evidence_json, report)
        if json_out:
            print_json(report.to_dict())
    if sig.interrupted:
        interrupt_explained()
        raise typer.Exit(130)
    if not report.passed:
        raise typer.Exit(1)


def _write_report(path: Path | None, evidences: list[Any], out: Any) -> None:
    """The incident report of these runs' evidence, one section each (a failed write is one
    line: the run itself is over)."""
    if path is None:
        return
    from gdlab.cli.report import ReportWriteError, write

    try:
        write(path, evidences)
    except ReportWriteError as exc:
        err_console().print(f"[red]{escape(str(exc))}[/red]")
    else:
        out.print(f"report: {escape(str(path))}")


def _evidences(runs: list[RunReport]) -> list[Any]:
    return [r.evidence for r in runs if r.evidence is not None]


def _write_evidence(path: Path | None, report: RunReport) -> None:
    """For `run --all --parallel`: this run's evidence, for the parent's one report."""
    if path is None or report.evidence is None:
        return
    import json

    path.write_text(json.dumps(report.evidence.to_dict(), default=str))


def _write_junit(path: Path | None, runs: list[tuple[str, RunReport]]) -> None:
    if path is None:
        return
    from gdlab.render.incident import runs_junit_xml

    try:
        path.write_text(runs_junit_xml(runs))
    except OSError as exc:
        err_console().print(f"[red]could not write {escape(str(path))}: {exc.strerror}[/red]")


def _run_all(app: Any, names: list[str], *, yes: bool, json_out: bool, junit: Path | None,
             report_file: Path | None, **options: Any) -> None:
    """`gdlab run --all`: each scenario's run and summary as `gdlab run` shows them, then one
    table of them all; exit 0 only when every scenario passed."""
    from gdlab.lab import run as core
    from gdlab.render.incident import all_runs_table

    with signals.handling(None, keep=options["keep"]) as sig:
        views: dict[str, RunView] = {}

        def events_for(name: str) -> RunView:
            views[name] = RunView(json_out, yes)
            if not json_out:
                views[name].out.rule(f"[bold]scenario {name}", characters="═")
            return views[name]

        found = core.run_all(app.cloud, app.store, names, events_for=events_for, sig=sig,
                             mails=_local_mails, evidence=report_file is not None, **options)
        for name, report in found.runs:
            if not json_out:
                _summary(report, views[name].out, json_out)
        _write_junit(junit, found.runs)
        out = err_console() if json_out else console()
        _write_report(report_file, _evidences([r for _n, r in found.runs]), out)
        out.print(all_runs_table(found.to_dict()))
        line = (f"gdlab run --all {'PASSED' if found.passed else 'FAILED'}: "
                f"{sum(r.passed for _n, r in found.runs)}/{len(names)} scenarios passed in "
                f"{found.seconds:.1f}s")
        out.print(f"[bold {'green' if found.passed else 'red'}]{escape(line)}[/]")
        if json_out:
            print_json(found.to_dict())
    if sig.interrupted:
        interrupt_explained()
        raise typer.Exit(130)
    if not found.passed:
        raise typer.Exit(1)


def _side_by_side(app: Any, names: list[str], parallel: int, *, yes: bool, json_out: bool,
                  junit: Path | None, report_file: Path | None, **options: Any) -> None:
    """`gdlab run --all --parallel N`: the runs as processes of their own (see
    cli/run_side_by_side.py), then the same table, JSON and JUnit as one after another."""
    from gdlab.cli import run_side_by_side
    from gdlab.cli.setup import confirm_billable
    from gdlab.lab.plan import plan_for
    from gdlab.render.incident import all_runs_table, merged_junit_xml
    from gdlab.scenario import load

    out = err_console() if json_out else console()
    cloud = app.cloud()
    confirm_billable(cloud, yes, f"gdlab will create {len(names)} labs side by side")
    quota = cloud.preflight(eips_needed=0)
    limit, in_use = quota.get("eip_limit"), quota.get("eips_in_use") or 0
    free = None if limit is None else max(0, limit - in_use)
    needs = {name: plan_for(load(name)).elastic_ips for name in names}
    out.print(f"[bold]Running {len(names)} scenarios, up to {parallel} side by side[/bold]"
              + (f" ({free} Elastic IPs free; they need {sum(needs.values())})"
                 if free is not None else ""))
    with signals.handling(None, keep=options["keep"], teardown_only=False) as sig:
        found, junits, evidences = run_side_by_side.run(
            app, names, needs, free, parallel, sig, out.print, options,
            evidence=report_file is not None)
        if junit is not None:
            try:
                junit.write_text(merged_junit_xml(junits))
            except OSError as exc:
                err_console().print(f"[red]could not write {escape(str(junit))}: "
                                    f"{exc.strerror}[/red]")
        from gdlab.lab.evidence import from_dict

        _write_report(report_file, [from_dict(d) for d in evidences], out)
        out.print(all_runs_table(found))
        passed = sum(bool(r.get("passed")) for r in found["scenarios"])
        line = (f"gdlab run --all {'PASSED' if found['passed'] else 'FAILED'}: "
                f"{passed}/{len(names)} scenarios passed in {found['seconds']:.1f}s, "
                f"side by side")
        out.print(f"[bold {'green' if found['passed'] else 'red'}]{escape(line)}[/]")
        if json_out:
            print_json(found)
    if sig.interrupted:
        interrupt_explained()
        raise typer.Exit(130)
    if not found["passed"]:
        raise typer.Exit(1)


class RunView(RunEvents):
    """What `gdlab run` shows while it goes: with --json only setup's lines, on stderr
    (stdout stays pure JSON)."""

    def __init__(self, json_out: bool, yes: bool):
        self.json_out, self.yes = json_out, yes
        self.out = err_console() if json_out else console()
        self.current = ""
        self._result: Any = None

    def phase(self, name: str) -> None:
        self.current = name
        if not self.json_out:
            self.out.rule(f"[bold]{name}")

    def failed(self, name: str, error: str) -> None:
        self.out.print(f"[bold red]{name} failed:[/bold red] {escape(error)}")

    def interrupted(self, name: str, signal: str | None, message: str | None) -> None:
        said = f": {escape(message)}" if message is not None else ""
        self.out.print(f"[bold yellow]{name} interrupted[/bold yellow] ({signal}){said}")

    def confirm(self, cloud: Any) -> None:
        from gdlab.cli.setup import confirm_billable

        try:
            confirm_billable(cloud, self.yes, "gdlab will create the lab")
        except (click.exceptions.Exit, typer.Exit) as exc:  # the user said no
            raise Declined from exc

    def named(self, lab: str) -> None:
        signals.name_lab(lab)

    def opened(self, state: Any, scenario: Any, cloud: Any, resuming: bool) -> None:
        self.out.print(
            f"[bold]{'Resuming' if resuming else 'Setting up'} lab {state.lab}[/bold] "
            f"({scenario.title}) on {cloud.target} {cloud.region}"
            + (f" via {cloud.endpoint_url}" if cloud.endpoint_url else "")
        )

    def progress(self, event: Any) -> None:
        from gdlab.render.lab import step_line

        if self.json_out and self.current == "teardown":
            return  # with --json, setup's lines go to stderr; the teardown's are not shown
        step_line(self.out, event)

    def ready(self, state: Any, seconds: float) -> None:
        from gdlab.render.lab import ready_line

        self.out.print(ready_line(state, seconds))

    def triggered(self, result: Any) -> None:
        if not self.json_out:
            from gdlab.render.incident import trigger_view

            trigger_view(self.out, result)

    @contextlib.contextmanager
    def watching(self) -> Iterator[Any]:
        """Hops as they are seen: a live table on a terminal, plain lines in a CI log."""
        from gdlab.render.incident import PlainProgress, hops_table, watch_summary

        self._result = None
        if self.json_out:
            yield None
            return
        out = console()
        if not out.is_terminal:
            yield PlainProgress(out).hops
            out.print(hops_table(self._result.hops, spinning=False))
            watch_summary(out, self._result)
            return
        from rich.live import Live

        with Live(hops_table([]), console=out, refresh_per_second=10, transient=False) as live:
            self._live = live
            yield lambda hops: live.update(hops_table(hops))
        watch_summary(out, self._result)

    def watched(self, result: Any) -> None:
        self._result = result
        if not self.json_out and console().is_terminal:
            from gdlab.render.incident import hops_table

            self._live.update(hops_table(result.hops, spinning=False))

    def waiting(self) -> Any:
        from gdlab.cli.detect import waiting_shown

        return waiting_shown(self.out)


def _summary(report: RunReport, out: Any, json_out: bool) -> None:
    """The timeline, e-mails and verify table, then one verdict line."""
    from gdlab.render import incident

    state = report.state
    if not json_out and state is not None:
        out.rule("[bold]summary")
        out.print(incident.timeline_table(state, report.since))
        if report.emails:
            from gdlab.cli.mail import render as render_mails

            render_mails(report.emails, report.topic_arn)
        if report.verify is not None:
            incident.verify_view(out, report.verify)
    if report.interrupted:
        # One line, last, on stderr (stdout stays pure JSON with --json): what is left.
        err_console().print(
            f"[bold yellow]gdlab run interrupted ({report.interrupted})[/bold yellow]"
            f"{_left(report)}",
            soft_wrap=True,
        )
    elif not json_out and state is not None:
        style = "bold green" if report.passed else "bold red"
        verdict_word = "PASSED" if report.passed else "FAILED"
        failed = report.failed
        out.print(
            f"[{style}]gdlab run {verdict_word}[/{style}] in {report.seconds:.2f}s, "
            f"{report.api_calls} AWS API calls"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + ("" if not report.keep else f"; lab {state.lab} kept (gdlab teardown removes it)")
        )


def _left(report: RunReport) -> str:
    """After an interruption: what became of the lab, as the end of one line."""
    if report.state is None:
        return ": stopped before a lab was opened, nothing was created"
    lab = report.state.lab
    if report.keep:
        return f": lab {lab} kept (--keep) — 'gdlab teardown --lab {lab}' removes it"
    teardown = report.step("teardown")
    if teardown is None:
        return f": lab {lab} was not torn down — 'gdlab teardown --lab {lab}' removes it"
    if not teardown.ok:
        return f": {escape(teardown.error or '')}"
    return f": lab {lab} torn down, nothing of it remains"
