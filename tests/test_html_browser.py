"""The HTML reports (`--html FILE` on explore, replay and compare), as a person sees them.

The first tests read the file: one self-contained page, the same bytes for the same input.  The
browser tests render it with headless Chromium (Debian's ``chromium``; skipped with the reason
when it is absent): ``--dump-dom`` of a copy carrying a probe script that measures the laid-out
page, and ``--screenshot`` of the page itself, decoded here with zlib (no new dependency) to check
that it is not blank and that the broken step's highlight is on screen where the layout put it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from faultlab.cli import main
from faultlab.designs import DESIGNS, get_design
from faultlab.exploring import explore_design
from faultlab.report.html import explore_html
from faultlab.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SEED_REL = "scenarios/seed/cow-vs-truncate.toml"
SEED = str(ROOT / SEED_REL)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install chromium), so the HTML report cannot be rendered",
)
WIDTH = 1280
BAND = (254, 226, 226)  # the broken step's band (--red-bg)
RED = (220, 38, 38)  # its left edge (--red)


def xip_report() -> str:
    """The report of xip's stale PTE (the same run is also a use-after-free, reported as a second
    counterexample: dropped here, so the page holds one set of lanes)."""
    scenario = load_scenario(SEED)
    verdict = explore_design(scenario, get_design("xip"))
    verdict.counterexamples = verdict.counterexamples[:1]
    return explore_html(scenario, "dfs", [verdict])


# -- the file ----------------------------------------------------------------------------------------
def test_the_report_is_deterministic_and_self_contained() -> None:
    page = xip_report()
    assert page == xip_report()  # same input, same bytes
    assert page.startswith("<!DOCTYPE html>")
    for needle in ("http:", "https:", "<link", "<img", "<iframe", "src=", "@import", "url(", "//cdn"):
        assert needle not in page, needle
    assert page.count("<style>") == 1 and page.count("<script>") == 1


def test_the_report_has_a_lane_per_thread_locks_ptes_isize_and_the_broken_step() -> None:
    page = xip_report()
    assert re.findall(r'class="lane-head lane\d" data-thread="([^"]+)"', page) == ["faulter", "truncator"]
    assert len(re.findall(r'class="band [^"]*broken"', page)) == 1
    assert page.count('class="callout"') == 1
    assert "invariant broken: stale-pte-after-truncate" in page
    assert 'data-lock="&amp;mm-&gt;mmap_sem"' in page and 'class="bar read' in page  # mmap_sem held for read
    assert 'data-lock="&amp;inode-&gt;i_rwsem"' in page
    assert "i_size(data) 8192 -&gt; 4096" in page
    assert 'class="chg ch-pte-set"' in page and 'class="chg ch-free"' in page  # the stale PTE, the freed block
    assert "faultlab replay scenarios/seed/cow-vs-truncate.toml --design xip --schedule fl1:" in page.replace(
        SEED, SEED_REL)


def test_replay_and_compare_write_reports(tmp_path: Path) -> None:
    schedule = explore_design(load_scenario(SEED), get_design("xip")).counterexamples[0].schedule
    replay = tmp_path / "replay.html"
    res = CliRunner().invoke(main, ["replay", SEED, "--schedule", schedule, "--html", str(replay)])
    assert res.exit_code == 1, res.output
    page = replay.read_text()
    assert f"faultlab replay {SEED} --design xip --schedule {schedule}" in page
    assert len(re.findall(r'class="band [^"]*broken"', page)) == 1 and "store m 1p B" in page
    compare = tmp_path / "compare.html"
    res = CliRunner().invoke(main, ["compare", SEED, "--html", str(compare)])
    assert res.exit_code == 0, res.output
    page = compare.read_text()
    assert page.count("<svg") == 1
    for design in DESIGNS:
        assert f">{design}</text>" in page  # a bar per design in the chart
    # xip's race (its stale PTE, and the use-after-free of the block it maps) and v7-insert's accounting
    assert page.count('class="card bad cex"') == 3


def test_explore_html_option_and_unwritable_path(tmp_path: Path) -> None:
    out = tmp_path / "e.html"
    res = CliRunner().invoke(main, ["explore", SEED, "--design", "v4.0", "--html", str(out)])
    assert res.exit_code == 0, res.output
    assert "no invariant broke" in out.read_text()
    res = CliRunner().invoke(main, ["explore", SEED, "--html", str(tmp_path)])
    assert res.exit_code == 2 and "is a directory" in res.output


# -- the browser -------------------------------------------------------------------------------------
PROBE = """
<script>
(function () {
  function box(el) {
    var r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top + window.scrollY, bottom: r.bottom + window.scrollY,
            width: r.width, height: r.height};
  }
  function all(sel, f) { return Array.prototype.map.call(document.querySelectorAll(sel), f); }
  var out = {
    heads: all('.lanes .lane-head[data-thread]', function (el) {
      var b = box(el); b.name = el.getAttribute('data-thread'); b.text = el.innerText; return b; }),
    cells: all('.lanes .cell', function (el) { var b = box(el); b.name = el.getAttribute('data-thread'); return b; }),
    bands: all('.lanes .band.broken', function (el) {
      var b = box(el); b.bg = getComputedStyle(el).backgroundColor; return b; }),
    callouts: all('.lanes .callout', function (el) { var b = box(el); b.text = el.innerText; return b; }),
    bars: all('.lanes .bar', box),
    svg: all('svg.chart', box),
    rows: all('table.t tbody tr', function (el) { return el.innerText; })
  };
  document.body.setAttribute('data-probe', JSON.stringify(out));
})();
</script>
"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def layout(tmp_path: Path, page: str) -> dict[str, Any]:
    """The page as Chromium lays it out at WIDTH pixels: boxes of the lanes, bands, callouts, bars."""
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, f"--window-size={WIDTH},1000", "--dump-dom", probed.as_uri()).stdout
    m = re.search(r'data-probe="([^"]*)"', dom)
    assert m, "the probe script did not run"
    result: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    return result


def screenshot(tmp_path: Path, page: Path, height: int) -> tuple[int, int, list[bytes]]:
    png = tmp_path / "shot.png"
    chromium(tmp_path, f"--window-size={WIDTH},{height}", f"--screenshot={png}", page.as_uri())
    return decode_png(png.read_bytes())


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """8-bit RGB or RGBA, not interlaced (what Chromium writes) -> (width, height, RGB rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, bpp = 8, bytearray(), 0, 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filt, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if filt == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif filt == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif filt == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 255
        elif filt == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


def pixel(rows: list[bytes], x: float, y: float) -> tuple[int, int, int]:
    row, i = rows[int(y)], int(x) * 3
    return row[i], row[i + 1], row[i + 2]


def near(a: tuple[int, int, int], b: tuple[int, int, int], tol: int = 8) -> bool:
    return all(abs(p - q) <= tol for p, q in zip(a, b, strict=True))


def variety(rows: list[bytes]) -> tuple[int, float]:
    """(distinct colours, share of pixels unlike the most common one), on a sample of the page."""
    counts: dict[bytes, int] = {}
    for row in rows[::4]:
        for i in range(0, len(row), 12):
            px = row[i:i + 3]
            counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    return len(counts), 1 - max(counts.values()) / total


@needs_chromium
def test_browser_shows_one_lane_per_thread_and_the_broken_step(tmp_path: Path) -> None:
    page = xip_report()
    found = layout(tmp_path, page)
    heads = found["heads"]
    assert [h["name"] for h in heads] == ["faulter", "truncator"]
    faulter, truncator = heads
    for h in heads:
        assert h["width"] > 200 and h["height"] > 20, h
        assert h["text"].startswith(h["name"]), h  # the lane's title is the thread's name
    assert faulter["right"] <= truncator["left"] + 1, "lanes side by side, in the scenario's order"
    assert faulter["top"] == truncator["top"]
    for cell in found["cells"]:  # every step is drawn in its own thread's lane
        lane = faulter if cell["name"] == "faulter" else truncator
        assert lane["left"] - 1 <= cell["left"] and cell["right"] <= lane["right"] + 1, cell
    assert {c["name"] for c in found["cells"]} == {"faulter", "truncator"}
    assert len(found["bars"]) >= 8 and min(b["height"] for b in found["bars"]) >= 10  # locks held, as bars
    (band,) = found["bands"]
    assert band["bg"] == "rgb(254, 226, 226)"
    assert band["left"] <= faulter["left"] and band["right"] >= truncator["right"] - 1, "the band spans the lanes"
    assert band["height"] > 20 and band["top"] > faulter["bottom"]
    (callout,) = found["callouts"]
    assert "stale-pte-after-truncate" in callout["text"]
    assert band["top"] <= callout["top"] and callout["bottom"] <= band["bottom"] + 1

    # What a person sees: a page that is not blank, with the band on screen where the layout put it.
    path = tmp_path / "report.html"
    path.write_text(page)
    width, height, rows = screenshot(tmp_path, path, int(band["bottom"]) + 60)
    assert width == WIDTH and height == int(band["bottom"]) + 60
    colours, ink = variety(rows)
    assert colours > 60 and ink > 0.3, (colours, ink)
    middle = (band["top"] + band["bottom"]) / 2
    assert near(pixel(rows, truncator["right"] - 20, middle), BAND), "the broken step is highlighted"
    assert near(pixel(rows, band["left"] + 2, middle), RED), "with a red edge"
    above = faulter["bottom"] + 5
    assert not near(pixel(rows, truncator["right"] - 20, above), BAND), "and only that step"


@needs_chromium
def test_browser_shows_the_comparison_table_and_chart(tmp_path: Path) -> None:
    path = tmp_path / "compare.html"
    res = CliRunner().invoke(main, ["compare", SEED, "--html", str(path)])
    assert res.exit_code == 0, res.output
    found = layout(tmp_path, path.read_text())
    design_rows = [r for r in found["rows"] if r.split("\t")[0].strip() in DESIGNS]
    assert [r.split("\t")[0].strip() for r in design_rows][:len(DESIGNS)] == list(DESIGNS)
    (svg,) = found["svg"]
    assert svg["width"] > 600 and svg["height"] > 150
    _, _, rows = screenshot(tmp_path, path, int(svg["bottom"]) + 20)
    seen = {pixel(rows, x, y) for y in range(int(svg["top"]), int(svg["bottom"]), 3)
            for x in range(int(svg["left"]), int(svg["right"]), 3)}
    for colour in ((245, 158, 11), (239, 68, 68), (71, 85, 105)):  # cow, wp-copy and bytes-copied bars
        assert any(near(c, colour, 4) for c in seen), colour
