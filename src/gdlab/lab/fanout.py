"""A class's labs side by side: one thread per (account, region), at most `max_parallel` at
once, one shared set of signals.

A first signal stops every target from starting anything new; a target waiting on the cloud
(trigger, watch, verify: code that only reads) is ended at once, as Ctrl-C ends it in a
single run; setups finish their calls in flight and every lab is torn down. The second
signal stops the teardowns between groups. A failure in one target never stops the others.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

from gdlab.lab.run import Interrupts, RunEvents

T = TypeVar("T")


class SharedInterrupts:
    """The class's signals as each target's run sees them (it fits lab.run.Interrupts).

    Only the main thread gets KeyboardInterrupt from a signal; `interrupt_waiting()` raises it
    in every target thread that is inside `interruptible()` at that moment, and never
    outside: a thread leaving the block clears an exception posted but not yet raised, and
    raises it itself."""

    def __init__(self, signals: Interrupts):
        self.signals = signals
        self.stop = signals.stop
        self.cancel = signals.cancel
        self._lock = threading.Lock()
        self._waiting: dict[int, bool] = {}  # thread id -> an interrupt was posted

    @property
    def interrupted(self) -> str | None:
        return self.signals.interrupted

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        if self.stop.is_set():
            raise KeyboardInterrupt
        me = threading.get_ident()
        with self._lock:
            self._waiting[me] = False
        try:
            yield
        finally:
            with self._lock:
                posted = self._waiting.pop(me, False)
                if posted:
                    _post(me, None)  # not yet raised: clear it, and raise it here
            if posted:
                raise KeyboardInterrupt

    def interrupt_waiting(self) -> None:
        with self._lock:
            for thread, posted in self._waiting.items():
                if not posted:
                    _post(thread, KeyboardInterrupt)
                    self._waiting[thread] = True

    def note(self, name: str = "SIGINT") -> None:
        self.signals.note(name)

    def tearing_down(self) -> None:
        """The class's own stage stays with the main thread (what a signal's line says)."""

    def done(self) -> None:
        """See tearing_down."""


def _post(thread: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exc) if exc else ctypes.c_void_p(0))


def fan_out(items: list[Any], work: Callable[[Any], T], max_parallel: int,
            shared: SharedInterrupts, tick: Callable[[], None] | None = None,
            tick_seconds: float = 0.25) -> list[T | BaseException]:
    """work(item) for every item, at most max_parallel at once; the results in item order
    (an exception a work raised is its result). Once stop is set, items not yet begun are
    not begun. The main thread waits inside `interruptible()`, so a signal reaches it; it
    then interrupts the targets' waits and goes on waiting for their teardowns."""
    results: dict[int, T | BaseException] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="gdlab-class")

    def guarded(item: Any) -> T | None:
        return None if shared.stop.is_set() else work(item)

    futures: dict[Future, int] = {pool.submit(guarded, item): i for i, item in enumerate(items)}
    pending = set(futures)
    try:
        while pending:
            try:
                if shared.stop.is_set():  # signalled: wait for the teardowns, signals noted
                    done, pending = wait(pending, timeout=tick_seconds,
                                         return_when=FIRST_COMPLETED)
                else:
                    with shared.signals.interruptible():
                        done, pending = wait(pending, timeout=tick_seconds,
                                             return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                shared.note()
                shared.interrupt_waiting()
                continue
            if shared.stop.is_set():
                shared.interrupt_waiting()  # a target that entered a wait since
            for future in done:
                try:
                    results[futures[future]] = future.result()
                except BaseException as exc:  # noqa: BLE001 - a target's failure is its result
                    results[futures[future]] = exc
            if tick:
                tick()
    finally:
        pool.shutdown(wait=True)
    return [results[i] for i in range(len(items))]


class TargetEvents(RunEvents):
    """What a run tells the class about one target: the phase it is in, its lab's id as soon
    as it has one (the class's record is written then, so a crash still knows the lab)."""

    def __init__(self, entry: Any, changed: Callable[[bool], None]):
        self.entry = entry
        self.changed = changed  # changed(save): redraw, and write the record when save

    def phase(self, name: str) -> None:
        self.entry.phase = name
        self.changed(False)

    def named(self, lab: str) -> None:
        self.entry.lab = lab
        self.changed(True)
