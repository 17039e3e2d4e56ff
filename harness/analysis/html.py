"""``report.html``: the report's one self-contained page, its CSS and its sorting script.

The page holds the figures inline (PNG as base64 data: it opens from a CI artifact with
nothing beside it) and then ``tables.md`` as HTML tables; a click on a header sorts a
table by value (times across units, ratios, counts), a dash last either way. The markdown
comes from `harness.analysis.tables`, the figures from `harness.analysis.plots`; this
module only turns them into HTML. Tests: test_report_html_holds_every_figure_and_the_tables
(test_report.py) for what the page holds, test_browser.py for what a browser shows and how
a click sorts.
"""

from __future__ import annotations

import base64
import html

FIGURE_CAPTIONS = {  # by the figure file's prefix
    "ranking": "one case (a landmark, by name): contenders fastest first, 95 % intervals, speedups, marks",
    "time_vs_size": "median time against bytes moved, every timed case",
    "speedup": "speedup against the family's reference, by imbalance and by size",
    "bandwidth": "achieved bandwidth against the measured copy peak",
    "accuracy": "error against the float64 oracle by dtype and logit scale",
}

# Click a column header to sort by it (again: reverse). Times ("36 ms"), ratios ("×1.04")
# and counts sort by value, dates and other text as text (ISO dates sort right as text);
# an empty or dash cell sorts last either way.
_SORT_SCRIPT = """
const UNITS = {ns: 1e-9, "µs": 1e-6, us: 1e-6, ms: 1e-3, s: 1, min: 60};
function key(text) {
  if (/^\\d{4}-\\d{2}-\\d{2}/.test(text)) return null;
  const m = text.match(/^[×x]?\\s*([-+]?\\d*\\.?\\d+(?:e[-+]?\\d+)?)\\s*(ns|µs|us|ms|s|min)?\\b/i);
  return m ? parseFloat(m[1]) * (UNITS[m[2]] || 1) : null;
}
function blank(text) { return text === "" || text === "-" || text === "—"; }
function compare(a, b, dir) {
  a = a.trim(); b = b.trim();
  if (blank(a) || blank(b)) return blank(a) - blank(b);
  const x = key(a), y = key(b);
  if (x !== null && y !== null) return (x - y) * dir;
  if (x !== null) return -1;
  if (y !== null) return 1;
  return a.localeCompare(b) * dir;
}
document.querySelectorAll("table").forEach(table => {
  table.querySelectorAll("th").forEach((th, col) => {
    th.title = "sort by this column";
    th.addEventListener("click", () => {
      const rows = Array.from(table.rows).slice(1);
      const dir = th.dataset.order === "up" ? -1 : 1;
      rows.sort((r, s) => compare(r.cells[col].textContent, s.cells[col].textContent, dir));
      th.dataset.order = dir === 1 ? "up" : "down";
      rows.forEach(r => r.parentNode.appendChild(r));
    });
  });
});
"""

# The page's CSS: borders and text in greys only (test_browser counts the figures' colours).
_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
          "td,th{border:1px solid #ccc;padding:2px 6px;font-size:small}th{cursor:pointer}"
          "figure{margin:1em 0}figcaption{font-size:small;color:#555}")


def html_page(markdown: str, figures: list[tuple[str, bytes]]) -> str:
    """``report.html``, one self-contained file (it opens from a CI artifact on its own):
    the figures first, inline as PNG data, then the tables of ``tables.md`` as HTML tables
    sortable by a click on a header. Only what `harness.analysis.tables.md_table` and the
    report's headings produce is converted: ``#`` headings, pipe tables, paragraphs.
    ``figures``: (file name, PNG bytes)."""
    body = ["<h1>xentbench report</h1>"]
    for name, png in figures:
        caption = FIGURE_CAPTIONS.get(name.split("-", 1)[0].removesuffix(".png"), "")
        data = base64.b64encode(png).decode("ascii")
        body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(name)}" '
                    f'style="max-width:100%"><figcaption>{html.escape(name)}'
                    f'{" — " + html.escape(caption) if caption else ""}</figcaption></figure>')
    rows: list[str] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            rows.append(line)
            continue
        if rows:
            body.append(_html_table(rows))
            rows = []
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 6)
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>xentbench report</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body)
            + f"\n<script>{_SORT_SCRIPT}</script>\n</body></html>\n")


def _html_table(rows: list[str]) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    head, body = cells[0], [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join(out) + "</table>"
