"""cli.signals: the two stages of a signal-safe command, with real signals sent to this
process (the handlers run in the main thread, where pytest runs the tests)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from gdlab.cli import signals


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.01)  # the handler runs in this thread at the next bytecode boundary


@pytest.fixture
def said() -> list[str]:
    return []


def test_handlers_are_installed_for_the_block_and_restored_after(said):
    before = {s: signal.getsignal(s) for s in signals.HANDLED}
    with signals.handling("gd-abc123", say=said.append) as sig:
        for signum in signals.HANDLED:
            assert signal.getsignal(signum) == sig.handle
    assert {s: signal.getsignal(s) for s in signals.HANDLED} == before


@pytest.mark.parametrize("signum", signals.HANDLED, ids=lambda s: signal.Signals(s).name)
def test_first_signal_stops_new_work_and_says_what_follows(said, signum):
    with signals.handling("gd-abc123", say=said.append) as sig:
        send(signum)
        assert sig.stop.is_set() and not sig.cancel.is_set()
        assert sig.interrupted == signal.Signals(signum).name
    assert said == [
        f"interrupted ({signal.Signals(signum).name}): finishing the calls in flight, then "
        "tearing lab gd-abc123 down — send it again to stop"
    ]


def test_second_signal_cancels_the_teardown_and_later_ones_only_remind(said):
    with signals.handling("gd-abc123", say=said.append) as sig:
        send(signal.SIGINT)
        send(signal.SIGTERM)
        assert sig.cancel.is_set()
        send(signal.SIGINT)
    assert sig.received == ["SIGINT", "SIGTERM", "SIGINT"]
    assert len(said) == 3 and "what is left will be named" in said[1]
    assert "already stopping" in said[2]


def test_outside_interruptible_code_a_signal_never_raises(said):
    with signals.handling(say=said.append) as sig:
        send(signal.SIGTERM)
        for _ in range(1000):  # the main thread goes on with what it was doing
            pass
    assert sig.stop.is_set()


def test_interruptible_code_ends_at_once_and_only_once(said):
    with signals.handling(say=said.append) as sig:
        with pytest.raises(KeyboardInterrupt), sig.interruptible():
            send(signal.SIGHUP)
            time.sleep(5)  # pragma: no cover - the signal ends the wait
        # the clean-up that follows is not cut short by the next signal
        send(signal.SIGHUP)
        assert sig.cancel.is_set()
        # and no interruptible phase starts once a signal came
        with pytest.raises(KeyboardInterrupt), sig.interruptible():
            pytest.fail("entered")  # pragma: no cover


def test_module_level_interruptible_uses_the_handler_in_place(said):
    with signals.interruptible():  # no handler: nothing to do
        pass
    with (
        signals.handling(say=said.append),
        pytest.raises(KeyboardInterrupt),
        signals.interruptible(),
    ):
        send(signal.SIGTERM)
        time.sleep(5)  # pragma: no cover


def test_a_first_signal_during_the_teardown_lets_it_finish(said):
    with signals.handling("gd-abc123", say=said.append) as sig:
        sig.tearing_down()
        send(signal.SIGTERM)
        assert sig.stop.is_set() and not sig.cancel.is_set()
        send(signal.SIGTERM)
        assert sig.cancel.is_set()
    assert said[0] == (
        "interrupted (SIGTERM) during the teardown of lab gd-abc123: finishing it — send it "
        "again to stop and be told what is left"
    )


def test_when_the_lab_is_kept_no_teardown_is_promised(said):
    with signals.handling(keep=True, say=said.append) as sig:
        signals.name_lab("gd-fedcba")
        send(signal.SIGINT)
        send(signal.SIGINT)
        assert not sig.cancel.is_set()
    assert said[0] == (
        "interrupted (SIGINT): finishing the calls in flight, then stopping; lab gd-fedcba is kept"
    )
    assert "already stopping" in said[1]


def test_after_the_teardown_signals_are_only_counted(said):
    with signals.handling(say=said.append) as sig:
        sig.done()
        send(signal.SIGINT)
    assert sig.interrupted == "SIGINT" and said == []


def test_a_signal_the_process_ignores_stays_ignored(said):
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with signals.handling(say=said.append) as sig:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            send(signal.SIGHUP)
        assert not sig.stop.is_set()
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_keyboard_interrupt_from_elsewhere_counts_as_ctrl_c(said):
    with signals.handling(say=said.append) as sig:
        sig.note()
        sig.note("SIGTERM")  # only the first one counts
    assert sig.received == ["SIGINT"] and sig.stop.is_set()


def test_outside_the_main_thread_nothing_is_installed(said):
    seen: list[object] = []

    def work() -> None:
        with signals.handling(say=said.append) as sig:
            seen.append(sig)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen and signal.getsignal(signal.SIGTERM) == before


def test_ordinary_commands_take_sigterm_and_sighup_as_ctrl_c():
    before = {s: signal.getsignal(s) for s in signals.HANDLED}
    with signals.ordinary():
        assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with pytest.raises(KeyboardInterrupt):
                send(signum)
    assert {s: signal.getsignal(s) for s in signals.HANDLED} == before


def test_sigterm_ends_a_command_with_the_interrupted_line(run_cli, monkeypatch):
    """Through the CLI edge: SIGTERM during `gdlab scenarios` is Ctrl-C: one line, exit 130."""
    import gdlab.scenario

    def slow_listing():
        send(signal.SIGTERM)
        time.sleep(5)  # pragma: no cover - the signal ends it
        return []

    monkeypatch.setattr(gdlab.scenario, "list_scenarios", slow_listing)
    code, out, err = run_cli("scenarios")
    assert code == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored once main is done


def test_a_reader_gone_mid_work_is_one_hang_up(said, monkeypatch):
    monkeypatch.setattr(signals, "_reader_gone", False)
    assert signals.reader_gone() is False  # no work to wind down: the caller exits
    with signals.handling("gd-abc123", say=said.append) as sig:
        assert signals.reader_gone() is True
        time.sleep(0.01)  # the handler runs in this thread at the next bytecode boundary
        assert sig.interrupted == "SIGHUP" and sig.stop.is_set()
        assert signals.reader_gone() is True  # the other stream breaks too: no second signal
        time.sleep(0.01)
        assert not sig.cancel.is_set() and sig.received == ["SIGHUP"]


@pytest.mark.parametrize("winding_down", ["after-a-signal", "teardown", "teardown-only"])
def test_a_reader_gone_while_winding_down_never_counts_as_another_signal(
        said, monkeypatch, winding_down):
    # `gdlab run | tee`, then Ctrl-C: tee dies too, and the next line gdlab writes breaks.
    monkeypatch.setattr(signals, "_reader_gone", False)
    with signals.handling("gd-abc123", say=said.append,
                          teardown_only=winding_down == "teardown-only") as sig:
        if winding_down == "after-a-signal":
            send(signal.SIGINT)
        elif winding_down == "teardown":
            sig.tearing_down()
        assert signals.reader_gone() is True
        time.sleep(0.01)
        assert not sig.cancel.is_set()
        assert sig.received == (["SIGINT"] if winding_down == "after-a-signal" else [])


def test_a_console_whose_pipe_broke_goes_quiet_and_the_work_goes_on(said, monkeypatch):
    import io

    from gdlab.cli.common import _output

    monkeypatch.setattr(signals, "_reader_gone", False)
    out = _output(file=io.StringIO())
    with pytest.raises(SystemExit):  # nothing at work: rich's exit, as before
        out.on_broken_pipe()
    out = _output(file=io.StringIO())
    with signals.handling("gd-abc123", say=said.append) as sig:
        out.on_broken_pipe()
        time.sleep(0.01)
        assert out.quiet and sig.stop.is_set()
