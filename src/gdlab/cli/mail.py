"""gdlab mail: the e-mails the lab's SNS topic sent, read from the local cloud's outbox."""

from __future__ import annotations

from typing import Any

import typer

from gdlab.cli.common import console, fail, obj, print_json


def register(app: typer.Typer) -> None:
    app.command("mail")(mail)


def mail(
    ctx: typer.Context,
    lab: str = typer.Option(None, "--lab", help="Lab id (default: the current lab)."),
    json_out: bool = typer.Option(
        False, "--json", help="Print a JSON list of {from, to, subject, body, time}."
    ),
) -> None:
    """Show the e-mails the lab's SNS topic sent (local cloud), oldest first.

    \b
    Example: gdlab mail --lab gd-1a2b3c
    """
    state = obj(ctx).store.resolve(lab)
    if state.target == "aws":
        if json_out:
            print_json([])
            return
        console().print(
            "On AWS the lab's e-mails go to the subscribed inbox; gdlab cannot read them."
        )
        return
    topic = state.live("sns-topic")
    if topic is None or not topic.id:
        fail(f"lab {state.lab} has no SNS topic yet — run 'gdlab setup --lab {state.lab}'")
    emails = lab_mails(obj(ctx).cloud_for_lab(state), topic.id)
    if json_out:
        print_json(emails)
        return
    render(emails, topic.id)


def lab_mails(cloud: Any, topic_arn: str) -> list[dict[str, Any]]:
    """The topic's e-mails from the local cloud's outbox, oldest first. A lab without an
    e-mail subscription still shows what a subscriber would have received: every message
    published to the topic, addressed to nobody."""
    from gdlab.local.api import fetch

    keys = cloud.settings.local_credentials
    emails = fetch(cloud.endpoint_url, "outbox", credentials=keys, topic=topic_arn)
    if not emails:
        emails = [
            {**message, "to": "(no subscriber — gdlab setup --email ADDR adds one)"}
            for message in fetch(cloud.endpoint_url, "published", credentials=keys,
                                 topic=topic_arn)
        ]
    emails.sort(key=lambda e: e.get("time", ""))
    return [{k: e.get(k) for k in ("from", "to", "subject", "body", "time")} for e in emails]


def render(emails: list[dict[str, Any]], topic_arn: str) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    out = console()
    if not emails:
        out.print(f"No e-mail from {topic_arn} yet: no finding has reached the rule.")
        return
    for email in emails:
        head = Table.grid(padding=(0, 1))
        head.add_column(style="bold")
        head.add_column()
        head.add_row("From:", email.get("from") or "no-reply@sns.amazonaws.com")
        head.add_row("To:", email.get("to", ""))
        head.add_row("Subject:", email.get("subject", ""))
        head.add_row("Date:", email.get("time", ""))
        body = Table.grid()
        body.add_row(head)
        body.add_row(Text(""))
        body.add_row(Text(email.get("body", "")))
        out.print(Panel(body, expand=False))
    out.print(f"[dim]{len(emails)} e-mail(s) from {topic_arn}[/dim]")
