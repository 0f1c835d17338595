"""Targets side by side: never more at once than asked, every result in order (a failure
is its target's result, the others go on), nothing new begun after a signal, and a signal
ends a target's wait at once but never reaches it outside its wait."""

from __future__ import annotations

import threading
import time

import pytest

from gdlab.lab.fanout import SharedInterrupts, fan_out
from gdlab.lab.run import NoSignals


def test_at_most_max_parallel_run_at_once_and_results_keep_their_order():
    shared = SharedInterrupts(NoSignals())
    lock, running, most = threading.Lock(), [0], [0]

    def work(n: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        if n == 3:
            raise ValueError("target 3 broke")
        return n * n

    found = fan_out(list(range(10)), work, 3, shared, tick_seconds=0.01)
    assert most[0] <= 3
    assert [r for i, r in enumerate(found) if i != 3] == [i * i for i in range(10) if i != 3]
    assert isinstance(found[3], ValueError)


def test_after_stop_no_target_begins():
    signals = NoSignals()
    shared = SharedInterrupts(signals)
    begun: list[int] = []

    def work(n: int) -> int:
        begun.append(n)
        signals.note("SIGTERM")
        return n

    found = fan_out(list(range(5)), work, 1, shared, tick_seconds=0.01)
    assert begun == [0] and found == [0, None, None, None, None]


def test_a_signal_ends_a_wait_at_once_and_never_outside_it():
    signals = NoSignals()
    shared = SharedInterrupts(signals)
    waiting, outcome = threading.Event(), {}

    def target() -> None:
        try:
            with shared.interruptible():
                waiting.set()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    time.sleep(0.01)
            outcome["ended"] = "normally"
        except KeyboardInterrupt:
            outcome["ended"] = "interrupted"
        # Outside the wait: a later interrupt must not reach this thread.
        signals.stop.clear()
        for _ in range(50):
            time.sleep(0.01)
        outcome["after"] = "untouched"

    thread = threading.Thread(target=target)
    thread.start()
    assert waiting.wait(5)
    signals.note("SIGINT")
    shared.interrupt_waiting()
    time.sleep(0.05)
    shared.interrupt_waiting()  # the thread has left its wait: nothing is posted
    thread.join(10)
    assert outcome == {"ended": "interrupted", "after": "untouched"}


def test_a_wait_entered_after_the_signal_ends_at_once():
    signals = NoSignals()
    signals.note("SIGINT")
    with pytest.raises(KeyboardInterrupt), SharedInterrupts(signals).interruptible():
        pass
