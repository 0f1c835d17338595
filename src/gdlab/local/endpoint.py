"""Where clients reach the local cloud this process serves.

The server records its address once its socket is bound (server.py's _make_server) and
forgets it when it stops; lambda_runner reads it so a function's boto3 calls back into the
cloud that runs it. In mock_aws mode no server runs and nothing is recorded. A process may
serve more than one in-process cloud (tests): the latest started one still running is the
answer, so stopping one leaves another's address in place rather than none or a stale one.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_serving: list[str] = []  # in start order


def url_for(address: Any) -> str:
    """The URL a client on this machine uses for a bound (host, port[, ...]) address. A
    wildcard bind is reached on loopback; an IPv6 host is bracketed (RFC 3986 section 3.2.2)."""
    host, port = str(address[0]), int(address[1])
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def serving(address: Any) -> str:
    """Record that a server listens at `address`; returns its URL."""
    url = url_for(address)
    with _lock:
        _serving.append(url)
    return url


def stopped(address: Any) -> None:
    """Forget a server that `serving` recorded (once per start; unknown ones are ignored)."""
    url = url_for(address)
    with _lock:
        for index in range(len(_serving) - 1, -1, -1):
            if _serving[index] == url:
                del _serving[index]
                return


def current() -> str | None:
    """The URL of the latest started server still running in this process, if any."""
    with _lock:
        return _serving[-1] if _serving else None
