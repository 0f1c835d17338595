"""The shell of a simulated instance, as SSM's AWS-RunShellScript runs it (ssm.run_script).

A small subset of bash, each line in order like ``bash`` without ``-e``: words with
'single' and "double" quotes and backslashes; ``NAME=value`` assignments (alone, or as a
command's environment prefix), ``export``, ``$NAME`` / ``${NAME}`` / ``$?`` and
``$(command)`` expansions (unquoted ones split into fields, as bash does); ``;``, ``&&``,
``||`` and ``set -e`` (which, as in bash, ignores a failure that is not the last command of
an ``&&``/``||`` list). Commands: ``echo``, ``true``, ``false``, ``sleep`` (instant),
``ping`` (the traffic simulator), and the two the credential-exfiltration attack uses:

- ``curl`` to the instance metadata service at 169.254.169.254 (``gdlab.local.imds``), with
  ``-s``, ``-S``, ``-f``, ``-L``, ``-X METHOD`` and ``-H 'Name: value'``. The local cloud has
  no internet: any other address fails to connect, exit code 7 as curl's.
- ``aws <service> <operation>`` from a small explicit table (AWS_CLI), run as a boto3 call
  against the local cloud's own endpoint that counts as coming from this instance's address
  (``trail.from_address``: its public IP, else its private IP). Credentials come from the
  environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else from the
  instance profile through IMDSv2, as the CLI's provider chain takes them. Output and exit
  codes follow AWS CLI version 2 (the CLI of Amazon Linux 2023).

Anything else fails the script with a message naming what the local cloud cannot simulate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gdlab.local import traffic

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSIMULATED = set("|&<>`(){}")


class Failure(Exception):
    """The script cannot go on: `code`, and the message for stderr (and stdout if echo)."""

    def __init__(self, code: int, message: str, echo: bool = False):
        super().__init__(message)
        self.code, self.echo = code, echo


class Syntax(ValueError):
    """A line the shell cannot parse (bash answers it with exit code 2)."""


# --- the words of a line ---------------------------------------------------------------------
@dataclass
class Word:
    """One shell word: (kind, value, quoted) pieces; kind is "text", "var" or "sub"."""

    pieces: list[tuple[str, str, bool]] = field(default_factory=list)

    def add(self, kind: str, value: str, quoted: bool) -> None:
        last = self.pieces[-1] if self.pieces else None
        if kind == "text" and last is not None and last[0] == "text" and last[2] == quoted:
            self.pieces[-1] = ("text", last[1] + value, quoted)  # one run of plain text
        else:
            self.pieces.append((kind, value, quoted))

    def assignment(self) -> tuple[str, Word] | None:
        """(name, value) when the word is NAME=value (an unquoted name before '=')."""
        if not self.pieces or self.pieces[0][0] != "text" or self.pieces[0][2]:
            return None
        name, eq, rest = self.pieces[0][1].partition("=")
        if not eq or not _NAME.fullmatch(name):
            return None
        return name, Word([("text", rest, False), *self.pieces[1:]])


@dataclass
class Part:
    operator: str  # the operator before it: ";", "&&" or "||"
    words: list[Word]
    text: str  # as written, for messages


def _closing(line: str, start: int) -> int:
    """The index of the ')' closing the '$(' whose contents begin at `start`."""
    depth, i, quote = 1, start, ""
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise Syntax("unexpected EOF while looking for matching `)'")


def _dollar(line: str, i: int, word: Word, quoted: bool) -> int:
    """Read the expansion at line[i] == '$' into word; returns the index after it."""
    nxt = line[i + 1] if i + 1 < len(line) else ""
    if nxt == "(":
        end = _closing(line, i + 2)
        word.add("sub", line[i + 2:end], quoted)
        return end + 1
    if nxt == "{":
        end = line.find("}", i + 2)
        if end < 0 or not (_NAME.fullmatch(line[i + 2:end]) or line[i + 2:end] == "?"):
            raise Failure(127, f"the local cloud does not simulate shell syntax "
                               f"'{line[i:end + 1 if end >= 0 else None]}'")
        word.add("var", line[i + 2:end], quoted)
        return end + 1
    if nxt == "?":
        word.add("var", "?", quoted)
        return i + 2
    found = _NAME.match(line, i + 1)
    if found is None:
        word.add("text", "$", quoted)
        return i + 1
    word.add("var", found.group(), quoted)
    return found.end()


def split(line: str) -> list[Part]:
    """A line as its commands, each with the operator before it. Syntax errors raise
    Syntax; shell syntax the local cloud does not simulate raises Failure."""
    parts: list[Part] = []
    operator, words, word, start, i = ";", [], None, 0, 0

    def finish(end: int) -> None:
        if words:
            parts.append(Part(operator, list(words), line[start:end].strip()))

    while i < len(line):
        c = line[i]
        if c in " \t":
            if word is not None:
                words.append(word)
                word = None
            i += 1
            continue
        if word is None and c == "#":
            break
        if c in ";&|" and line[i:i + 2] in ("&&", "||") or c == ";" and line[i:i + 2] != ";;":
            if word is not None:
                words.append(word)
                word = None
            token = line[i:i + 2] if c != ";" else ";"
            if not words:
                raise Syntax(f"syntax error near unexpected token `{token}'")
            finish(i)
            operator, words, start = token, [], i + len(token)
            i += len(token)
            continue
        if c in _UNSIMULATED or c == ";":
            token = line[i:i + 2] if line[i:i + 2] in (";;", "|&", "&>") else c
            raise Failure(127, f"the local cloud does not simulate shell syntax '{token}'")
        word = word if word is not None else Word()
        if c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise Syntax("syntax error: No closing quotation")
            word.add("text", line[i + 1:end], True)
            i = end + 1
        elif c == '"':
            i = _double(line, i + 1, word)
        elif c == "\\":
            word.add("text", line[i + 1:i + 2], True)
            i += 2
        elif c == "$":
            i = _dollar(line, i, word, False)
        else:
            word.add("text", c, False)
            i += 1
    if word is not None:
        words.append(word)
    if not words and operator != ";":
        raise Syntax(f"syntax error near unexpected token `{operator}'")
    finish(len(line))
    return parts


def _double(line: str, i: int, word: Word) -> int:
    """Read a double-quoted string starting after its '"'; returns the index after it."""
    word.add("text", "", True)  # "" is an (empty) word of its own
    while i < len(line):
        c = line[i]
        if c == '"':
            return i + 1
        if c == "\\" and line[i + 1:i + 2] in ('"', "\\", "$", "`"):
            word.add("text", line[i + 1], True)
            i += 2
        elif c == "$":
            i = _dollar(line, i, word, True)
        elif c == "`":
            raise Failure(127, "the local cloud does not simulate shell syntax '`'")
        else:
            word.add("text", c, True)
            i += 1
    raise Syntax("syntax error: No closing quotation")


# --- the shell -------------------------------------------------------------------------------
class Shell:
    """One script's shell on an instance: its variables, exports, output and errors."""

    def __init__(self, instance: Any, variables: dict[str, str] | None = None,
                 exported: set[str] | None = None, err: list[str] | None = None):
        self.instance = instance
        self.variables = dict(variables or {})
        self.exported = set(exported or ())
        self.out: list[str] = []
        self.err = err if err is not None else []
        self.status = self.substituted = 0
        self.errexit = False

    def run(self, commands: list[str]) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of the commands, as bash would run them."""
        lines = [line for block in commands for line in str(block).splitlines()]
        for number, line in enumerate(lines, start=1):
            try:
                exiting = self.run_line(split(line))
            except Syntax as exc:
                return 2, "".join(self.out), "".join(self.err) + f"bash: line {number}: {exc}\n"
            except Failure as exc:
                if exc.echo:
                    self.out.append(f"{exc}\n")
                return exc.code, "".join(self.out), "".join(self.err) + \
                    f"{exc}\nfailed to run commands: exit status {exc.code}\n"
            if exiting:
                break
        end = f"failed to run commands: exit status {self.status}\n" if self.status else ""
        return self.status, "".join(self.out), "".join(self.err) + end

    def run_line(self, parts: list[Part]) -> bool:
        """Run the line's &&/|| lists; True when set -e ends the script (a failed command
        that is the last of its list)."""
        for index, part in enumerate(parts):
            if part.operator == "&&" and self.status != 0 or \
                    part.operator == "||" and self.status == 0:
                continue
            self.status = self.command(part)
            last_of_list = index + 1 == len(parts) or parts[index + 1].operator == ";"
            if self.status != 0 and self.errexit and last_of_list:
                return True
        return False

    # expansion
    def value(self, name: str) -> str:
        return str(self.status) if name == "?" else self.variables.get(name, "")

    def substitute(self, text: str) -> str:
        """$(text): its stdout without trailing newlines, run in a subshell."""
        child = Shell(self.instance, self.variables, self.exported, self.err)
        child.errexit = self.errexit
        child.run_line(split(text))
        self.status = self.substituted = child.status  # $? at once, as bash
        return "".join(child.out).rstrip("\n")

    def expand(self, word: Word, fields: bool = True) -> list[str]:
        """The fields of a word: unquoted expansions are split on blanks when `fields`."""
        result: list[str] = []
        current: str | None = None
        for kind, value, quoted in word.pieces:
            text = value if kind == "text" else (
                self.value(value) if kind == "var" else self.substitute(value))
            if kind == "text" or quoted or not fields:
                current = (current or "") + text
                continue
            pieces = text.split()
            if not pieces:
                continue
            if text[0].isspace() and current is not None:
                result.append(current)
                current = None
            pieces[0] = (current or "") + pieces[0]
            result.extend(pieces[:-1])
            current = pieces[-1]
            if text[-1].isspace():
                result.append(current)
                current = None
        if current is not None:
            result.append(current)
        return result

    # commands
    def command(self, part: Part) -> int:
        words, prefix = list(part.words), {}
        self.substituted = 0  # $? still reads the previous command's status meanwhile
        while words and (assigned := words[0].assignment()) is not None:
            prefix[assigned[0]] = "".join(self.expand(assigned[1], fields=False))
            words.pop(0)
        argv = [f for w in words for f in self.expand(w)]
        if not argv:  # assignments alone set shell variables; $(...)'s status stands
            self.variables.update(prefix)
            return self.substituted
        env = {n: self.variables[n] for n in self.exported if n in self.variables}
        env.update(prefix)
        return self.builtin(argv, env, part.text)

    def builtin(self, argv: list[str], env: dict[str, str], text: str) -> int:
        name = argv[0]
        if name == "export":
            for arg in argv[1:]:
                key, eq, val = arg.partition("=")
                if not _NAME.fullmatch(key):
                    self.err.append(f"bash: export: `{arg}': not a valid identifier\n")
                    return 1
                self.exported.add(key)
                if eq:
                    self.variables[key] = val
            return 0
        if name == "set":
            for flag in (a for a in argv[1:] if a.startswith(("-", "+"))):
                if "e" in flag:
                    self.errexit = flag.startswith("-")
            return 0
        if name == "echo":
            words, newline = argv[1:], "\n"
            if words and words[0] == "-n":
                words, newline = words[1:], ""
            self.out.append(" ".join(words) + newline)
            return 0
        if name in ("true", ":", "sleep"):
            return 0
        if name == "false":
            return 1
        if name.rsplit("/", 1)[-1] == "ping":
            try:
                status, output = traffic.run_ping(self.instance, argv)
            except traffic.Unsupported as exc:
                raise Failure(2, f"gdlab local cloud: cannot simulate '{text}': {exc}",
                              echo=True) from exc
            self.out.append(output)
            return status
        if name.rsplit("/", 1)[-1] == "curl":
            from gdlab.local.instance_commands import curl

            return curl(self, argv, text)
        if name.rsplit("/", 1)[-1] == "aws":
            from gdlab.local.instance_commands import aws

            return aws(self, argv, env, text)
        raise Failure(127, f"gdlab local cloud: cannot simulate '{text}': the local cloud "
                           "runs ping, echo, true, false, sleep, set, export, curl (to "
                           "instance metadata) and aws (a few operations) only", echo=True)


