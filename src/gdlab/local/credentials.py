"""The local cloud's own credentials: an access key of the local account's administrator,
made at the first start of a home's local cloud and kept 0600 in <home>/local/.

The local cloud refuses requests signed with any other key (except the temporary ones its
STS issues and the IAM users' keys it holds), so a user's real AWS keys are never needed, or
accepted, and another local process cannot use the cloud without reading this file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gdlab.errors import GdlabError

ACCOUNT = "123456789012"  # moto's default account: the local account
FILE_NAME = "credentials.json"
# The shapes of AWS's long-term keys: AKIA + 16 base32 characters, a 40-character secret.
ACCESS_KEY_ID = re.compile(r"AKIA[A-Z2-7]{16}")
SECRET_ACCESS_KEY = re.compile(r"[A-Za-z0-9+/]{40}")
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


class CredentialsError(GdlabError):
    """The local credentials file is missing or damaged."""


class CredentialsMissing(CredentialsError):
    """No credentials file yet: the first start makes one."""


@dataclass(frozen=True)
class LocalCredentials:
    access_key_id: str
    secret_access_key: str
    account: str = ACCOUNT

    def __repr__(self) -> str:  # never the secret, in logs or tracebacks
        return f"LocalCredentials(access_key_id={self.access_key_id!r}, account={self.account!r})"

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:root"

    def boto3_kwargs(self) -> dict[str, str]:
        return {"aws_access_key_id": self.access_key_id,
                "aws_secret_access_key": self.secret_access_key}


def generate() -> LocalCredentials:
    return LocalCredentials(
        "AKIA" + "".join(secrets.choice(_BASE32) for _ in range(16)),
        "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)))


def path_for(home: Path) -> Path:
    return Path(home) / "local" / FILE_NAME


def _parse(text: str) -> LocalCredentials | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    key, secret = data.get("aws_access_key_id"), data.get("aws_secret_access_key")
    if not (isinstance(key, str) and ACCESS_KEY_ID.fullmatch(key)
            and isinstance(secret, str) and SECRET_ACCESS_KEY.fullmatch(secret)):
        return None
    return LocalCredentials(key, secret)


def _damaged(path: Path) -> CredentialsError:
    return CredentialsError(
        f"the local cloud's credentials file {path} is damaged",
        "run 'gdlab local stop' (a new file is made at the next start)")


def load(home: Path) -> LocalCredentials:
    """This home's local credentials (CredentialsError when missing or damaged)."""
    from gdlab.lab.locks import UnsafePath
    from gdlab.lab.state import NotRegular, read_private

    path = path_for(home)
    try:
        text = read_private(path)
    except FileNotFoundError:
        raise CredentialsMissing(
            f"the local cloud has no credentials file ({path})",
            "run 'gdlab local stop' and retry: the next start makes one") from None
    except (NotRegular, UnsafePath, OSError):  # a link, a folder, a FIFO, unreadable
        raise _damaged(path) from None
    found = _parse(text)
    if found is None:
        raise _damaged(path)
    return found


def load_or_create(home: Path, replace_damaged: bool = False) -> LocalCredentials:
    """The home's credentials, made if there are none. Two processes racing here agree: the
    file appears whole or not at all (written aside, then linked into place only if absent).
    `replace_damaged`: a damaged file is replaced (only while no local cloud serves it)."""
    from gdlab.lab import locks

    path = path_for(home)
    locks.private_dir(path.parent)
    try:
        return load(home)
    except CredentialsMissing:
        pass  # make one; a racing start that links its file first wins below
    except CredentialsError:
        if not replace_damaged:
            raise
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    made = generate()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{FILE_NAME}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"aws_access_key_id": made.access_key_id,
                       "aws_secret_access_key": made.secret_access_key}, handle)
            handle.write("\n")
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return load(home)
