"""gdlab trigger, watch, verify: set off the incident, follow it, prove it."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import typer

from gdlab.cli.common import console, err_console, interrupt_explained, obj, print_json
from gdlab.errors import GdlabError, UsageError, shown

DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?")
# A watch longer than a day is a mistake, not patience: real GuardDuty needs ~5 minutes.
MAX_DURATION = 24 * 3600
# A handful of pings make the flow GuardDuty needs; more only floods the log.
MAX_COUNT = 100


def register(app: typer.Typer) -> None:
    app.command("trigger")(trigger)
    app.command("watch")(watch)
    app.command("verify")(verify)


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '5m', '1h30m' -> seconds (more than 0, at most 24 hours)."""
    if text is None:
        return None
    form = "use a form like 45s, 5m or 1h30m"
    match = DURATION.fullmatch(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise UsageError(f"invalid duration '{shown(text, 40)}'", form)
    hours, minutes, seconds = match.groups()
    total = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    if total <= 0:
        raise UsageError(f"duration '{shown(text, 40)}' must be more than 0", form)
    if total > MAX_DURATION:
        raise UsageError(
            f"duration '{shown(text, 40)}' is longer than the 24h maximum",
            "real GuardDuty raises a finding in about 5 minutes: 20m is plenty",
        )
    return total


def validate_count(count: int) -> int:
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(
            f"--count must be between 1 and {MAX_COUNT}, not {shown(count, 20)}",
            "a few pings are enough for GuardDuty: the default is 3",
        )
    return count


def lab_context(ctx: typer.Context, lab: str | None):  # type: ignore[no-untyped-def]
    from gdlab.lab.lifecycle import context
    from gdlab.scenario import load

    app = obj(ctx)
    state = app.store.resolve(lab)
    # trigger, watch and verify move the lab's phase: one command at a time per lab, and
    # the state read again once the lock is ours.
    app.store.acquire(state.lab)
    state = app.store.load(state.lab)
    if state.phase == "torn-down":
        raise UsageError(f"lab {state.lab} was torn down", "set up a new one with 'gdlab setup'")
    cloud = app.cloud_for_lab(state)
    return context(cloud, state, load(state.scenario))


class TriggerFailed(GdlabError):
    """SSM could not run the ping."""


def trigger(
    ctx: typer.Context,
    lab: str = typer.Option(None, "--lab", help="Lab id (default: the current lab)."),
    count: int = typer.Option(
        3, "--count", help=f"Pings to send, 1 to {MAX_COUNT}.", show_default=True
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Set the lab's incident off as its scenario does (compromised-ec2: the compromised
    instance pings the malicious Elastic IP through SSM RunCommand).

    \b
    Example: gdlab trigger --count 5
    """
    from gdlab.lab import trigger as core

    validate_count(count)
    lab_ctx = lab_context(ctx, lab)
    result = core.set_off(lab_ctx, count=count)
    if json_out:
        print_json(result.to_dict())
    else:
        from gdlab.render.incident import trigger_view

        trigger_view(console(), result)
    if result.already_happened():
        if not json_out:
            console().print("the incident already happened; next: gdlab watch, gdlab verify")
        return
    failure = result.failure()
    if failure:
        raise TriggerFailed(*failure)
    if not json_out:
        console().print("the incident is set off; next: gdlab watch")


def run_watch(lab_ctx, timeout: float | None, json_out: bool):  # type: ignore[no-untyped-def]
    from gdlab.lab.watch import watch as core
    from gdlab.render.incident import hops_table, watch_summary

    if json_out:
        return core(lab_ctx, timeout_seconds=timeout)
    from rich.live import Live

    out = console()
    if not out.is_terminal:  # a CI log: plain lines as hops are seen, and what is awaited
        from gdlab.render.incident import PlainProgress

        result = core(lab_ctx, timeout_seconds=timeout, on_update=PlainProgress(out).hops)
        out.print(hops_table(result.hops, spinning=False))
        watch_summary(out, result)
        return result
    with Live(hops_table([]), console=out, refresh_per_second=10, transient=False) as live:
        result = core(
            lab_ctx,
            timeout_seconds=timeout,
            on_update=lambda hops: live.update(hops_table(hops)),
        )
        live.update(hops_table(result.hops, spinning=False))
    watch_summary(out, result)
    return result


def watch(
    ctx: typer.Context,
    lab: str = typer.Option(None, "--lab", help="Lab id (default: the current lab)."),
    timeout: str = typer.Option(
        None,
        "--timeout",
        help="Deadline, e.g. 90s or 20m, at most 24h (default: 60s local, 20m aws).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the hops as JSON."),
) -> None:
    """Follow the incident hop by hop: threat list, GuardDuty, Security Hub, responder,
    isolation, e-mails. Exits 1 with what to check if the deadline passes.

    Example: gdlab watch --timeout 20m
    """
    seconds = parse_duration(timeout)
    lab_ctx = lab_context(ctx, lab)
    try:
        result = run_watch(lab_ctx, seconds, json_out)
    except KeyboardInterrupt:
        err_console().print("stopped watching; the lab is as it was — 'gdlab watch' resumes")
        interrupt_explained()
        raise typer.Exit(130) from None
    if json_out:
        print_json(result.to_dict())
    if not result.complete:
        raise typer.Exit(1)


@contextlib.contextmanager
def waiting_shown(out):  # type: ignore[no-untyped-def]
    """A callback for the core's waits (verify's flow-log delivery): a live line with a bar
    on a terminal, a plain line every 30 s otherwise."""
    from gdlab.render.incident import PlainProgress, bar, duration

    if not out.is_terminal:
        yield PlainProgress(out).wait
        return
    from rich.markup import escape

    status = None

    def show(what: str, waited: float, allowed: float) -> None:
        nonlocal status
        text = (
            f"waiting for {escape(what)}  {bar(waited / allowed if allowed else 1)} "
            f"{duration(waited)} of up to {duration(allowed)}"
        )
        if status is None:
            status = out.status(text)
            status.start()
        else:
            status.update(text)

    try:
        yield show
    finally:
        if status is not None:
            status.stop()


def verify(
    ctx: typer.Context,
    lab: str = typer.Option(None, "--lab", help="Lab id (default: the current lab)."),
    json_out: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    junit: Path = typer.Option(None, "--junit", help="Also write JUnit XML to this file."),
) -> None:
    """Prove the incident with named checks, each with its evidence; exit 0 only when every
    property is proven by a check that passed and no check failed.

    Example: gdlab verify --junit verify.xml
    """
    from gdlab.lab.verify import verify as core
    from gdlab.render.incident import junit_xml, verify_view

    lab_ctx = lab_context(ctx, lab)
    started = time.monotonic()
    with waiting_shown(err_console() if json_out else console()) as waiting:
        verdict = core(lab_ctx, waiting=waiting)
    if junit:
        try:
            junit.write_text(junit_xml(verdict, time.monotonic() - started))
        except OSError as exc:
            raise UsageError(f"cannot write {junit}: {exc.strerror}") from exc
    if json_out:
        print_json(verdict.to_dict())
    else:
        verify_view(console(), verdict)
    if not verdict.passed:
        raise typer.Exit(1)
