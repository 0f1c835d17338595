"""One registry for every change gdlab makes to moto's classes and modules.

`patch` sets an attribute once and records why and by whom; `original` gives back what moto
had there; `applied` lists every patch, so one contract test can check them all after a moto
upgrade. `once` runs an install step that registers a route or hook rather than patching an
attribute. Together they make each module's install() idempotent without a flag of its own.

    patch(Topic, "publish", topic_publish, "the outbox keeps every published message")
    wrap(EventsHandler, "put_events", "aws.* sources are AWS's", _refuse_aws_sources)
    once("routes", "GET /_gdlab/outbox", lambda: register_route("outbox", _route_outbox))
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # `original` of an attribute gdlab adds (moto has none)


class PatchConflict(RuntimeError):
    """A second, different patch of an attribute that did not say it wraps the first."""


@dataclass(frozen=True)
class Patch:
    owner: Any
    attribute: str
    why: str
    module: str  # the gdlab module that applied it
    original: Any  # moto's value before any gdlab patch (MISSING for an addition)
    previous: Any  # the value this patch replaced (another patch's, when it stacks)
    replacement: Any

    @property
    def added(self) -> bool:
        return self.original is MISSING

    def __str__(self) -> str:
        return f"{name_of(self.owner)}.{self.attribute} ({self.module}: {self.why})"


@dataclass(frozen=True)
class Once:
    module: str
    key: str
    why: str


_lock = threading.RLock()
_patches: dict[tuple[Any, str], list[Patch]] = {}  # per (owner, attribute), oldest first
_log: list[Patch] = []  # every patch, in the order applied
_done: dict[tuple[str, str], Once] = {}


def name_of(owner: Any) -> str:
    if isinstance(owner, types.ModuleType):
        return owner.__name__
    return f"{getattr(owner, '__module__', '?')}.{getattr(owner, '__qualname__', owner)}"


def _caller(depth: int = 2) -> str:
    return str(sys._getframe(depth).f_globals.get("__name__", "?"))


def _mark(replacement: Any, previous: Any) -> None:
    """Point the replacement at what it replaces, as functools.wraps does, so inspect.unwrap
    reaches moto's code. Its own name, module and docstring stay gdlab's. Properties and data
    (a BackendDict) take no attribute and are not callable wrappers: the registry keeps both."""
    if previous is MISSING or not callable(replacement) or isinstance(replacement, type):
        return
    if isinstance(replacement, staticmethod):  # its __wrapped__ is its own function's
        return
    own = getattr(replacement, "__dict__", None)  # a bound method or builtin has none
    if isinstance(own, dict) and "__wrapped__" not in own:  # else functools.wraps marked it
        replacement.__wrapped__ = previous


def _apply(owner: Any, attribute: str, why: str, make: Callable[[Any], Any], stack: bool,
           add: bool, module: str) -> Any:
    with _lock:
        stacked = _patches.get((owner, attribute), [])
        for done in stacked:
            if done.why == why:
                return done.replacement  # applied already: nothing to do
        # getattr_static: the raw class attribute (a property, a staticmethod), not a binding
        current = inspect.getattr_static(owner, attribute, MISSING)
        if stacked and not stack:
            raise PatchConflict(
                f"{name_of(owner)}.{attribute} is patched already by {stacked[-1]}; "
                f"{module} ({why}) must say stack=True to wrap it")
        if current is MISSING and not add:
            raise AttributeError(
                f"moto's {name_of(owner)} has no {attribute!r} for {module} to patch ({why}): "
                "has moto renamed it?")
        if current is not MISSING and add and not stacked:
            raise PatchConflict(
                f"{module} adds {name_of(owner)}.{attribute} ({why}) but moto has one now")
        replacement = make(current)
        _mark(replacement, current)
        setattr(owner, attribute, replacement)
        original = stacked[0].original if stacked else current
        entry = Patch(owner, attribute, why, module, original, current, replacement)
        _patches[(owner, attribute)] = [*stacked, entry]
        _log.append(entry)
        return replacement


def patch(owner: Any, attribute: str, replacement: Any, why: str, *, stack: bool = False,
          add: bool = False) -> Any:
    """Set ``owner.attribute = replacement`` unless this (owner, attribute, why) is applied
    already. Returns what is installed. A second patch with another `why` raises
    PatchConflict unless it says ``stack=True`` (it wraps the current, patched value). The
    attribute must exist on moto's owner (AttributeError otherwise: moto renamed it), unless
    ``add=True`` says gdlab adds it (then it must not exist)."""
    return _apply(owner, attribute, why, lambda _current: replacement, stack, add, _caller())


def wrap(owner: Any, attribute: str, why: str, make: Callable[[Any], Any], *,
         stack: bool = False) -> Any:
    """Like `patch`, with the replacement built as ``make(current)`` (only when it is
    applied), so a wrapper closes over the value it replaces. A function ``make`` returns is
    given functools.wraps' name, docstring and ``__wrapped__`` of what it wraps, unless it
    has them already."""

    def build(current: Any) -> Any:
        replacement = make(current)
        if isinstance(replacement, types.FunctionType) and isinstance(
                current, types.FunctionType) and "__wrapped__" not in replacement.__dict__:
            functools.update_wrapper(replacement, current)
        return replacement

    return _apply(owner, attribute, why, build, stack, False, _caller())


def once(key: str, why: str, action: Callable[[], Any]) -> bool:
    """Run ``action()`` the first time the calling module asks for `key`; True if it ran.
    Recorded only when it succeeds, so a failed install step is tried again."""
    module = _caller()
    with _lock:
        if (module, key) in _done:
            return False
        action()
        _done[(module, key)] = Once(module, key, why)
        return True


def original(owner: Any, attribute: str) -> Any:
    """moto's value of ``owner.attribute`` before gdlab patched it."""
    with _lock:
        stacked = _patches.get((owner, attribute))
    if not stacked:
        raise LookupError(f"gdlab has not patched {name_of(owner)}.{attribute}")
    if stacked[0].added:
        raise AttributeError(f"{name_of(owner)}.{attribute} is gdlab's ({stacked[0]}); "
                             "moto has none")
    return stacked[0].original


def applied() -> list[Patch]:
    """Every patch, in the order applied."""
    with _lock:
        return list(_log)


def registered() -> list[Once]:
    """Every install step `once` ran, in order."""
    with _lock:
        return list(_done.values())
