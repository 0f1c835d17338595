"""gdlab export: the lab as a template another tool deploys (CloudFormation StackSets)."""

from __future__ import annotations

from pathlib import Path

import typer

from gdlab.cli.common import writable
from gdlab.errors import GdlabError

export_app = typer.Typer(
    help=(
        "The lab as a template another tool deploys, e.g. CloudFormation StackSets across an "
        "organization.\n\n"
        "Example: gdlab export cloudformation -o gdlab-lab.json"
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


class ExportWriteError(GdlabError):
    """The template file could not be written."""


@export_app.command("cloudformation")
def cloudformation(
    scenario: str = typer.Option(
        "compromised-ec2", "--scenario", help="The scenario (only compromised-ec2)."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Where to write the JSON template (default: stdout).",
        show_default=False),
    email: str = typer.Option(
        None, "--email", help="The default of the template's Email parameter (subscribed to "
                              "the lab's topic).", show_default=False),
) -> None:
    """Write the lab as one CloudFormation template (JSON), deployable with StackSets
    (service-managed permissions, auto-deployment to an OU) or as a single stack.

    \b
    Example: gdlab export cloudformation --email trainer@example.com -o gdlab-lab.json
    """
    import json

    from gdlab.cli.setup import validate_email
    from gdlab.lab import cfn
    from gdlab.scenario import load

    writable(output, "the template")
    email = validate_email(email)
    text = json.dumps(cfn.template(load(scenario), email=email), separators=(",", ":")) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ExportWriteError(f"cannot write the template to {output}: "
                               f"{(exc.strerror or str(exc)).lower()}") from None
    typer.echo(f"wrote {output} ({len(text.encode())} bytes)")
