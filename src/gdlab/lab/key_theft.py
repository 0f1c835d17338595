"""A leaked IAM user access key used from the malicious instance, as a scenario's trigger and
verify run it: the key is read from the lab's SecureString parameter (where setup put it) and
handed, in the command's environment, to the malicious instance, whose Elastic IP is on the
threat list; it runs `commands` with it through SSM. The secret is in gdlab's memory only."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from gdlab.lab.credential_theft import UNDELIVERED, cli_error, use
from gdlab.lab.steps import LabContext
from gdlab.lab.steps.identity import parameter_name, read_key
from gdlab.lab.trigger import LabNotReady

# A line of `aws s3 ls`: "2024-01-01 10:00:00       1234 key", or "    PRE prefix/".
_LISTED = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d+ |\s+PRE )")


@dataclass(frozen=True)
class LeakedKey:
    """A long-term key read from the lab's parameter. repr never shows the secret."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"LeakedKey(access_key_id={self.access_key_id!r})"

    def exports(self) -> list[str]:
        return [f"export AWS_ACCESS_KEY_ID='{self.access_key_id}'",
                f"export AWS_SECRET_ACCESS_KEY='{self.secret_access_key}'"]


def leaked_key(ctx: LabContext) -> LeakedKey:
    found = read_key(ctx)
    if found is None:
        raise LabNotReady(f"lab {ctx.lab} has no access key in {parameter_name(ctx)}",
                          f"run 'gdlab setup --lab {ctx.lab}' first")
    return LeakedKey(*found)


@dataclass
class KeyUseResult:
    """What `gdlab trigger` did with the key (TriggerResult). No secret in it."""

    attacker_id: str
    target_ip: str
    command_id: str
    access_key_id: str
    commands: list[str]
    status: str
    detail: str
    exit_code: int | None
    identity_arn: str | None
    outputs: list[str]  # what each command printed, short
    error_output: str
    seconds: float

    @property
    def delivered(self) -> bool:
        return bool(self.command_id) and self.detail not in UNDELIVERED \
            and self.status not in ("Pending", "InProgress")

    @property
    def set_off(self) -> bool:
        """The key reached AWS from the listed address: a call was answered (even refused)."""
        return self.delivered and (self.exit_code == 0 or self.identity_arn is not None
                                   or bool(self.outputs)
                                   or "An error occurred" in self.error_output)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "delivered": self.delivered, "set_off": self.set_off}

    def already_happened(self) -> str | None:
        return None

    def headline(self) -> str:
        return (f"access key {self.access_key_id} used from {self.attacker_id} at "
                f"{self.target_ip} via SSM (command {self.command_id or '-'})")

    def output_text(self) -> str:
        return "\n".join([*self.outputs, self.error_output.strip()]).strip()

    def failure(self) -> tuple[str, str] | None:
        if self.set_off:
            return None
        return (f"the malicious instance could not use the key ({self.detail})",
                "check 'aws ssm describe-instance-information' for it and retry "
                "'gdlab trigger'")


def _summaries(stdout: str, commands: list[str]) -> tuple[list[str], str | None]:
    """A line per command from what the CLI printed (JSON documents, or s3 ls lines)."""
    from gdlab.lab.credential_theft import _json_blocks

    lines, identity = [], None
    listing = [line for line in stdout.splitlines() if _LISTED.match(line)]
    for block in _json_blocks(stdout[stdout.find("{"):] if "{" in stdout else ""):
        if isinstance(block, dict) and "Arn" in block:
            identity = block["Arn"]
    for command in commands:
        if command.startswith("aws sts get-caller-identity") and identity:
            lines.append(f"{command}: {identity}")
        elif command.startswith("aws s3 ls"):
            lines.append(f"{command}: {len(listing)} object(s) listed")
        else:
            lines.append(f"{command}: sent")
    return lines, identity


def trigger(ctx: LabContext, commands: list[str]) -> KeyUseResult:
    """Run `commands` on the malicious instance with the leaked key; the journal says what
    happened (never the secret)."""
    started = time.monotonic()
    key = leaked_key(ctx)
    attacker = ctx.state.live("instance-malicious")
    eip = ctx.attr("eip", "public_ip") or ""
    command_id, used = use(ctx, key, commands)  # type: ignore[arg-type]
    code = used.get("ResponseCode")
    outputs, identity = _summaries(used.get("StandardOutputContent", ""), commands)
    result = KeyUseResult(
        attacker_id=attacker.id if attacker else "", target_ip=eip, command_id=command_id,
        access_key_id=key.access_key_id, commands=commands,
        status=used.get("Status", "Pending"),
        detail=str(used.get("StatusDetails") or used.get("Status", "Pending")).replace(" ", ""),
        exit_code=code if isinstance(code, int) and code >= 0 else None,
        identity_arn=identity, outputs=outputs,
        error_output=cli_error(used.get("StandardErrorContent", "")),
        seconds=time.monotonic() - started)
    advance = result.set_off and ctx.state.phase in ("ready", "triggered")
    ctx.state.event(
        f"triggered: access key {key.access_key_id} used from {eip} -> {result.detail} "
        f"(command {command_id}): {json.dumps(commands)}",
        phase="triggered" if advance else None,
        kind="info" if result.set_off else "error",
    )
    return result
