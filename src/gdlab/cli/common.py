"""What every command shares: the global options, the Cloud, the lab store, the consoles,
and the translation of errors into one line."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from gdlab.cloud import Cloud
    from gdlab.errors import GdlabError, LabCloudGone
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

            # A command waiting for another one that holds the lab says so, once.
            self._store = LabStore(on_wait=_say_waiting)
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
        (started in the background if it is not running, with a one-line message) and the
        id it made at its start (settings.local_cloud_id)."""
        if self._cloud is None:
            from gdlab.cloud import Cloud

            settings = self.settings(**override)
            if settings.target == "local" and not settings.endpoint_url:
                from gdlab.local.credentials import load
                from gdlab.local.daemon import ensure_running

                running = ensure_running(self.store.home)
                if running.started:
                    err_console().print(
                        f"[dim]started the local cloud on {running.endpoint}[/dim]")
                settings.endpoint_url = running.endpoint
                settings.local_cloud_id = running.cloud_id
                settings.local_credentials = load(self.store.home)
            elif settings.target == "local":
                answer = local_cloud_status(settings.endpoint_url)
                found = answer.get("cloud_id")
                settings.local_cloud_id = found if isinstance(found, str) else None
                settings.local_credentials = credentials_for(answer.get("home"),
                                                             self.store.home,
                                                             settings.endpoint_url)
            self._cloud = Cloud(settings)
        return self._cloud

    def cloud_for_lab(self, state: Any) -> Cloud:
        """A lab is always reached where it was set up, whatever the global options say. A
        local lab whose local cloud is gone (stopped, crashed or restarted since its setup)
        raises LabCloudGone, without starting a new local cloud just to say so."""
        if self._cloud is not None and (
            self._cloud.target != state.target or self._cloud.region != state.region
        ):
            self._cloud = None
        endpoint = state.endpoint if state.target == "aws" else None
        if (self._cloud is None and state.target == "local" and state.local_cloud
                and not self.endpoint_url):
            from gdlab.local.daemon import status

            info = status(self.store.home)
            if not info["running"] and not info.get("unresponsive"):
                raise cloud_gone(state)
        cloud = self.cloud(target=state.target, region=state.region, endpoint_url=endpoint)
        if lab_cloud_is_gone(state, cloud):
            raise cloud_gone(state)
        if state.account:
            from gdlab.errors import GdlabError

            try:
                reached = cloud.account
            except GdlabError:
                # An endpoint that does not answer: the command's own calls meet it and say
                # so in their own words (watch: "lost the endpoint ...").
                return cloud
            if reached != state.account:
                raise elsewhere(state, reached)
        return cloud


def local_cloud_status(endpoint: str | None) -> dict[str, Any]:
    """/_gdlab/status of the gdlab local cloud at this endpoint ({} when it is not one)."""
    from gdlab.local.api import LocalApiError, fetch

    try:
        answer = fetch(endpoint or "", "status", timeout=2.0)
    except LocalApiError:
        return {}
    return answer if isinstance(answer, dict) else {}


def credentials_for(cloud_home: Any, own_home: Any, endpoint: str | None) -> Any:
    """The key of the local cloud at an explicit endpoint: the one kept in the home it
    serves (several homes may share one cloud), else this home's."""
    from pathlib import Path

    from gdlab.local.credentials import CredentialsError, load

    for home in ([Path(cloud_home)] if isinstance(cloud_home, str) and cloud_home else []) + [
            Path(own_home)]:
        try:
            return load(home)
        except CredentialsError:
            continue
    if cloud_home is None:
        # Not a gdlab local cloud (or not answering): a key nobody holds, and the preflight
        # says what the endpoint did.
        from gdlab.local.credentials import generate

        return generate()
    raise CredentialsError(
        f"no credentials for the local cloud at {endpoint}",
        "point --endpoint-url at a gdlab local cloud of this user, or leave it out")


def lab_cloud_is_gone(state: Any, cloud: Cloud) -> bool:
    """Whether a local lab was set up in another local cloud than the one `cloud` reaches.
    Labs from before local cloud ids (state.local_cloud None), and clouds that do not tell
    their id, are given the benefit of the doubt."""
    if state.target != "local" or not cloud.is_local:
        return False
    running = cloud.settings.local_cloud_id
    return bool(state.local_cloud and running and state.local_cloud != running)


def elsewhere(state: Any, account: str) -> GdlabError:
    """A lab in another account than these credentials reach: acting on it here would find
    none of its resources (and forget them)."""
    from gdlab.errors import ConfigError

    group = state.options.get("class") if isinstance(state.options, dict) else None
    hint = (f"it belongs to class {group}: gdlab class status|verify|teardown {group} reach "
            "it" if isinstance(group, str) else
            f"use credentials of account {state.account} (--profile)")
    return ConfigError(f"lab {state.lab} is in account {state.account}, and these "
                       f"credentials reach account {account}", hint)


def cloud_gone(state: Any) -> LabCloudGone:
    """The one-line error for a local lab whose local cloud is no longer running."""
    from gdlab.errors import LabCloudGone

    lab = state.lab
    return LabCloudGone(
        f"lab {lab} lived in a local cloud that is no longer running (stopped, crashed or "
        "restarted): its resources are gone",
        f"'gdlab teardown --lab {lab}' forgets it, 'gdlab setup --lab {lab}' builds it again "
        "from scratch",
    )


def _say_waiting(line: str) -> None:
    from rich.markup import escape

    err_console().print(f"[yellow]{escape(line)}[/yellow]", soft_wrap=True)


_console = None
_err_console = None
# Typer turns Ctrl-C into exit code 130 silently; a command that says something itself marks it.
_interrupt_explained = False


def interrupt_explained(value: bool = True) -> None:
    global _interrupt_explained
    _interrupt_explained = value


def interrupt_was_explained() -> bool:
    return _interrupt_explained


def _output(**kwargs: Any) -> Console:
    """A rich console that outlives its reader. On a broken pipe rich exits at once
    (SystemExit), which in the middle of a setup would leave the lab behind; this one stops
    writing, and a run or setup at work winds down as on a lost terminal
    (signals.reader_gone)."""
    from rich.console import Console

    class Output(Console):
        def on_broken_pipe(self) -> None:
            from gdlab.cli import signals

            self.quiet = True
            with contextlib.suppress(OSError, ValueError, AttributeError):
                broken = self.file.fileno()  # what else writes there is dropped too
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, broken)
                os.close(devnull)
            if not signals.reader_gone():
                raise SystemExit(1)

    return Output(**kwargs)


def console() -> Console:
    global _console
    if _console is None:
        _console = _output(highlight=False)
    return _console


def err_console() -> Console:
    global _err_console
    if _err_console is None:
        _err_console = _output(stderr=True, highlight=False)
    return _err_console


def obj(ctx: typer.Context) -> AppContext:
    return ctx.ensure_object(AppContext)


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def writable(path: Any, what: str) -> None:
    """An output file that cannot be written is bad input, found before anything is made."""
    from gdlab.errors import UsageError

    if path is None:
        return
    if path.is_dir() or not path.parent.is_dir():
        raise UsageError(f"cannot write {what} to {path}", "give a file in a folder that exists")


def fail(message: str, code: int = 1) -> NoReturn:
    from rich.markup import escape

    err_console().print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    sys.exit(code)


def explain(exc: BaseException) -> tuple[str, int]:
    from gdlab.errors import describe

    return describe(exc)
