"""gdlab's command line. Thin: parse, call the core, render. Heavy imports stay inside
commands so `gdlab --help` and `gdlab --version` start fast."""

from __future__ import annotations

import os
import sys

import typer

from gdlab import __version__
from gdlab.cli.common import AppContext, fail

app = typer.Typer(
    name="gdlab",
    help=(
        "The AWS GuardDuty 'Compromised EC2 Instance' lab as one repeatable, verifiable "
        "command.\n\n\b\n"
        "Example: gdlab run   (the whole incident on the local cloud, no AWS account)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gdlab {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    target: str = typer.Option(
        None,
        "--target",
        envvar="GDLAB_TARGET",
        help="Where the lab runs: 'local' (embedded cloud, default) or 'aws'.",
        show_default=False,
    ),
    region: str = typer.Option(
        None, "--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)."
    ),
    profile: str = typer.Option(None, "--profile", help="AWS profile (default: AWS_PROFILE)."),
    endpoint_url: str = typer.Option(
        None,
        "--endpoint-url",
        help="Send every AWS call to this endpoint (AWS_ENDPOINT_URL is honoured for aws).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    ctx.obj = AppContext(
        target=target,
        region=region,
        profile=profile,
        endpoint_url=endpoint_url,
        debug=debug,
    )


def _register() -> None:
    from gdlab.cli import classes, detect, export, labs, local, mail, report, run, setup, teardown

    for module in (labs, setup, teardown, detect, run, mail, local, report, classes, export):
        module.register(app)


_register()


# Said for any command, also one stopped before it opened a lab: no lab is presumed.
INTERRUPTED = (
    "interrupted — whatever was created is journaled: 'gdlab labs' lists the labs, "
    "'gdlab teardown' removes what was created"
)
GLOBAL_WITH_VALUE = ("--target", "--region", "--profile", "--endpoint-url")
GLOBAL_FLAGS = ("--debug",)


def hoist_global_options(args: list[str]) -> list[str]:
    """Global options are accepted anywhere (`gdlab setup --target aws`): move them in
    front of the command, where the parser expects them."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest.extend(args[i:])
            break
        if name in GLOBAL_WITH_VALUE:
            if "=" in arg or i + 1 >= len(args):
                front.append(arg)
            else:
                front.extend(args[i : i + 2])
                i += 1
        elif arg in GLOBAL_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _parser_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(exits, aborts, usage errors) of the parser: Typer ≥ 0.2x vendors its own click
    (typer._click), older Typer uses click itself; either may be the one raising."""
    exits: list[type] = [typer.Exit]
    aborts: list[type] = [typer.Abort]
    errors: list[type] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            import importlib

            module = importlib.import_module(name)
        except ImportError:
            continue
        exits.append(getattr(module, "Exit", typer.Exit))
        aborts.append(getattr(module, "Abort", typer.Abort))
        errors.append(module.ClickException)
    return tuple(set(exits)), tuple(set(aborts)), tuple(set(errors))


def main() -> None:
    """Entry point: one readable line per error, tracebacks only with --debug."""
    from gdlab.cli.common import interrupt_explained, interrupt_was_explained

    interrupt_explained(False)
    args = hoist_global_options(sys.argv[1:])
    debug = "--debug" in args or os.environ.get("GDLAB_DEBUG") == "1"
    command = typer.main.get_command(app)
    exits, aborts, usage_errors = _parser_exceptions()
    from gdlab.cli.signals import ordinary

    try:
        with ordinary():  # SIGTERM and SIGHUP end a command the way Ctrl-C does
            code = command.main(args=args, prog_name="gdlab", standalone_mode=False)
    except exits as exc:
        code = exc.exit_code
    except aborts:
        fail("aborted", 130)
    except usage_errors as exc:
        # click's own message: the usage line, where to find help, and the error; exit 2.
        exc.show()
        code = exc.exit_code
        if type(exc).__name__ == "NoArgsIsHelpError":  # `gdlab` or `gdlab local` alone
            code = 0
    except SystemExit:
        raise  # click's own quiet exits, e.g. when the reader of `gdlab status | head` leaves
    except KeyboardInterrupt:
        fail(INTERRUPTED, 130)
    except BaseException as exc:  # noqa: BLE001 - the CLI edge translates everything
        from gdlab.cli.common import explain

        if debug:
            import traceback

            traceback.print_exc()
        line, code = explain(exc)
        fail(line, code)
    if code == 130 and not interrupt_was_explained():  # Typer's silent Ctrl-C
        fail(INTERRUPTED, 130)
    sys.exit(code if isinstance(code, int) else 0)
