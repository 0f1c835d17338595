"""`gdlab run --all --parallel N`: the scenarios side by side, each a `gdlab run --json` of
its own in this home, within the region's Elastic IP quota.

Each run is its own process: its own signal handling and teardown, as a `gdlab run` in
another terminal has, and the labs already share the region's detector and Security Hub
safely (lab/sharing.py). The children sit in sessions of their own, so a Ctrl-C at the
terminal reaches only this process, which passes each signal on once: a first one winds
every run down and tears its lab down, a second stops those teardowns."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape


@dataclass
class Child:
    scenario: str
    eips: int
    proc: subprocess.Popen[str] | None = None
    junit: Path | None = None
    evidence: Path | None = None  # its report's evidence (JSON), with run --report
    report: dict[str, Any] | None = None
    stdout: str = ""
    lines: list[str] = field(default_factory=list)


def child_command(app: Any, scenario: str, junit: Path, options: dict[str, Any],
                  evidence: Path | None = None) -> list[str]:
    """`gdlab run` for one scenario with this command's global options."""
    command = [sys.executable, "-m", "gdlab"]
    for flag, value in (("--target", app.target), ("--region", app.region),
                        ("--profile", app.profile), ("--endpoint-url", app.endpoint_url)):
        if value:
            command += [flag, value]
    if app.debug:
        command.append("--debug")
    command += ["run", "--scenario", scenario, "--json", "--yes", "--junit", str(junit)]
    if options.get("email"):
        command += ["--email", options["email"]]
    if options.get("keep"):
        command.append("--keep")
    if options.get("timeout") is not None:
        command += ["--timeout", f"{options['timeout']:g}s"]
    if evidence is not None:
        command += ["--evidence-json", str(evidence)]
    return command


def run(app: Any, names: list[str], needs: dict[str, int], free: int | None, parallel: int,
        sig: Any, say: Any, options: dict[str, Any], evidence: bool = False,
        ) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """Start runs while the Elastic IPs and `parallel` allow, one more as each ends; after
    the first signal none is started. Returns the `run --all --json` object, each run's
    JUnit document and, with `evidence`, each run's report evidence (in scenario order)."""
    started_at = time.monotonic()
    waiting = [Child(name, needs[name]) for name in names]
    running: list[Child] = []
    done: list[Child] = []
    budget = free
    with tempfile.TemporaryDirectory(prefix="gdlab-run-all-") as folder:
        while waiting or running:
            while waiting and not sig.stop.is_set() and len(running) < parallel:
                nxt = next((c for c in waiting if budget is None or c.eips <= budget), None)
                if nxt is None:
                    break
                waiting.remove(nxt)
                budget = None if budget is None else budget - nxt.eips
                nxt.junit = Path(folder) / f"{nxt.scenario}.xml"
                if evidence:
                    nxt.evidence = Path(folder) / f"{nxt.scenario}.json"
                _start(app, nxt, options, say)
                running.append(nxt)
            if not running:
                if sig.stop.is_set() or not waiting:
                    break
                # Nothing runs and the next needs more addresses than are free: one at a time.
                budget = max(budget or 0, max(c.eips for c in waiting))
                continue
            _forward(sig, running)
            for child in list(running):
                assert child.proc is not None
                if child.proc.poll() is None:
                    continue
                _finish(child)
                running.remove(child)
                done.append(child)
                budget = None if budget is None else budget + child.eips
                verdict = "PASSED" if (child.report or {}).get("passed") else "FAILED"
                say(f"[bold]{escape(child.scenario)}[/bold] {verdict}"
                    f" (exit {child.proc.returncode})")
            time.sleep(0.05)
        order = {name: index for index, name in enumerate(names)}
        done.sort(key=lambda c: order[c.scenario])
        junits = [c.junit.read_text() for c in done if c.junit and c.junit.exists()]
        evidences = [_loaded(c.evidence) for c in done if c.evidence and c.evidence.exists()]
    runs = [{"scenario": c.scenario, **(c.report or _broken(c))} for c in done]
    found = {
        "passed": bool(runs) and not waiting and all(r.get("passed") for r in runs),
        "scenarios": runs,
        "not_run": [c.scenario for c in waiting],
        "seconds": round(time.monotonic() - started_at, 3),
    }
    return found, junits, [e for e in evidences if e is not None]


def _loaded(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # a run killed while it wrote: no section for it
        return None
    return data if isinstance(data, dict) else None


def _start(app: Any, child: Child, options: dict[str, Any], say: Any) -> None:
    assert child.junit is not None
    child.proc = subprocess.Popen(
        child_command(app, child.scenario, child.junit, options, child.evidence),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": os.environ.get("COLUMNS", "120")},
        start_new_session=True,  # a terminal's Ctrl-C reaches only us; we pass it on once
    )
    say(f"[bold]{escape(child.scenario)}[/bold] started (pid {child.proc.pid})")
    out_reader = threading.Thread(target=_read_stdout, args=(child,), daemon=True)
    err_reader = threading.Thread(target=_relay, args=(child, say), daemon=True)
    out_reader.start()
    err_reader.start()
    child._readers = (out_reader, err_reader)  # type: ignore[attr-defined]


def _read_stdout(child: Child) -> None:
    assert child.proc is not None and child.proc.stdout is not None
    child.stdout = child.proc.stdout.read()


def _relay(child: Child, say: Any) -> None:
    """The run's own lines (its setup and summary, on stderr with --json), prefixed."""
    assert child.proc is not None and child.proc.stderr is not None
    for line in child.proc.stderr:
        child.lines.append(line.rstrip("\n"))
        say(f"[dim]{escape(child.scenario)} │[/dim] {escape(line.rstrip())}")


def _finish(child: Child) -> None:
    for reader in getattr(child, "_readers", ()):
        reader.join(timeout=10)
    try:
        data = json.loads(child.stdout)
        child.report = data if isinstance(data, dict) else None
    except ValueError:
        child.report = None


def _broken(child: Child) -> dict[str, Any]:
    """A run that printed no report (it crashed): failed, with its last line as the why."""
    last = next((line for line in reversed(child.lines) if line.strip()), "no output")
    code = child.proc.returncode if child.proc else None
    return {"passed": False, "steps": [], "lab": None,
            "error": f"gdlab run exited {code} without a report: {last}"}


_sent: dict[int, int] = {}


def _forward(sig: Any, running: list[Child]) -> None:
    """Each signal this process got, passed on once to every run still going."""
    count = len(sig.received)
    for child in running:
        assert child.proc is not None
        while _sent.get(child.proc.pid, 0) < count:
            name = sig.received[_sent.get(child.proc.pid, 0)]
            _sent[child.proc.pid] = _sent.get(child.proc.pid, 0) + 1
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                child.proc.send_signal(getattr(signal, name, signal.SIGINT))
