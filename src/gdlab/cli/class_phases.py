"""gdlab class run|setup|verify|teardown with --admin-account: the class's own steps around
its labs. The administrator is set up before any lab, every lab is set up, the threat lists
are written once, then the labs go on; the class's changes are undone after the last lab is
gone (lab/class_admin.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from rich.markup import escape

from gdlab.cli import signals
from gdlab.cli.common import err_console
from gdlab.errors import describe


def administrator(app: Any, classes: Any, record: Any) -> Any:
    from gdlab.lab.class_admin import Administrator
    from gdlab.lab.class_targets import Classroom
    from gdlab.lab.fanout import SharedInterrupts
    from gdlab.lab.run import NoSignals

    room = Classroom(app.cloud(), app.store, classes, record, SharedInterrupts(NoSignals()))
    return Administrator(room, record, classes)


def _class_step(record: Any, what: str, work: Callable[[Any], None],
                teardown_only: bool = False) -> tuple[bool, str | None]:
    """A step of the class itself, in this thread, under the signal handler: (done, the
    signal that cut it short). A failure is one line."""
    with signals.handling(None, teardown_only=teardown_only) as sig:
        try:
            work(sig.stop)
        except KeyboardInterrupt:  # the signal that raised it is sig.interrupted
            return False, sig.interrupted
        except Exception as exc:  # noqa: BLE001 - the class's failure: said in one line
            line, _ = describe(exc)  # the message and what to do, in one line
            err_console().print(f"[red]class {record.name}: {escape(what)} failed: "
                                f"{escape(line)}[/red]", soft_wrap=True)
            return False, sig.interrupted
    return not sig.interrupted, sig.interrupted


def _not_started(record: Any, why: str, status: str = "failed") -> None:
    for lab in record.labs:
        if lab.status in ("pending", "running"):
            lab.status, lab.error = status, why


def _stand_up(app: Any, classes: Any, record: Any, admin: Any, max_parallel: int | None,
              json_out: bool) -> tuple[bool, str | None, dict[int, Any]]:
    """The administrator, every lab's setup, then the threat lists: (all of it done, the
    signal that cut it short, the setups' results)."""
    from gdlab.cli.classes import _fan

    ok, cut = _class_step(record, f"setting up the administrator {admin.account}",
                          admin.prepare)
    if not ok:
        if cut:
            _not_started(record, "interrupted while the administrator was set up",
                         "interrupted")
        else:
            _not_started(record, "the class's administrator could not be set up")
        classes.save(record)  # its status says so too
        return False, cut, {}
    results, sig, _ = _fan(app, classes, record, "setup", max_parallel, json_out)
    if sig.interrupted:
        return False, sig.interrupted, results
    ok, cut = _class_step(record, "writing the threat lists",
                          lambda stop: admin.publish(stop, _wait(app)))
    return ok, cut, results


def run(app: Any, classes: Any, record: Any, max_parallel: int | None, json_out: bool,
        junit: Any, timeout: float | None) -> None:
    from gdlab.cli.classes import _fan, _finish
    from gdlab.lab import class_admin

    started = time.monotonic()
    admin = administrator(app, classes, record)
    with class_admin.serve(admin):
        ok, cut, results = _stand_up(app, classes, record, admin, max_parallel, json_out)
        if ok and not cut:
            results, sig, _ = _fan(app, classes, record, "finish", max_parallel, json_out,
                                   timeout=timeout)
            cut = sig.interrupted
        elif any(x.lab for x in record.labs):
            results, _, _ = _fan(app, classes, record, "teardown", max_parallel, json_out,
                                 teardown_only=True)
        released = release(app, classes, record, admin)
    _finish(record, results, SimpleNamespace(interrupted=cut), time.monotonic() - started,
            json_out, junit, ("passed",), extra_ok=released)


def setup(app: Any, classes: Any, record: Any, max_parallel: int | None,
          json_out: bool) -> None:
    from gdlab.cli.classes import _finish
    from gdlab.lab import class_admin

    started = time.monotonic()
    admin = administrator(app, classes, record)
    with class_admin.serve(admin):
        ok, cut, results = _stand_up(app, classes, record, admin, max_parallel, json_out)
    if not ok and not any(x.lab for x in record.labs):
        release(app, classes, record, admin)  # nothing stands on it yet
    _finish(record, results, SimpleNamespace(interrupted=cut), time.monotonic() - started,
            json_out, None, ("set-up",), extra_ok=ok)


def serving(app: Any, classes: Any, record: Any) -> Any:
    """The administrator of a class that has one, for its verify (nothing is changed)."""
    from contextlib import nullcontext

    from gdlab.lab import class_admin

    if not record.admin_account:
        return nullcontext()
    return class_admin.serve(administrator(app, classes, record))


def recover(app: Any, classes: Any, record: Any, regions: list[str]) -> None:
    """What the copies of the administrator's journal in its buckets name, added to the
    record (a class started on another machine, or whose record was lost)."""
    admin = administrator(app, classes, record)
    found: list[int] = []
    _class_step(record, f"reading the journal of administrator {admin.account}",
                lambda stop: found.append(admin.recover(regions)))
    if found and found[0]:
        err_console().print(f"[dim]class {record.name}: {found[0]} change(s) of administrator "
                            f"{admin.account} found in its buckets[/dim]", soft_wrap=True)


def release(app: Any, classes: Any, record: Any, admin: Any = None) -> bool:
    """Undoes the class's administrator changes once none of its labs stands; True when
    nothing of them is left."""
    from gdlab.cli.classes import _standing

    if not record.admin_made:
        return True
    standing = [x for x in record.labs if x.status == "left"
                or (x.lab and _standing(app.store, x.lab))]
    if standing:
        err_console().print(f"[yellow]class {record.name}: the administrator's changes stay "
                            f"while {len(standing)} lab(s) stand — gdlab class teardown "
                            f"{record.name}[/yellow]", soft_wrap=True)
        return False
    admin = admin or administrator(app, classes, record)
    problems: list[str] = []

    def undo(stop: Any) -> None:
        problems.extend(admin.release())

    _class_step(record, "removing the administrator's changes", undo, teardown_only=True)
    for problem in problems:
        err_console().print(f"[red]class {record.name}: left {escape(problem)}[/red]",
                            soft_wrap=True)
    return not record.admin_made


def _wait(app: Any) -> float:
    """How long a threat list may take to become ACTIVE (minutes on AWS)."""
    return 30.0 if app.cloud().is_local else 900.0
