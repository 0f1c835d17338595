"""gdlab class setup / run / status / verify / teardown: one lab per (account, region) of a
class, side by side, through a role assumed in each account."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from gdlab.cli import signals
from gdlab.cli.common import console, err_console, interrupt_explained, obj, print_json, writable
from gdlab.errors import UsageError

class_app = typer.Typer(
    help=("A class: the lab in many accounts and regions at once, one lab each, through a "
          "role assumed in every account.\n\n"
          "Example: gdlab class run sec-101 --organization --regions us-east-1,eu-west-1"),
    no_args_is_help=True,
)

NAME = typer.Argument(..., help="The class's name (3-24 lowercase letters, digits, dashes).")
ACCOUNTS = typer.Option(None, "--accounts", help="Account ids, comma-separated.")
ORGANIZATION = typer.Option(False, "--organization",
                            help="Every active account of the organization but the caller's.")
OU = typer.Option(None, "--ou", help="With --organization: only the accounts of this OU.")
ROLE = typer.Option(None, "--role", help="Role to assume in each account "
                                         "(default: OrganizationAccountAccessRole).")
REGIONS = typer.Option(None, "--regions", help="Regions, comma-separated (default: the "
                                               "current region).")
MAX_PARALLEL = typer.Option(None, "--max-parallel", min=1, max=64,
                            help="Labs at once (default 8).")
JSON_OUT = typer.Option(False, "--json", help="Print the class's report as JSON.")
JUNIT = typer.Option(None, "--junit", help="Also write JUnit XML: one test suite per target.")
SCENARIO = typer.Option(None, "--scenario", help="Scenario of every lab (default: "
                                                 "compromised-ec2).")
YES = typer.Option(False, "--yes", "-y", help="Do not ask before creating on AWS.")
ADMIN = typer.Option(None, "--admin-account",
                     help="GuardDuty and Security Hub administrator of the class's accounts "
                          "(delegated in each region by the caller, the management account): "
                          "it holds the threat lists and sees every lab's finding; the first "
                          "of --regions is its home, where Security Hub aggregates.")


def register(app: typer.Typer) -> None:
    app.add_typer(class_app, name="class")


def _targets(app: Any, accounts: str | None, organization: bool, ou: str | None,
             regions: str | None, admin: str | None = None) -> list[tuple[str, str]]:
    from gdlab.lab import accounts as orgs
    from gdlab.lab.classroom import parse_accounts, parse_regions

    given = parse_accounts(accounts)
    wanted = parse_regions(regions)
    if given and organization:
        raise UsageError("--accounts and --organization both say which accounts",
                         "give one of them")
    if ou and not organization:
        raise UsageError("--ou narrows --organization", "add --organization")
    if not given and not organization:
        raise UsageError("a class needs its accounts",
                         "pass --accounts 111111111111,222222222222 or --organization")
    if admin and admin in given:
        raise UsageError(f"{admin} is the class's administrator, and runs no lab",
                         "leave it out of --accounts")
    cloud = app.cloud()
    found = orgs.organization_accounts(cloud, ou) if organization else given
    found = [a for a in found if a != admin]  # the administrator watches; it runs no lab
    if not found:
        raise UsageError("the organization has no account but the caller's",
                         "create member accounts (on the local cloud: gdlab local org create "
                         "--accounts 3), or pass --accounts")
    return [(account, region) for account in found for region in (wanted or [cloud.region])]


def _new_record(app: Any, name: str, scenario: str | None, role: str | None,
                targets: list[tuple[str, str]], admin: str | None = None) -> Any:
    from gdlab.lab.classroom import DEFAULT_ROLE, ClassLab, ClassRecord, ClassStore
    from gdlab.scenario import DEFAULT_SCENARIO, load

    classes = ClassStore(app.store.home)
    classes.hold(name)
    if classes.exists(name):
        old = classes.load(name)
        standing = [x for x in old.labs if x.lab and _standing(app.store, x.lab)]
        if standing:
            raise UsageError(f"class {name} still has {len(standing)} lab(s)",
                             f"gdlab class teardown {name} first, or choose another name")
        if old.admin_made:
            raise UsageError(f"class {name} still has {len(old.admin_made)} change(s) of its "
                             f"administrator {old.admin_account}",
                             f"gdlab class teardown {name} first, or choose another name")
    cloud = app.cloud()
    record = ClassRecord(name=name, target=cloud.target,
                         scenario=load(scenario or DEFAULT_SCENARIO).name,
                         role=role or DEFAULT_ROLE,
                         endpoint=cloud.endpoint_url if cloud.target == "aws" else None,
                         admin_account=admin,
                         admin_home=targets[0][1] if admin and targets else None,
                         labs=[ClassLab(account, region) for account, region in targets])
    classes.save(record)
    return classes, record


def _standing(store: Any, lab: str) -> bool:
    """Whether a lab of a class may still have resources (its state says so, or is gone)."""
    from gdlab.errors import GdlabError

    try:
        return store.load(lab).phase != "torn-down"
    except GdlabError:
        return True  # no readable state: only a teardown (by tag) can tell


def _fan(app: Any, classes: Any, record: Any, what: str, max_parallel: int | None,
         json_out: bool, teardown_only: bool = False, **options: Any
         ) -> tuple[dict[int, Any], Any, float]:
    """Runs `what` (a Classroom method) for every target, with one live table (a terminal)
    or a line per target as it ends; the results by target index."""
    from rich.live import Live

    from gdlab.lab.class_targets import Classroom
    from gdlab.lab.classroom import DEFAULT_MAX_PARALLEL
    from gdlab.lab.fanout import SharedInterrupts, fan_out
    from gdlab.render.classes import line, table

    out = err_console() if json_out else console()
    started = time.monotonic()
    with signals.handling(None, teardown_only=teardown_only) as sig:
        shared = SharedInterrupts(sig)
        live = Live(table(record), console=out, auto_refresh=False) if out.is_terminal else None
        ended: set[int] = set()

        def tick() -> None:
            if live is not None:
                live.update(table(record), refresh=True)
                return
            for index, lab in enumerate(record.labs):
                if index not in ended and lab.status not in ("pending", "running"):
                    ended.add(index)
                    out.print(line(lab), soft_wrap=True)

        room = Classroom(app.cloud(), app.store, classes, record, shared)
        work = getattr(room, what)

        def each(index: int) -> Any:
            try:
                return work(record.labs[index], **options)
            except Exception as exc:  # a bug, not a target's outcome: said, and the rest go on
                lab = record.labs[index]
                lab.status, lab.error = "failed", f"{type(exc).__name__}: {exc}"
                raise

        indexed = list(range(len(record.labs)))
        if live is not None:
            live.start()
        try:
            found = fan_out(indexed, each,
                            max_parallel or DEFAULT_MAX_PARALLEL, shared, tick=tick)
        finally:
            tick()
            if live is not None:
                live.stop()
        classes.save(record)
    return dict(enumerate(found)), sig, time.monotonic() - started


def _finish(record: Any, results: dict[int, Any], sig: Any, seconds: float, json_out: bool,
            junit: Path | None, ok: tuple[str, ...], extra_ok: bool = True) -> None:
    from gdlab.render.classes import counts, junit_xml, report

    passed = extra_ok and not sig.interrupted and all(x.status in ok for x in record.labs)
    if junit is not None:
        try:
            junit.write_text(junit_xml(record, results))
        except OSError as exc:
            err_console().print(f"[red]could not write {escape(str(junit))}: "
                                f"{exc.strerror}[/red]")
    if json_out:
        print_json(report(record, passed, seconds, results))
    else:
        verdict = "[bold green]PASSED[/bold green]" if passed else "[bold red]FAILED[/bold red]"
        console().print(f"class {record.name}: {verdict} — {counts(record)} — "
                        f"{len(record.labs)} target(s) in {seconds:.1f} s")
    if sig.interrupted:
        interrupt_explained()
        raise typer.Exit(130)
    if not passed:
        raise typer.Exit(1)


def _confirm(app: Any, yes: bool, record: Any) -> None:
    from gdlab.cli.setup import confirm_billable

    accounts = sorted({x.account for x in record.labs})
    regions = sorted({x.region for x in record.labs})
    with signals.interruptible():
        confirm_billable(app.cloud(), yes, f"gdlab will create {len(record.labs)} lab(s) of "
                         f"class {record.name}",
                         f"{len(accounts)} AWS account(s) ({', '.join(accounts[:5])}"
                         f"{', ...' if len(accounts) > 5 else ''}), region(s) "
                         f"{', '.join(regions)}")


def _open_class(ctx: typer.Context, name: str, accounts: str | None, organization: bool,
                ou: str | None, role: str | None, regions: str | None, scenario: str | None,
                admin_account: str | None, yes: bool) -> tuple[Any, Any, Any]:
    """A new class's record, its inputs checked and (on AWS) the user asked once."""
    from gdlab.lab.classroom import validate_admin_account, validate_class_name, validate_role

    validate_class_name(name)
    validate_role(role or "OrganizationAccountAccessRole")
    validate_admin_account(admin_account)
    app = obj(ctx)
    classes, record = _new_record(app, name, scenario, role,
                                  _targets(app, accounts, organization, ou, regions,
                                           admin_account), admin_account)
    _confirm(app, yes, record)
    return app, classes, record


@class_app.command("run")
def run(ctx: typer.Context, name: str = NAME, accounts: str = ACCOUNTS,
        organization: bool = ORGANIZATION, ou: str = OU, role: str = ROLE,
        regions: str = REGIONS, scenario: str = SCENARIO,
        max_parallel: int = MAX_PARALLEL,
        timeout: str = typer.Option(None, "--timeout",
                                    help="Each lab's watch deadline, e.g. 90s or 20m."),
        admin_account: str = ADMIN, yes: bool = YES, json_out: bool = JSON_OUT,
        junit: Path = JUNIT) -> None:
    """Run the whole incident in every target (setup -> trigger -> watch -> verify ->
    teardown), side by side; exit 0 only when every target passed.

    \b
    Example: gdlab class run sec-101 --organization --regions us-east-1,eu-west-1
    Example: gdlab class run demo --accounts 111111111111,222222222222 --json
    Example: gdlab class run sec-101 --organization --admin-account 333333333333
    """
    from gdlab.cli.detect import parse_duration

    seconds = parse_duration(timeout)
    writable(junit, "JUnit XML")
    app, classes, record = _open_class(ctx, name, accounts, organization, ou, role, regions,
                                       scenario, admin_account, yes)
    if admin_account:
        from gdlab.cli import class_phases

        class_phases.run(app, classes, record, max_parallel, json_out, junit, seconds)
        return
    results, sig, took = _fan(app, classes, record, "run", max_parallel, json_out,
                              timeout=seconds)
    _finish(record, results, sig, took, json_out, junit, ("passed",))


@class_app.command("setup")
def setup(ctx: typer.Context, name: str = NAME, accounts: str = ACCOUNTS,
          organization: bool = ORGANIZATION, ou: str = OU, role: str = ROLE,
          regions: str = REGIONS, scenario: str = SCENARIO,
          max_parallel: int = MAX_PARALLEL, admin_account: str = ADMIN, yes: bool = YES,
          json_out: bool = JSON_OUT) -> None:
    """Set up a lab in every target and leave it standing (students trigger their own).

    Example: gdlab class setup sec-101 --accounts 111111111111,222222222222
    """
    app, classes, record = _open_class(ctx, name, accounts, organization, ou, role, regions,
                                       scenario, admin_account, yes)
    if admin_account:
        from gdlab.cli import class_phases

        class_phases.setup(app, classes, record, max_parallel, json_out)
        return
    results, sig, took = _fan(app, classes, record, "setup", max_parallel, json_out)
    _finish(record, results, sig, took, json_out, None, ("set-up",))


@class_app.command("verify")
def verify(ctx: typer.Context, name: str = NAME, max_parallel: int = MAX_PARALLEL,
           json_out: bool = JSON_OUT, junit: Path = JUNIT) -> None:
    """Verify every lab of the class, as gdlab verify does in one.

    Example: gdlab class verify sec-101 --junit class.xml
    """
    from gdlab.lab.classroom import ClassStore

    writable(junit, "JUnit XML")
    app = obj(ctx)
    classes = ClassStore(app.store.home)
    classes.hold(name)
    record = classes.load(name)
    from gdlab.cli.class_phases import serving

    with serving(app, classes, record):  # a class's administrator: its view is checked too
        results, sig, took = _fan(app, classes, record, "verify", max_parallel, json_out)
    _finish(record, results, sig, took, json_out, junit, ("passed",))


@class_app.command("teardown")
def teardown(ctx: typer.Context, name: str = NAME, accounts: str = ACCOUNTS,
             organization: bool = ORGANIZATION, ou: str = OU, role: str = ROLE,
             regions: str = REGIONS, max_parallel: int = MAX_PARALLEL,
             admin_account: str = ADMIN, yes: bool = YES, json_out: bool = JSON_OUT) -> None:
    """Remove every lab of the class: those its record names and, with targets given, those
    found in them by the gdlab:class tag (a class started on another machine); then undo
    what the class changed for its administrator (with targets, also what the journal in the
    administrator's buckets names).

    \b
    Example: gdlab class teardown sec-101
    Example: gdlab class teardown sec-101 --organization --regions us-east-1,eu-west-1
    Example: gdlab class teardown sec-201 --organization --admin-account 333333333333
    """
    from gdlab.cli.setup import confirm_billable
    from gdlab.lab.classroom import (
        ClassStore,
        DamagedClass,
        validate_admin_account,
        validate_class_name,
    )

    validate_class_name(name)
    validate_admin_account(admin_account)
    app = obj(ctx)
    classes = ClassStore(app.store.home)
    classes.hold(name)
    swept = bool(accounts or organization)
    record = None
    if classes.exists(name):
        try:
            record = classes.load(name)
        except DamagedClass as exc:
            if not swept:
                raise
            kept = classes.set_aside(name)
            err_console().print(f"[yellow]{escape(exc.message)}: kept as {escape(str(kept))}; "
                                "finding the class's labs by tag[/yellow]", soft_wrap=True)
    if record is None and swept:
        _, record = _new_record(app, name, None, role, [])
    else:
        classes.load(name)  # says there is no such class, and how to sweep for one
    _add_journaled(app.store, record)
    if swept:
        targets = _targets(app, accounts, organization, ou, regions, admin_account)
        _sweep(app, classes, record, targets, role, max_parallel)
        if admin_account or record.admin_account:
            from gdlab.cli.class_phases import recover

            record.admin_account = record.admin_account or admin_account
            recover(app, classes, record, sorted({region for _, region in targets}))
    with signals.interruptible():
        confirm_billable(app.cloud(), yes, f"gdlab will delete the labs of class {name}")
    results, sig, took = _fan(app, classes, record, "teardown", max_parallel, json_out,
                              teardown_only=True)
    released = True
    if not sig.interrupted:
        from gdlab.cli.class_phases import release

        released = release(app, classes, record)
    if (all(x.status in ("torn-down", "skipped") for x in record.labs) and released
            and not sig.interrupted):
        classes.forget(name)
    _finish(record, results, sig, took, json_out, None, ("torn-down", "skipped"),
            extra_ok=released)


def _add_journaled(store: Any, record: Any) -> None:
    """Adds the labs of this home whose state names the class and the record does not (a
    process killed between opening a lab and writing the record)."""
    from gdlab.lab.classroom import ClassLab

    known = {x.lab for x in record.labs if x.lab}
    for state in store.all():
        if (state.options.get("class") == record.name and state.lab not in known
                and state.phase != "torn-down" and state.account):
            record.labs.append(ClassLab(state.account, state.region, lab=state.lab,
                                        status="found"))


def _sweep(app: Any, classes: Any, record: Any, targets: list[tuple[str, str]],
           role: str | None, max_parallel: int | None) -> None:
    """Adds to the record every lab the class's tag marks in these targets."""
    from gdlab.lab.class_targets import Classroom
    from gdlab.lab.classroom import ClassLab
    from gdlab.lab.fanout import SharedInterrupts, fan_out
    from gdlab.lab.run import NoSignals

    if role:
        record.role = role
    room = Classroom(app.cloud(), app.store, classes, record, SharedInterrupts(NoSignals()))
    probes = [ClassLab(account, region) for account, region in targets]
    found = fan_out(probes, room.find, max_parallel or 8, room.shared)
    known = {x.lab for x in record.labs if x.lab}
    for probe, labs in zip(probes, found, strict=True):
        if isinstance(labs, BaseException):
            labs = []
        if probe.status == "left" and record.lab_at(probe.account, probe.region) is None:
            record.labs.append(probe)
        for lab in labs:
            if lab not in known:
                record.labs.append(ClassLab(probe.account, probe.region, lab=lab,
                                            status="found"))
                known.add(lab)
    classes.save(record)


@class_app.command("status")
def status(ctx: typer.Context, name: str = typer.Argument(None, help="A class (default: "
                                                                        "list them)."),
           json_out: bool = JSON_OUT) -> None:
    """The classes of this home, or one class's targets and how each stands (no cloud
    calls: what the class's record says).

    Example: gdlab class status sec-101 --json
    """
    from gdlab.lab.classroom import ClassStore, DamagedClass
    from gdlab.render.classes import counts, report, table

    classes = ClassStore(obj(ctx).store.home)
    if name is None:
        records, damaged = [], []
        for found in classes.names():
            try:
                records.append(classes.load(found))
            except DamagedClass as exc:
                damaged.append({"class": found, "damaged": exc.message})
        if json_out:
            print_json([{"class": r.name, "scenario": r.scenario, "targets": len(r.labs),
                         "updated_at": r.updated_at} for r in records] + damaged)
            return
        if not records and not damaged:
            console().print("no classes — gdlab class run NAME --accounts ... starts one")
        for r in records:
            console().print(f"{r.name}: {r.scenario}, {len(r.labs)} target(s) — {counts(r)}")
        for d in damaged:
            console().print(f"[yellow]{d['class']}: {escape(d['damaged'])}[/yellow]",
                            soft_wrap=True)
        return
    record = classes.load(name)
    if json_out:
        print_json(report(record, all(x.status == "passed" for x in record.labs), 0.0))
        return
    console().print(table(record))
    if record.admin_account:
        console().print(f"administrator {record.admin_account} (home {record.admin_home}): "
                        f"{len(record.admin_made)} change(s) of the class standing")
