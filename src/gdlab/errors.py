"""Typed errors the core raises; the CLI turns each into one readable line and an exit code."""


class GdlabError(Exception):
    """A failure the user can act on. `exit_code` 1 for failures, 2 for bad usage."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(GdlabError):
    """The command line itself is wrong (bad lab id, unknown scenario, bad e-mail...)."""

    exit_code = 2


class ConfigError(GdlabError):
    """Region, credentials or endpoint missing or unusable."""


class PreflightError(GdlabError):
    """The account cannot take the lab (quota, limits)."""


class LabNotFound(GdlabError):
    """No state file and no tagged resources for the lab."""


class StepFailed(GdlabError):
    """A setup/teardown step failed; the journal keeps what was done."""


class Timeout(GdlabError):
    """A deadline passed while waiting on the cloud."""


class Interrupted(GdlabError):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) stopped the work; the journal says what is left."""

    exit_code = 130


class LabBusy(GdlabError):
    """Another gdlab command holds the lab's lock."""


class DamagedState(LabNotFound):
    """A lab's state file cannot be trusted (bad JSON, wrong types, a name that disagrees)."""


class LabCloudGone(GdlabError):
    """A local lab's resources lived in a local cloud that is no longer running."""


def describe(exc: BaseException) -> tuple[str, int]:
    """One readable line and an exit code for any exception reaching the CLI edge."""
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
