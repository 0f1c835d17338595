"""What every command shares: the global options, the Cloud, the lab store, the consoles,
and the translation of errors into one line."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from gdlab.cloud import Cloud
    from gdlab.lab.state import LabStore


@dataclass
class AppContext:
    target: str | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    debug: bool = False
    _cloud: Any = field(default=None, repr=False)
    _store: Any = field(default=None, repr=False)

    @property
    def store(self) -> LabStore:
        if self._store is None:
            from gdlab.lab.state import LabStore

            self._store = LabStore()
        return self._store

    def settings(self, **override: Any) -> Any:
        from gdlab.cloud import CloudSettings

        given = {
            "target": self.target,
            "region": self.region,
            "profile": self.profile,
            "endpoint_url": self.endpoint_url,
        }
        given.update({k: v for k, v in override.items() if v})
        return CloudSettings.from_env(**given)

    def cloud(self, **override: Any) -> Cloud:
        """The Cloud for the global options; for target local, the embedded cloud's endpoint
        (started in the background if it is not running, with a one-line message)."""
        if self._cloud is None:
            from gdlab.cloud import Cloud

            settings = self.settings(**override)
            if settings.target == "local" and not settings.endpoint_url:
                from gdlab.local.daemon import ensure_running

                endpoint, started = ensure_running(self.store.home)
                if started:
                    err_console().print(f"[dim]started the local cloud on {endpoint}[/dim]")
                settings.endpoint_url = endpoint
            self._cloud = Cloud(settings)
        return self._cloud

    def cloud_for_lab(self, state: Any) -> Cloud:
        """A lab is always reached where it was set up, whatever the global options say."""
        return self.cloud(target=state.target, region=state.region, endpoint_url=state.endpoint
                          if state.target == "aws" else None)


_console = None
_err_console = None


def console() -> Console:
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False)
    return _console


def err_console() -> Console:
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False)
    return _err_console


def obj(ctx: typer.Context) -> AppContext:
    return ctx.ensure_object(AppContext)


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    err_console().print(f"[bold red]error:[/bold red] {message}", soft_wrap=True)
    sys.exit(code)


def explain(exc: BaseException) -> tuple[str, int]:
    """One readable line and an exit code for any exception reaching the CLI edge."""
    from gdlab.errors import GdlabError

    if isinstance(exc, GdlabError):
        return str(exc), exc.exit_code
    try:
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
        )
    except ImportError:  # pragma: no cover
        return f"{type(exc).__name__}: {exc} (rerun with --debug for details)", 1
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found — set AWS_PROFILE or run 'aws configure'", 1
    if isinstance(exc, NoRegionError):
        return "no AWS region set — pass --region or set AWS_REGION", 1
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach {exc.kwargs.get('endpoint_url')} — is the endpoint up?", 1
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "call")
        return f"AWS {op} failed: {err.get('Code')}: {err.get('Message')}", 1
    return f"{type(exc).__name__}: {exc} (rerun with --debug for details)", 1
