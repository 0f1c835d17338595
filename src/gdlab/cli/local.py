"""gdlab local start / stop / status / env: the embedded local cloud as a background process,
and the variables that point AWS tools at it."""

from __future__ import annotations

from typing import Any

import typer

from gdlab.cli.common import console, obj, print_json

local_app = typer.Typer(
    help=(
        "The embedded local cloud (moto plus gdlab's GuardDuty simulation) on 127.0.0.1.\n\n"
        "Example: gdlab local status"
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")


def _local_labs(home: Any) -> int:
    from gdlab.lab.state import LabStore

    labs = LabStore(home).all()
    return sum(1 for s in labs if s.target == "local" and s.phase != "torn-down")


@local_app.command("start")
def start(
    ctx: typer.Context,
    port: int = typer.Option(
        None, "--port", help="Port on 127.0.0.1 (default: GDLAB_LOCAL_PORT or 4599).",
        show_default=False,
    ),
) -> None:
    """Start the local cloud in the background (other commands start it when needed).

    \b
    Example: gdlab local start --port 4600
    """
    from gdlab.local import daemon

    result = daemon.start(obj(ctx).store.home, port)
    out = console()
    if result.get("stale_pid"):
        out.print(f"[dim]removed a stale pid file (process {result['stale_pid']} was gone)[/dim]")
    if result.get("damaged") and result.get("started"):
        out.print(f"[dim]replaced a damaged {daemon.state_path(obj(ctx).store.home)}[/dim]")
    if result.get("recovered"):
        out.print(f"[dim]found this home's local cloud on port {result['port']} without a "
                  f"sound {daemon.state_path(obj(ctx).store.home)}"
                  + ("; wrote it again" if result.get("rewritten") else "") + "[/dim]")
    if result.get("started"):
        out.print(f"local cloud started on {result['endpoint']} (pid {result['pid']})")
    else:
        out.print(f"local cloud already running on {result['endpoint']} (pid {result['pid']})")


@local_app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop the background local cloud; everything it held is forgotten.

    Example: gdlab local stop
    """
    from gdlab.local import daemon

    result = daemon.stop(obj(ctx).store.home)
    uptime = result.get("uptime_seconds")
    up = f", up {uptime:.0f} s" if isinstance(uptime, (int, float)) else ""
    console().print(f"local cloud stopped (pid {result['pid']}{up})")


@local_app.command("status")
def status(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Whether the local cloud runs, where, for how long, with how many labs and findings.

    Example: gdlab local status --json
    """
    from gdlab.local import daemon

    home = obj(ctx).store.home
    info = daemon.status(home)
    running = info["running"]

    def when_running(key: str, default: Any = None) -> Any:
        return info.get(key, default) if running else default

    report = {
        "running": running,
        "endpoint": when_running("endpoint"),
        "pid": when_running("pid"),
        "port": when_running("port"),
        "started_at": when_running("started_at"),
        "uptime_seconds": when_running("uptime_seconds"),
        "labs": _local_labs(home),
        "findings": when_running("findings", 0),
        "log": str(daemon.log_path(home)),
        "cloud_id": when_running("cloud_id"),  # made at its start; a local lab records it
        "home": when_running("home"),  # the GDLAB_HOME it serves, resolved
    }
    if info.get("recovered"):
        report["recovered"] = True  # found on its port: server.json missing, damaged or stale
    if info.get("damaged") and not running:
        report["damaged_state"] = str(daemon.state_path(home))
    if info.get("stale"):
        report["stale_pid"] = info.get("pid")
    if info.get("unresponsive"):
        report["unresponsive_pid"] = info.get("pid")
    if json_out:
        print_json(report)
        return
    out = console()
    if running:
        name = f"local cloud {report['cloud_id']}" if report["cloud_id"] else "local cloud"
        out.print(
            f"{name} running on {report['endpoint']} (pid {report['pid']}, "
            f"up {report['uptime_seconds'] or 0:.0f} s) — {report['labs']} local lab(s), "
            f"{report['findings']} finding(s)"
        )
    elif info.get("unresponsive"):
        out.print(f"local cloud process {info.get('pid')} does not answer on port "
                  f"{info.get('port')} — see {report['log']}, then 'gdlab local stop'")
    elif info.get("stale"):
        out.print(f"local cloud not running (stale pid file for process {info.get('pid')}; "
                  "'gdlab local start' cleans it)")
    elif info.get("damaged"):
        out.print(f"local cloud not running (damaged {report['damaged_state']}; "
                  "'gdlab local start' replaces it)")
    else:
        out.print(f"local cloud not running — {report['labs']} local lab(s) recorded; "
                  "'gdlab local start' starts it")


@local_app.command("env")
def env(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of shell."),
) -> None:
    """Print the variables that point the AWS CLI and SDKs at the local cloud, with its own
    credentials (it is started if it is not running).

    \b
    Example: gdlab local env --json
    (then: eval "$(gdlab local env)"; aws guardduty list-detectors)
    """
    import shlex

    from gdlab.cli.common import err_console
    from gdlab.cloud import LOCAL_DEFAULT_REGION
    from gdlab.local.credentials import load
    from gdlab.local.daemon import ensure_running

    home = obj(ctx).store.home
    running = ensure_running(home)
    if running.started:
        err_console().print(f"[dim]started the local cloud on {running.endpoint}[/dim]")
    keys = load(home)
    settings = obj(ctx).settings()
    variables = {
        "AWS_ENDPOINT_URL": running.endpoint,
        "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
        "AWS_REGION": settings.region or LOCAL_DEFAULT_REGION,
    }
    if json_out:
        print_json(variables)
        return
    # A session token or profile left in the shell would be sent with the local key.
    lines = ["unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    lines.append(f"export AWS_DEFAULT_REGION={shlex.quote(variables['AWS_REGION'])}")
    typer.echo("\n".join(lines))


org_app = typer.Typer(
    help="The local cloud's organization: member accounts for gdlab class.\n\n"
         "Example: gdlab local org create --accounts 3",
    no_args_is_help=True,
)
local_app.add_typer(org_app, name="org")


@org_app.command("create")
def org_create(
    ctx: typer.Context,
    count: int = typer.Option(3, "--accounts", min=1, max=50,
                              help="How many member accounts to add."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Add member accounts to the local cloud's organization (made if there is none), each
    with OrganizationAccountAccessRole trusted by the management account, as AWS makes them.
    They last as long as the local cloud runs.

    \b
    Example: gdlab local org create --accounts 3
    (then: gdlab class run demo --organization --regions us-east-1,eu-west-1)
    """
    from gdlab.errors import UsageError
    from gdlab.lab.accounts import create_member_accounts, organization_accounts

    app = obj(ctx)
    if app.settings().target != "local":
        raise UsageError("gdlab local org works on the local cloud only",
                         "on AWS, create accounts with AWS Organizations "
                         "(aws organizations create-account)")
    cloud = app.cloud()
    made = create_member_accounts(cloud, count)
    members = organization_accounts(cloud)
    if json_out:
        print_json({"management_account": cloud.account, "created": made,
                    "members": members})
        return
    out = console()
    for account in made:
        out.print(f"created account {account['Id']} ({account['Name']})")
    out.print(f"the organization of {cloud.account} has {len(members)} member account(s); "
              "gdlab class run NAME --organization runs a lab in each")
