"""The edges of the command line: what the parser refuses (click's usage message, exit 2)
and what gdlab refuses (one line, exit 2), before anything is started or created."""

import pytest

from gdlab.cli.detect import MAX_COUNT, MAX_DURATION, parse_duration
from gdlab.cli.setup import validate_email
from gdlab.errors import UsageError
from gdlab.lab.trigger import MAX_PINGS


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def nothing_started(home) -> bool:
    return not (home / "local").exists() and not (home / "labs").exists()


# --- e-mail addresses ----------------------------------------------------------------------
@pytest.mark.parametrize("command", ["setup", "run"])
def test_an_address_with_a_trailing_newline_is_refused(run_cli, gdlab_home, command):
    code, _, err = run_cli(command, "--email", "a@b.co\n")
    line = one_line(err)
    assert code == 2
    assert "invalid e-mail address 'a@b.co\\n'" in line
    assert nothing_started(gdlab_home)


def test_an_address_longer_than_254_characters_is_refused(run_cli, gdlab_home):
    address = "a" * 243 + "@example.com"
    assert len(address) == 255
    code, _, err = run_cli("setup", "--email", address)
    line = one_line(err)
    assert code == 2
    assert "255 characters long, at most 254" in line
    assert len(line) < 200  # the address itself is not repeated
    assert nothing_started(gdlab_home)


@pytest.mark.parametrize("address", ["a@b.co", "first.last+lab@mail.example.org",
                                     "x" * 242 + "@example.com"])
def test_good_addresses_pass(address):
    assert validate_email(address) == address


@pytest.mark.parametrize("address", ["a@b.co\n", "\na@b.co", "a@b.co\r", "a b@c.de", "a@b@c.de",
                                     "a@b.c", "a\x00@b.co", "@b.co", "a@.co"])
def test_bad_addresses_fail(address):
    with pytest.raises(UsageError) as raised:
        validate_email(address)
    assert "\n" not in str(raised.value) and "\x00" not in str(raised.value)


# --- ping counts ---------------------------------------------------------------------------
@pytest.mark.parametrize("count", ["0", "-1", "101", "1000000000000000000000000"])
def test_trigger_count_out_of_range(run_cli, gdlab_home, count):
    code, _, err = run_cli("trigger", "--count", count)
    line = one_line(err)
    assert code == 2
    assert f"--count must be between 1 and {MAX_COUNT}" in line
    assert nothing_started(gdlab_home)


def test_trigger_count_not_a_number_is_a_usage_error(run_cli, gdlab_home):
    code, _, err = run_cli("trigger", "--count", "many")
    assert code == 2
    assert "Invalid value for '--count'" in err
    assert "Traceback" not in err and "BadParameter" not in err


def test_trigger_help_tells_the_range(run_cli):
    code, out, _ = run_cli("trigger", "--help")
    assert code == 0 and f"1 to {MAX_COUNT}" in out


def test_the_core_has_the_same_cap():
    assert MAX_PINGS == MAX_COUNT


# --- durations -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command, value, expected",
    [
        ("watch", "99999h", "longer than the 24h maximum"),
        ("watch", "24h1s", "longer than the 24h maximum"),
        ("watch", "9" * 400, "longer than the 24h maximum"),
        ("run", "25h", "longer than the 24h maximum"),
        ("watch", "0", "must be more than 0"),
        ("watch", "0s", "must be more than 0"),
        ("run", "0m", "must be more than 0"),
        ("watch", "-5m", "invalid duration '-5m'"),
        ("watch", "soon", "invalid duration 'soon'"),
        ("watch", "5m\nx", "invalid duration '5m\\nx'"),
        ("run", "1e5", "invalid duration '1e5'"),
    ],
)
def test_bad_timeouts(run_cli, gdlab_home, command, value, expected):
    code, _, err = run_cli(command, "--timeout", value)
    line = one_line(err)
    assert code == 2
    assert expected in line
    assert len(line) < 250
    assert nothing_started(gdlab_home)


def test_durations_that_pass():
    assert parse_duration("24h") == MAX_DURATION
    assert parse_duration("1h30m") == 5400
    assert parse_duration(" 90 ") == 90
    assert parse_duration("1.5s") == 1.5


def test_watch_help_tells_the_maximum(run_cli):
    code, out, _ = run_cli("watch", "--help")
    assert code == 0 and "at most 24h" in out


# --- what the parser refuses: click's own usage message, exit 2 -----------------------------
@pytest.mark.parametrize(
    "args, expected",
    [
        (("nope",), "No such command 'nope'"),
        (("local", "nope"), "No such command 'nope'"),
        (("status", "--bogus"), "No such option: --bogus"),
        (("watch", "--timeout"), "Option '--timeout' requires an argument"),
        (("setup", "--email"), "Option '--email' requires an argument"),
        (("--target",), "Option '--target' requires an argument"),
        (("status", "--lab"), "Option '--lab' requires an argument"),
        (("verify", "extra"), "Got unexpected extra argument"),
    ],
)
def test_parser_errors_exit_2_with_the_usage(run_cli, gdlab_home, args, expected):
    code, out, err = run_cli(*args)
    assert code == 2, err
    assert f"Error: {expected}" in err
    assert "UsageError" not in err and "Traceback" not in err and "error: " not in err
    assert nothing_started(gdlab_home)


@pytest.mark.parametrize("args", [(), ("local",)])
def test_a_group_alone_shows_its_help(run_cli, args):
    code, out, err = run_cli(*args)
    assert code == 0
    assert "Usage: gdlab" in out + err
    assert "NoArgsIsHelpError" not in out + err
