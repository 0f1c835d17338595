"""Ctrl-C, SIGTERM and SIGHUP for commands that create things: never die mid-write.

`gdlab run` and `gdlab setup` install `Signals` in the main thread for the time of their
work (the previous handlers come back afterwards):

- The first signal sets `stop`: setup starts no new step, lets the running ones finish and
  journals them (it gets `stop` as its cancel event); `run` skips the phases still to come
  and tears the lab down. Only inside `interruptible()` — code that merely reads and waits
  in the main thread (preflight, trigger's SSM wait, watch's polling, verify) — does it
  also raise KeyboardInterrupt, so that phase ends at once.
- The second signal sets `cancel`: the teardown (or the one about to begin) starts no new
  delete group and names what is left and the command that finishes it.
- A signal that comes first during the teardown counts as the first: the teardown goes on
  ("send it again to stop"); only the next one cancels it.

The handler writes its one line straight to file descriptor 2 (a signal can arrive while
the main thread is inside a write to sys.stderr, and buffered streams refuse re-entry).
Every other command gets `ordinary()`: SIGTERM and SIGHUP become KeyboardInterrupt, the
path Ctrl-C already takes, so they end with the same one-line message and exit code 130.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

HANDLED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

_current: Signals | None = None


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # pragma: no cover - only the signals above are handled
        return f"signal {signum}"


def _say(line: str) -> None:
    # stderr may be closed (the terminal went away with SIGHUP): then there is no one to tell.
    with suppress(OSError):
        os.write(2, f"{line}\n".encode())


class Signals:
    """The signals one run or setup has received, and what they asked for."""

    def __init__(
        self,
        lab: str | None = None,
        keep: bool = False,
        say: Callable[[str], None] = _say,
        teardown_only: bool = False,
    ):
        self.lab = lab
        self.keep = keep  # no teardown follows (`setup`, `run --keep`): the lab stays
        # `gdlab teardown`: the teardown is the whole command, so the first signal stops it
        self.teardown_only = teardown_only
        self.say = say
        self.stop = threading.Event()  # first signal: start nothing new, wind down
        self.cancel = threading.Event()  # second signal: stop the teardown too
        self.received: list[str] = []
        self.stage = "work"  # work | teardown | done
        self._interruptible = 0
        self._raised = False

    @property
    def interrupted(self) -> str | None:
        """The first signal's name (SIGINT, SIGTERM, SIGHUP), or None."""
        return self.received[0] if self.received else None

    def note(self, name: str = "SIGINT") -> None:
        """A KeyboardInterrupt that came some other way (no handler installed yet) counts
        as a first signal."""
        if not self.received:
            self.received.append(name)
            self.stop.set()

    def tearing_down(self) -> None:
        self.stage = "teardown"

    def done(self) -> None:
        self.stage = "done"

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Main-thread code that only reads and waits: a first signal ends it at once with
        KeyboardInterrupt (raised right away on entry if one already came)."""
        if self.stop.is_set():
            raise KeyboardInterrupt
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1

    def _lab(self) -> str:
        return f"lab {self.lab}" if self.lab else "the lab"

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        name = _name(signum)
        self.received.append(name)
        count = len(self.received)
        if count == 1 and self.teardown_only:
            self.stop.set()
            self.cancel.set()
            self.say(
                f"interrupted ({name}): stopping the teardown once the deletes in flight have "
                "finished; what is left will be named"
            )
        elif count == 1:
            self.stop.set()
            if self.stage == "teardown":
                self.say(
                    f"interrupted ({name}) during the teardown of {self._lab()}: finishing it "
                    "— send it again to stop and be told what is left"
                )
            elif self.stage == "work" and self.keep:
                self.say(
                    f"interrupted ({name}): finishing the calls in flight, then stopping; "
                    f"{self._lab()} is kept"
                )
            elif self.stage == "work":
                self.say(
                    f"interrupted ({name}): finishing the calls in flight, then tearing "
                    f"{self._lab()} down — send it again to stop"
                )
        elif count == 2 and not self.keep:
            self.cancel.set()
            if self.stage != "done":
                self.say(
                    f"{name} again: stopping once the calls in flight have finished; "
                    "what is left will be named"
                )
        elif self.stage != "done":
            self.say(f"{name}: already stopping, waiting for the calls in flight")
        if self._interruptible and not self._raised:
            self._raised = True  # once: a second raise could cut short the clean-up itself
            raise KeyboardInterrupt


@contextmanager
def handling(
    lab: str | None = None,
    keep: bool = False,
    say: Callable[[str], None] = _say,
    teardown_only: bool = False,
) -> Iterator[Signals]:
    """Install a `Signals` for SIGINT, SIGTERM and SIGHUP while the block runs. A signal
    the process was started ignoring (`nohup`, a background job) stays ignored. Outside the
    main thread (where Python allows no handlers) it only tracks what it is told."""
    global _current
    sig = Signals(lab, keep, say, teardown_only)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            if signal.getsignal(signum) != signal.SIG_IGN:
                previous[signum] = signal.signal(signum, sig.handle)
    outer, _current = _current, sig
    try:
        yield sig
    finally:
        _current = outer
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def name_lab(lab: str) -> None:
    """The handler in place names this lab in what it says."""
    if _current is not None:
        _current.lab = lab


@contextmanager
def interruptible() -> Iterator[None]:
    """`Signals.interruptible()` of the handler in place, if any (else nothing to do)."""
    if _current is None:
        yield
        return
    with _current.interruptible():
        yield


_reader_gone = False
_reader_lock = threading.Lock()


def reader_gone() -> bool:
    """What this process writes to is gone (the `gdlab run --all` that started it was killed,
    a pipe's reader ended). With a handler in place (a run or setup at work) that is a hang-up:
    SIGHUP is raised once, so its handler winds the work down in the main thread as it does
    for a lost terminal (the calls in flight finish, the lab is torn down), and True is
    returned: the caller goes on without output. Nothing is raised once the work is winding
    down already (a signal came, or the teardown is under way): a hang-up would count as the
    next signal and stop that teardown part-way. A process started ignoring SIGHUP (nohup)
    finishes its work, quietly. False: no work to wind down."""
    global _reader_gone
    sig = _current
    if sig is None:
        return False
    with _reader_lock:  # both streams may break at once, in two threads
        first, _reader_gone = not _reader_gone, True
    if (first and sig.stage == "work" and not sig.received and not sig.teardown_only
            and hasattr(signal, "SIGHUP")):
        signal.raise_signal(signal.SIGHUP)
    return True


def _keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def ordinary() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, while the block runs."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            if signum != signal.SIGINT and signal.getsignal(signum) == signal.SIG_DFL:
                previous[signum] = signal.signal(signum, _keyboard_interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
