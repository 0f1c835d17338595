"""Client for the local cloud's own routes (/_gdlab/<name>), with urllib only: used on
paths that must not import boto3."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from gdlab.errors import GdlabError


class LocalApiError(GdlabError):
    """The local cloud refused a /_gdlab/ request or could not be reached."""


# Signing name of the local cloud's own routes (what the credential scope names).
SERVICE = "gdlab"


def fetch(endpoint: str, name: str, timeout: float = 10.0, credentials: Any = None,
          **query: Any) -> Any:
    """GET <endpoint>/_gdlab/<name>?<query> and return its JSON. None values are left out;
    lists become repeated parameters. Every route but status answers only requests signed
    with the local cloud's own key (`credentials`, a LocalCredentials)."""
    params = {k: v for k, v in query.items() if v is not None}
    url = f"{endpoint.rstrip('/')}/_gdlab/{urllib.parse.quote(name)}"
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    headers: dict[str, str] = {}
    if credentials is not None:
        from gdlab.local.warmup import sign

        headers = sign(credentials, SERVICE, "us-east-1", "GET", url, {}, b"")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read().decode("utf-8")).get("error")
        except (ValueError, AttributeError):
            detail = None
        raise LocalApiError(f"the local cloud refused /_gdlab/{name}: "
                            f"{detail or f'HTTP {exc.code}'}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LocalApiError(f"cannot reach the local cloud at {endpoint}: {reason}",
                            "'gdlab local status' shows whether it runs") from None
    except ValueError as exc:
        raise LocalApiError(
            f"the local cloud answered /_gdlab/{name} with bad JSON: {exc}"
        ) from None
