"""report.html in a real browser: headless Chromium takes a screenshot of the page, and
the screenshot must show the figures (issue 13). Parsing the HTML cannot tell that an
image is broken, blocked or sized to nothing; the pixels can.

Chromium comes from the system packages (`scripts/install_browser.sh`, which `.ci/run`
calls). Without it the test is skipped here, and fails under CI, where it must run."""

from __future__ import annotations

import os
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest
from fakes import CASES, make_run, write_run

from harness.analysis import plots, report

BROWSER = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                            shutil.which("google-chrome")) if p), None)
if BROWSER is None:
    if os.environ.get("CI"):
        pytest.fail("CI must run the browser check: no chromium on PATH (scripts/install_browser.sh)",
                    pytrace=False)
    pytest.skip("no chromium on PATH: scripts/install_browser.sh installs Debian's", allow_module_level=True)

# As root and on a closed network: no sandbox, no GPU, no background connections. The
# window is tall enough for the report's opening (what to believe, the rankings of a
# two-case run) and its first figures.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1200,3200")


def screenshot(page, tmp_path):
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    return (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)


def dom_after(page, script: str, tmp_path) -> str:
    """The page's DOM as the browser leaves it after ``script`` ran at its end."""
    copy = tmp_path / f"{page.stem}-scripted.html"
    copy.write_text(page.read_text().replace("</body>", f"<script>{script}</script></body>"))
    return subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           copy.as_uri()], check=True, capture_output=True, text=True, timeout=120).stdout


def coloured(image, colours) -> np.ndarray:
    """Where ``image`` is within 6 levels of any of ``colours`` (0..1 RGB tuples)."""
    near = np.zeros(image.shape[:2], dtype=bool)
    for colour in (np.asarray(list(colours)) * 255).round().astype(int):  # one at a time: a
        near |= np.abs(image - colour).max(axis=-1) <= 6                # 1200 x 3200 page
    return near


def pixels_of(image, colours) -> int:
    return int(coloured(image, colours).sum())


def test_the_screenshot_of_report_html_shows_the_figures_after_the_rankings(tmp_path):
    """The contenders' colours appear in the screenshot of the page, and do not in the same
    page without its figures: what is counted is the figures, not the page's text or
    tables. The first of them is drawn below the last ranking table, which is below what
    to believe, as the browser lays the page out."""
    run = write_run(tmp_path / "vm.json", make_run(cases=CASES[:2]))
    report.write_report([str(run)], tmp_path / "rep")
    page = tmp_path / "rep" / "report.html"
    html = page.read_text()
    bare = tmp_path / "bare.html"
    bare.write_text(html.replace('<img src="data:image/png;base64,', '<img src="data:,'))

    colours = [c for c in plots.palette(["eager", "naive", "compiled", "ext"]).values()
               if max(c) - min(c) > 0.2]  # coloured, not grey: table borders and text are grey
    image = coloured(screenshot(page, tmp_path), colours)
    shown = int(image.sum())
    without = pixels_of(screenshot(bare, tmp_path), colours)
    assert without == 0
    assert shown > 500, f"{shown} pixels of the contenders' colours in the screenshot"
    layout = dom_after(page, """{
      const y = e => Math.round(e.getBoundingClientRect().top);
      const figure = document.querySelector("figure");
      const tables = [...document.querySelectorAll("table")].filter(
        t => t.compareDocumentPosition(figure) & Node.DOCUMENT_POSITION_FOLLOWING);
      const last = tables[tables.length - 1];  // none: -1, below no heading
      document.body.dataset.layout = [y(document.querySelector("h2")),
                                      last ? y(last) + last.offsetHeight : -1, y(figure)].join(",");
    }""", tmp_path)
    trust, rankings_end, figure = map(int, layout.split('data-layout="')[1].split('"')[0].split(","))
    first_coloured = int(np.argmax(image.any(axis=1)))  # the first row with a contender's colour
    assert trust < rankings_end <= figure <= first_coloured, (trust, rankings_end, figure, first_coloured)


def test_a_click_on_a_header_sorts_the_table_by_value(tmp_path):
    """Times sort by value across units, a dash last; a second click reverses, the dash
    still last. The page's own script runs in the browser; the click is scripted."""
    from harness.analysis import tables
    from harness.analysis.html import html_page

    md = tables.md_table(["contender", "median", "× ref"],
                         [["a", "1.2 s", "0.50×"], ["b", "36 ms", "2.00×"], ["c", "-", "-"],
                          ["d", "900 µs", "10.00×"]])
    clicks = "document.querySelectorAll('th')[1].click();"
    orders = []
    for n in (1, 2):
        page = tmp_path / f"sorted{n}.html"
        page.write_text(html_page(md, []).replace(
            "</body>", f"<script>{clicks * n}</script></body>"))
        dom = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                              page.as_uri()], check=True, capture_output=True, text=True, timeout=120).stdout
        orders.append([row.split("<td>")[1].split("<")[0] for row in dom.split("<tr>")[2:]])
    assert orders[0] == ["d", "b", "a", "c"]
    assert orders[1] == ["a", "b", "d", "c"]  # reversed, the dash still last
