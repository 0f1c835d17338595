"""The incident report in a real browser: headless Chromium opens the file `gdlab run
--report` wrote, the DOM it rendered holds the architecture, the finding, both e-mails and
every check, and its screenshot is not blank. Where no Chromium is installed the test is
skipped, unless GDLAB_REQUIRE_BROWSER=1 (CI sets it: .ci/run installs Debian's chromium)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture
def browser() -> str:
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        if os.environ.get("GDLAB_REQUIRE_BROWSER") == "1":
            pytest.fail("GDLAB_REQUIRE_BROWSER=1 but no Chromium is installed "
                        "(apt-get install chromium)")
        pytest.skip("no Chromium installed (apt-get install chromium)")
    return found


def headless(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium with a profile of its own, offline to everything but the file."""
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


class Rendered(HTMLParser):
    """What the rendered DOM holds: its elements' tags and attributes, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements
                if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """A PNG's width, height and rows of RGB(A) bytes, its filters undone (8-bit RGB or RGBA,
    not interlaced, as Chromium writes them)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * bpp, [], bytes(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) *
                                                           (stride + 1)])
        for x in range(stride):
            left = line[x - bpp] if x >= bpp else 0
            up = previous[x]
            corner = previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else
                                      up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, bpp, rows


def test_chromium_renders_the_whole_incident(gdlab, cloud, browser, tmp_path: Path):
    page = tmp_path / "incident.html"
    code, out, err = gdlab("run", "--json", "--report", str(page))
    assert code == 0, err
    run = json.loads(out)

    dumped = headless(browser, tmp_path, "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Rendered()
    dom.feed(dumped.stdout)
    text = " ".join(dom.text)
    # The architecture, drawn from the lab's resources, with the incident's path numbered.
    assert dom.having("svg", **{"class": "architecture"})
    assert len(dom.having("g", **{"class": "node attack"})) == 2
    assert sorted({a["data-step"] for t, a in dom.elements if "data-step" in a}) == list("123456")
    assert dom.having("svg", **{"class": "timeline"})
    # The finding, both e-mails' subjects, and every check with its status.
    finding = run["watch"]["finding_id"]
    assert dom.having("div", **{"class": "finding", "data_finding_id": finding})
    subjects = [t for t, a in dom.elements if a.get("class") == "email-subject"]
    assert len(subjects) == 2
    assert "AWS Notification Message" in text and "GuardDuty Remediation" in text
    for check in run["verify"]["checks"]:
        assert dom.having("tr", data_check=check["name"], data_status=check["status"]), check
    assert not dom.having("script")

    shot = tmp_path / "incident.png"
    taken = headless(browser, tmp_path, f"--screenshot={shot}", "--window-size=1024,768",
                     page.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    width, bpp, rows = png_pixels(shot.read_bytes())
    assert width == 1024 and len(rows) == 768
    colours = {row[x:x + 3] for row in rows[::4] for x in range(0, width * bpp, bpp * 4)}
    assert len(colours) > 50, "the screenshot is nearly blank"
    header = {rows[20][x:x + 3] for x in range(0, 400 * bpp, bpp)}
    assert bytes.fromhex("232f3e") in header, "the report's header is not drawn"
