"""A class on screen and in files: the live table of its targets, one line per target as it
ends, the JSON report and JUnit XML with a suite per target."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from rich.markup import escape
from rich.table import Table

from gdlab.lab.classroom import ClassLab, ClassRecord

STYLE = {"passed": "green", "set-up": "green", "torn-down": "green", "running": "cyan",
         "pending": "dim", "failed": "red", "left": "red", "skipped": "yellow",
         "interrupted": "yellow"}


def status_text(status: str) -> str:
    return f"[{STYLE.get(status, 'white')}]{escape(status)}[/]"


def table(record: ClassRecord, title: str | None = None) -> Table:
    """A row per target: where, its lab, what it is doing or how it ended."""
    shown = Table(title=title or f"class {record.name} ({record.scenario})",
                  title_justify="left")
    for column in ("account", "region", "lab", "status", "seconds"):
        shown.add_column(column, justify="right" if column == "seconds" else "left",
                         no_wrap=True)
    shown.add_column("note", overflow="fold", ratio=1)
    for lab in record.labs:
        doing = f" ({escape(lab.phase)})" if lab.status == "running" and lab.phase else ""
        shown.add_row(lab.account, lab.region, escape(lab.lab or "-"),
                      status_text(lab.status) + doing,
                      f"{lab.seconds:.1f}" if lab.seconds is not None else "",
                      escape((lab.error or "")[:300]))
    return shown


def line(lab: ClassLab) -> str:
    """One target's end, for output that is not a terminal."""
    took = f" in {lab.seconds:.1f} s" if lab.seconds is not None else ""
    note = f": {escape(lab.error)}" if lab.error else ""
    return (f"{lab.account} {lab.region} lab {escape(lab.lab or '-')} "
            f"{status_text(lab.status)}{took}{note}")


def counts(record: ClassRecord) -> str:
    tally: dict[str, int] = {}
    for lab in record.labs:
        tally[lab.status] = tally.get(lab.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))


def report(record: ClassRecord, passed: bool, seconds: float,
           runs: dict[int, Any] | None = None) -> dict[str, Any]:
    """`--json`: the class, its verdict, and each target with (for run) its run report."""
    targets = []
    for index, lab in enumerate(record.labs):
        item = {"account": lab.account, "region": lab.region, "lab": lab.lab,
                "status": lab.status, "error": lab.error, "seconds": lab.seconds}
        found = (runs or {}).get(index)
        if found is not None and hasattr(found, "to_dict"):
            item["report"] = found.to_dict()
        targets.append(item)
    found = {"class": record.name, "scenario": record.scenario, "target": record.target,
             "role": record.role, "passed": passed, "seconds": round(seconds, 1),
             "targets": targets}
    if record.admin_account:
        found["administrator"] = {"account": record.admin_account, "home": record.admin_home,
                                  "standing": [dict(e) for e in record.admin_made]}
    return found


def junit_xml(record: ClassRecord, results: dict[int, Any]) -> str:
    """A suite per target, gdlab.class.<name>.<account>.<region>: its checks when it was
    verified, else one testcase that says why not (skipped when the target was)."""
    from gdlab.render.incident import _document, junit_suite

    suites = []
    for index, lab in enumerate(record.labs):
        name = f"gdlab.class.{record.name}.{lab.account}.{lab.region}"
        result = results.get(index)
        verdict = getattr(result, "verify", None) or (
            result if hasattr(result, "checks") else None)
        seconds = lab.seconds or 0.0
        if verdict is not None:
            suites.append(junit_suite(verdict, seconds, name))
            continue
        skipped = lab.status == "skipped"
        suite = ET.Element("testsuite", name=name, tests="1", failures="0",
                           errors="0" if skipped else "1", skipped="1" if skipped else "0",
                           time=f"{seconds:.3f}")
        case = ET.SubElement(suite, "testcase", classname=f"gdlab.{lab.lab or lab.account}",
                             name=lab.region)
        why = lab.error or lab.status
        ET.SubElement(case, "skipped" if skipped else "error", message=why,
                      type="target").text = why
        suites.append(suite)
    return _document(suites)
