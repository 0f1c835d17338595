"""gdlab run: the whole incident in one go — setup, trigger, watch, verify, teardown."""

from __future__ import annotations

import time
from typing import Any

import click
import typer
from rich.markup import escape

from gdlab.cli import signals
from gdlab.cli.common import console, err_console, interrupt_explained, obj, print_json
from gdlab.errors import Interrupted, describe


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
    scenario: str = typer.Option("compromised-ec2", "--scenario", help="Scenario to run."),
    lab: str = typer.Option(None, "--lab", help="Lab id (default: a new gd-xxxxxx)."),
    email: str = typer.Option(None, "--email", help="Also e-mail the alerts to this address."),
    keep: bool = typer.Option(False, "--keep", help="Keep the lab afterwards (no teardown)."),
    timeout: str = typer.Option(None, "--timeout", help="Watch deadline, e.g. 90s or 20m."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before creating on AWS."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's report as JSON."),
) -> None:
    """Run the whole incident: setup -> trigger -> watch -> verify -> teardown, then one
    summary (timeline, e-mails, verify table). Teardown runs even when a step fails, and
    on Ctrl-C, SIGTERM or SIGHUP (exit code 130): the calls in flight finish first; the
    same signal again stops the teardown and names what is left.

    \b
    Example: gdlab run            (local cloud, no AWS account needed)
    Example: gdlab run --target aws --region us-east-1 --yes --json
    """
    from gdlab.cli.detect import parse_duration
    from gdlab.cli.setup import validate_email
    from gdlab.lab.state import validate_lab_id
    from gdlab.scenario import load

    # Bad input is a usage error (exit 2) before anything is created or started.
    seconds = parse_duration(timeout)
    if lab:
        validate_lab_id(lab)
    validate_email(email)
    load(scenario)
    # On the local target the background local cloud serves the run, as it serves every
    # command (started if needed): its moto backends stay warm from one run to the next.
    # SIGINT, SIGTERM and SIGHUP, at any phase: no new step or phase starts, the calls in
    # flight finish and are journaled, the lab is torn down, exit code 130; the same signal
    # again stops the teardown and names what is left (cli/signals.py).
    with signals.handling(lab, keep=keep) as sig:
        report = _run(ctx, sig, scenario, lab, email, keep, seconds, yes, json_out)
        if json_out:
            print_json(report)
    if sig.interrupted:
        interrupt_explained()
        raise typer.Exit(130)
    if not report["passed"]:
        raise typer.Exit(1)


def _run(ctx, sig, scenario, lab, email, keep, timeout, yes, json_out):  # type: ignore[no-untyped-def]
    from gdlab.cli.setup import run_setup
    from gdlab.render import incident

    out = err_console() if json_out else console()
    started = time.monotonic()
    steps: list[dict[str, Any]] = []
    report: dict[str, Any] = {"passed": False, "steps": steps}

    def step(name: str, fn: Any, interruptible: bool = False) -> Any:
        """One phase. `interruptible`: it only reads and waits in this thread, so a signal
        ends it at once; otherwise a signal lets it finish what it has begun."""
        t0 = time.monotonic()
        if not json_out:
            out.rule(f"[bold]{name}")
        try:
            if interruptible:
                with sig.interruptible():
                    value = fn()
            else:
                value = fn()
        except (KeyboardInterrupt, Interrupted) as exc:
            sig.note()  # a KeyboardInterrupt raised without a signal counts as Ctrl-C
            line = str(exc) if isinstance(exc, Interrupted) else f"interrupted ({sig.interrupted})"
            steps.append(
                {
                    "step": name,
                    "ok": False,
                    "seconds": round(time.monotonic() - t0, 3),
                    "error": line,
                    "interrupted": True,
                }
            )
            said = f": {escape(exc.message)}" if isinstance(exc, Interrupted) else ""
            out.print(f"[bold yellow]{name} interrupted[/bold yellow] ({sig.interrupted}){said}")
            return None
        except (Exception, click.exceptions.Exit) as exc:  # Exit: AWS confirmation declined
            declined = isinstance(exc, (click.exceptions.Exit, typer.Exit))
            line = "declined" if declined else describe(exc)[0]
            steps.append(
                {
                    "step": name,
                    "ok": False,
                    "seconds": round(time.monotonic() - t0, 3),
                    "error": line,
                }
            )
            out.print(f"[bold red]{name} failed:[/bold red] {escape(line)}")
            return None
        steps.append({"step": name, "ok": True, "seconds": round(time.monotonic() - t0, 3)})
        return value

    opened: dict[str, Any] = {}
    made = step(
        "setup",
        lambda: run_setup(
            ctx, lab, scenario, email, yes, quiet=json_out, opened=opened, cancel=sig.stop
        ),
    )
    # A failed setup still leaves the lab it opened, which teardown then removes.
    state = made[0] if made else opened.get("state")
    lab_ctx = made[1] if made else None
    cloud = obj(ctx).cloud()
    report.update(lab=state.lab if state else None, target=cloud.target, region=cloud.region)
    since = state.timeline[0].time if state and state.timeline else None
    verdict = None
    try:
        verdict = _detect(step, sig, report, steps, lab_ctx, timeout, json_out, out)
    finally:
        # Teardown runs whatever happened before it, signals included: nothing billable stays.
        _close(ctx, step, sig, report, cloud, state, lab_ctx, keep, json_out, out)
    report["seconds"] = round(time.monotonic() - started, 3)
    report["api_calls"] = cloud.api_call_count
    report["interrupted"] = sig.interrupted
    report["passed"] = (
        not sig.interrupted
        and all(s["ok"] for s in steps)
        and verdict is not None
        and verdict.passed
    )
    mails = report.get("emails")
    if not json_out and state is not None:
        out.rule("[bold]summary")
        out.print(incident.timeline_table(state, since))
        if mails:
            from gdlab.cli.mail import render as render_mails

            render_mails(mails, state.id_of("sns-topic") if state.live("sns-topic") else "")
        if verdict is not None:
            incident.verify_view(out, verdict)
    if sig.interrupted:
        # One line, last, on stderr (stdout stays pure JSON with --json): what is left.
        err_console().print(
            f"[bold yellow]gdlab run interrupted ({sig.interrupted})[/bold yellow]"
            f"{_left(steps, state, keep)}",
            soft_wrap=True,
        )
    elif not json_out and state is not None:
        style = "bold green" if report["passed"] else "bold red"
        verdict_word = "PASSED" if report["passed"] else "FAILED"
        failed = [s["step"] for s in steps if not s["ok"]]
        out.print(
            f"[{style}]gdlab run {verdict_word}[/{style}] in {report['seconds']:.2f}s, "
            f"{report['api_calls']} AWS API calls"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + ("" if not keep else f"; lab {state.lab} kept (gdlab teardown removes it)")
        )
    return report


def _left(steps: list[dict[str, Any]], state: Any, keep: bool) -> str:
    """After an interruption: what became of the lab, as the end of one line."""
    if state is None:
        return ": stopped before a lab was opened, nothing was created"
    lab = state.lab
    if keep:
        return f": lab {lab} kept (--keep) — 'gdlab teardown --lab {lab}' removes it"
    teardown = next((s for s in steps if s["step"] == "teardown"), None)
    if teardown is None:
        return f": lab {lab} was not torn down — 'gdlab teardown --lab {lab}' removes it"
    if not teardown["ok"]:
        return f": {escape(teardown['error'])}"
    return f": lab {lab} torn down, nothing of it remains"


def _detect(step, sig, report, steps, lab_ctx, timeout, json_out, out):  # type: ignore[no-untyped-def]
    """trigger -> watch -> verify; returns the verdict (None if it never got that far, or
    a signal came first: then no further phase starts)."""
    from gdlab.cli.detect import run_watch
    from gdlab.lab import trigger as trigger_core
    from gdlab.lab.verify import verify as verify_core
    from gdlab.render import incident

    if lab_ctx is None or sig.stop.is_set():
        return None
    ping = step("trigger", lambda: trigger_core.trigger(lab_ctx), interruptible=True)
    if ping is not None:
        report["trigger"] = ping.to_dict()
        if not json_out:
            incident.ping_view(out, ping)
        if not ping.set_off:
            steps[-1].update(ok=False, error=f"SSM did not run the ping ({ping.detail})")
    if sig.stop.is_set():
        return None
    watched = step("watch", lambda: run_watch(lab_ctx, timeout, json_out), interruptible=True)
    if watched is not None:
        report["watch"] = watched.to_dict()
        if not watched.complete:
            steps[-1].update(ok=False, error="deadline reached before every hop was seen")
    if sig.stop.is_set():
        return None
    def verify_now():  # type: ignore[no-untyped-def]
        from gdlab.cli.detect import waiting_shown

        with waiting_shown(out) as waiting:
            return verify_core(lab_ctx, waiting=waiting)

    verdict = step("verify", verify_now, interruptible=True)
    if verdict is not None:
        report["verify"] = verdict.to_dict()
        if not verdict.passed:
            steps[-1].update(ok=False, error="not every check passed")
    return verdict


def _close(ctx, step, sig, report, cloud, state, lab_ctx, keep, json_out, out):  # type: ignore[no-untyped-def]
    """Collect the e-mails, then tear the lab down unless --keep. A first signal during
    the teardown lets it finish; the next one (`sig.cancel`) stops it between groups."""
    from gdlab.lab import lifecycle
    from gdlab.render.lab import step_line
    from gdlab.scenario import load

    mails = _local_mails(cloud, state) if state else None
    if mails is not None:
        report["emails"] = mails
    if state is None or keep:
        return
    td_ctx = lab_ctx or lifecycle.context(cloud, state, load(state.scenario))
    sig.tearing_down()
    try:
        step(
            "teardown",
            lambda: lifecycle.teardown(
                td_ctx,
                store=obj(ctx).store,
                progress=(lambda e: step_line(out, e)) if not json_out else (lambda e: None),
                cancel=sig.cancel,
            ),
        )
    finally:
        sig.done()
