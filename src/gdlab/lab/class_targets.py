"""What each `gdlab class` command does to one target (account, region) of a class: run,
set up, verify or tear down its lab, in that account through the class's assumed role.

Every method takes the target's ClassLab entry and records on it what happened (status,
phase, lab id, error, seconds); none raises for a target's own failure, so one target never
stops the others (fanout.fan_out runs them side by side)."""

from __future__ import annotations

import threading
import time
from typing import Any

from gdlab.cloud import Cloud
from gdlab.errors import GdlabError, LabNotFound, describe
from gdlab.lab import accounts
from gdlab.lab.classroom import ClassLab, ClassRecord, ClassStore, session_name
from gdlab.lab.fanout import SharedInterrupts, TargetEvents
from gdlab.lab.state import LabStore


class Classroom:
    def __init__(self, base: Cloud, store: LabStore, classes: ClassStore, record: ClassRecord,
                 shared: SharedInterrupts, on_change: Any = None):
        self.base, self.store, self.classes, self.record = base, store, classes, record
        self.shared = shared
        self.on_change = on_change or (lambda: None)
        self._credentials: dict[str, Any] = {}
        self._reach_lock = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}

    # --- reaching a target -----------------------------------------------------------------
    def reach(self, entry: ClassLab) -> Cloud:
        """The target's cloud: the caller's own credentials in its own account, else one
        AssumeRole per account (its regions share the session). TargetUnreachable when the
        role cannot be assumed."""
        with self._reach_lock:
            lock = self._account_locks.setdefault(entry.account, threading.Lock())
        with lock:
            if entry.account not in self._credentials:
                if entry.account == self.base.account:
                    self._credentials[entry.account] = None
                else:
                    self._credentials[entry.account] = accounts.assume(
                        self.base, entry.account, self.record.role,
                        session_name(self.record.name))
            credentials = self._credentials[entry.account]
        cloud = accounts.reach(self.base, entry.account, entry.region, credentials)
        cloud.account  # noqa: B018 - proves the session before the target's work starts
        return cloud

    def changed(self, save: bool) -> None:
        if save:
            self.classes.save(self.record)
        self.on_change()

    def _begin(self, entry: ClassLab) -> float:
        entry.status, entry.error, entry.phase = "running", None, ""
        self.changed(False)
        return time.monotonic()

    def _end(self, entry: ClassLab, status: str, started: float, error: str | None = None
             ) -> None:
        entry.status, entry.error = status, error
        entry.seconds = round(time.monotonic() - started, 1)
        self.changed(True)

    # --- the commands ----------------------------------------------------------------------
    def run(self, entry: ClassLab, timeout: float | None = None, resume: bool = False) -> Any:
        """setup -> trigger -> watch -> verify -> teardown of a new lab in the target (of its
        set-up lab: `resume`)."""
        from gdlab.lab import run as core

        started = self._begin(entry)
        try:
            cloud = self.reach(entry)
        except GdlabError as exc:
            return self._end(entry, "skipped", started, str(exc))
        if not resume:
            entry.lab = None
        report = core.run(lambda: cloud, self.store, self.record.scenario, lab=entry.lab,
                          timeout=timeout,
                          sig=self.shared, events=TargetEvents(entry, self.changed),
                          class_name=self.record.name)
        teardown = report.step("teardown")
        torn = teardown is not None and teardown.ok
        failed = report.failed
        if report.passed:
            status = "passed"
        elif report.interrupted:
            status = "interrupted"
        else:
            status = "failed"
        where = "; ".join(f"{s.step}: {s.error}" for s in report.steps if not s.ok)
        if status == "interrupted":
            cut = next((s.step for s in report.steps if s.interrupted), entry.phase)
            where = f"interrupted ({report.interrupted}) during {cut}" + (
                "; its lab was torn down" if torn else "")
        if teardown is not None and not torn:
            status = "left"  # the lab is still there: teardown names what is left
        self._end(entry, status, started, where if failed or report.interrupted else None)
        return report

    def finish(self, entry: ClassLab, timeout: float | None = None) -> Any:
        """The rest of a run once the class stands (a class with a GuardDuty
        administrator sets up every lab, then writes the threat lists): a set-up lab is
        triggered, watched, verified and torn down; one whose setup failed is torn down and
        keeps its failure."""
        if entry.status == "set-up":
            return self.run(entry, timeout, resume=True)
        if entry.status == "skipped" or not entry.lab:
            return None
        status, error = entry.status, entry.error
        self.teardown(entry)
        if entry.status == "torn-down":
            entry.status, entry.error = status, f"{error}; its lab was torn down"
            self.changed(True)
        return None

    def setup(self, entry: ClassLab) -> Any:
        """A new lab in the target, left standing (its students trigger it)."""
        from gdlab.lab.lifecycle import context, open_lab, preflight, setup
        from gdlab.scenario import load

        started = self._begin(entry)
        try:
            cloud = self.reach(entry)
        except GdlabError as exc:
            return self._end(entry, "skipped", started, str(exc))
        scenario = load(self.record.scenario)
        events = TargetEvents(entry, self.changed)
        try:
            events.phase("setup")
            preflight(cloud, self.store, scenario, None)
            if self.shared.stop.is_set():
                return self._end(entry, "interrupted", started, "interrupted before setup")
            state = open_lab(self.store, cloud, scenario, class_name=self.record.name)
            events.named(state.lab)
            try:
                setup(context(cloud, state, scenario), cancel=self.shared.stop)
            finally:
                self.store.release(state.lab)
        except Exception as exc:  # noqa: BLE001 - the target's failure is its outcome
            return self._end(entry, "failed", started, describe(exc)[0])
        return self._end(entry, "set-up", started)

    def verify(self, entry: ClassLab) -> Any:
        from gdlab.lab import verify as verify_core
        from gdlab.lab.lifecycle import context
        from gdlab.scenario import load

        started = self._begin(entry)
        if not entry.lab:
            return self._end(entry, "skipped", started, "no lab here (its setup never began)")
        try:
            cloud = self.reach(entry)
            state = self.store.load(entry.lab)
            with self.shared.interruptible():
                verdict = verify_core.verify(context(cloud, state, load(state.scenario)))
        except KeyboardInterrupt:
            return self._end(entry, "interrupted", started, "interrupted")
        except Exception as exc:  # noqa: BLE001
            return self._end(entry, "failed", started, describe(exc)[0])
        failed = [c.name for c in verdict.checks if not c.passed]
        self._end(entry, "passed" if verdict.passed else "failed", started,
                  ", ".join(failed) + " failed" if failed else None)
        return verdict

    def teardown(self, entry: ClassLab) -> Any:
        """Everything of the target's lab, found by its state file or else by its tags."""
        from gdlab.lab import lifecycle
        from gdlab.scenario import load

        if not entry.lab:  # its setup never began, or its account could not be searched
            kept = entry.status in ("skipped", "left")
            return self._end(entry, entry.status if kept else "torn-down", time.monotonic(),
                             entry.error if kept else None)
        started = self._begin(entry)
        try:
            cloud = self.reach(entry)
        except GdlabError as exc:
            return self._end(entry, "left", started, str(exc))
        try:
            with self.store.locked(entry.lab):
                state = self._state_of(cloud, entry.lab)
                if state is None:
                    return self._end(entry, "torn-down", started)
                events = lifecycle.teardown(lifecycle.context(cloud, state, load(state.scenario)),
                                            store=self.store, cancel=self.shared.cancel)
        except Exception as exc:  # noqa: BLE001
            return self._end(entry, "left", started, describe(exc)[0])
        self._end(entry, "torn-down", started)
        return events

    def _state_of(self, cloud: Cloud, lab: str) -> Any:
        from gdlab.lab.discovery import rebuild_lost_lab, scenario_of
        from gdlab.scenario import load

        if self.store.exists(lab):
            state = self.store.load(lab)
            return None if state.phase == "torn-down" else state
        try:
            return rebuild_lost_lab(self.store, cloud, load(scenario_of(cloud, lab)), lab)
        except LabNotFound:
            return None

    def find(self, entry: ClassLab) -> list[str]:
        """The class's labs in this target, by the gdlab:class tag (a class record from
        another machine, or none at all)."""
        from gdlab.lab.discovery import class_labs

        try:
            return sorted(class_labs(self.reach(entry), self.record.name))
        except GdlabError as exc:  # what the account holds is unknown: it may hold labs
            entry.status, entry.error = "left", f"not searched: {exc}"
            return []
