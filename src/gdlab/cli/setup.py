"""gdlab setup: stand up the lab (attack side, then the automated response)."""

from __future__ import annotations

import re

import typer

from gdlab.cli.common import console, err_console, obj, print_json
from gdlab.errors import UsageError, shown

# local@domain.tld, nothing else: no spaces, no control characters, one @, a dotted domain.
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[A-Za-z]{2,}")
EMAIL_MAX = 254  # RFC 5321's limit on a path: SNS refuses longer addresses


def register(app: typer.Typer) -> None:
    app.command("setup")(setup)


def validate_email(email: str | None) -> str | None:
    if email is None:
        return None
    if len(email) > EMAIL_MAX:
        raise UsageError(
            f"the e-mail address is {len(email)} characters long, at most {EMAIL_MAX} are allowed",
            "use a form like you@example.com",
        )
    # fullmatch: `$` would also match before a trailing newline ('a@b.co\n')
    if not EMAIL.fullmatch(email):
        raise UsageError(
            f"invalid e-mail address '{shown(email, 60)}'", "use a form like you@example.com"
        )
    return email


def confirm_billable(cloud, yes: bool, what: str, where: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """On a real account, show where and ask first: the lab creates billable resources.
    `where`: several places (a class), instead of the cloud's account and region."""
    if cloud.is_local or yes:
        return
    import sys

    where = where or (f"AWS account [bold]{cloud.account}[/bold], region "
                      f"[bold]{cloud.region}[/bold]")
    err_console().print(
        f"{what} in {where}"
        " (each lab: two t3.micro instances, an Elastic IP, GuardDuty and Security Hub: "
        "billable)."
    )
    if not sys.stdin.isatty():
        raise UsageError("confirmation needed on a real account", "rerun with --yes")
    if not typer.confirm("Continue?", default=False, err=True):
        raise typer.Exit(1)


def run_setup(  # type: ignore[no-untyped-def]
    ctx: typer.Context, lab, scenario_name, email, yes, quiet, opened=None, cancel=None
):
    """Shared by `setup` and `run`: validate, preflight, confirm, create. Returns the state
    and its context; `opened` receives the state as soon as it exists. Once `cancel` (a
    threading.Event: a signal) is set, nothing new is created: before the lab is opened
    Interrupted is raised; during setup no new step starts, the running ones finish and are
    journaled, then Interrupted. Preflight and the confirmation only read and wait, so
    there a signal interrupts at once (cli.signals.interruptible)."""
    from gdlab.cli import signals
    from gdlab.errors import Interrupted
    from gdlab.lab.lifecycle import context, open_lab, setup
    from gdlab.lab.lifecycle import preflight as lifecycle_preflight
    from gdlab.lab.state import validate_lab_id
    from gdlab.render.lab import ready_line, step_line
    from gdlab.scenario import load

    if lab:
        validate_lab_id(lab)
    validate_email(email)
    scenario = load(scenario_name)
    app = obj(ctx)
    cloud = app.cloud()
    store = app.store
    with signals.interruptible():
        resuming = lifecycle_preflight(cloud, store, scenario, lab)
        confirm_billable(cloud, yes, "gdlab will create the lab")
    if cancel is not None and cancel.is_set():
        raise Interrupted("interrupted before the lab was opened: nothing was created")
    state = open_lab(store, cloud, scenario, lab=lab, email=email)
    signals.name_lab(state.lab)
    if opened is not None:
        opened["state"] = state
    out = err_console() if quiet else console()
    out.print(
        f"[bold]{'Resuming' if resuming else 'Setting up'} lab {state.lab}[/bold] "
        f"({scenario.title}) on {cloud.target} {cloud.region}"
        + (f" via {cloud.endpoint_url}" if cloud.endpoint_url else "")
    )
    lab_ctx = context(cloud, state, scenario)
    import time

    started = time.monotonic()
    setup(lab_ctx, progress=lambda event: step_line(out, event), cancel=cancel)
    out.print(ready_line(state, time.monotonic() - started))
    return state, lab_ctx


def setup(
    ctx: typer.Context,
    lab: str = typer.Option(
        None, "--lab", help="Lab id (3-12 of a-z, 0-9, -); an existing lab is resumed."
    ),
    scenario: str = typer.Option("compromised-ec2", "--scenario", help="Scenario to deploy."),
    email: str = typer.Option(None, "--email", help="Also e-mail the alerts to this address."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before creating on AWS."),
    json_out: bool = typer.Option(False, "--json", help="Print the lab state as JSON."),
) -> None:
    """Stand up the lab: network, instances, threat list, GuardDuty, Security Hub and the
    automated response (forensic group, SNS e-mail, isolation Lambda, EventBridge rule).

    \b
    Example: gdlab setup --target aws --region eu-west-1 --email me@example.com
    """
    from gdlab.cli import signals

    # SIGINT, SIGTERM and SIGHUP alike: no new step starts, the running ones finish and are
    # journaled, and Interrupted (exit 130) names 'gdlab teardown --lab ID'.
    with signals.handling(lab, keep=True) as sig:
        state, _ = run_setup(ctx, lab, scenario, email, yes, quiet=json_out, cancel=sig.stop)
        if json_out:
            print_json(state.to_dict())
