"""``report.html``: the report's one self-contained page, its CSS and its sorting script.

The page is ``tables.md`` as HTML, in its order (what to believe, the rankings, then the
figures, then the details), each figure inline (PNG as base64 data: it opens from a CI
artifact with nothing beside it); a click on a table header sorts the table by value (times
across units, ratios, counts), a dash last either way. The markdown comes from
`harness.analysis.tables` and `harness.analysis.report`, the figures from
`harness.analysis.plots`; this module only turns them into HTML. Tests:
test_report_html_holds_every_figure_and_the_tables (test_report.py) for what the page
holds, test_browser.py for what a browser shows and how a click sorts."""

from __future__ import annotations

import base64
import html
import re

# Click a column header to sort by it (again: reverse). Times ("36 ms"), ratios ("1.04×")
# and counts sort by value, dates and other text as text (ISO dates sort right as text);
# an empty or dash cell sorts last either way.
_SORT_SCRIPT = """
const UNITS = {ns: 1e-9, "µs": 1e-6, us: 1e-6, ms: 1e-3, s: 1, min: 60};
function key(text) {
  if (/^\\d{4}-\\d{2}-\\d{2}/.test(text)) return null;
  const m = text.match(/^<?[×x]?\\s*([-+]?\\d*\\.?\\d+(?:e[-+]?\\d+)?)\\s*(ns|µs|us|ms|s|min)?\\b/i);
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
    ``tables.md`` as HTML in its own order, each markdown image of a figure inline as PNG
    data, the tables sortable by a click on a header. ``figures``: (file name, PNG bytes).

    The markdown is the report's own (`harness.analysis.tables`, `harness.analysis.report`),
    so the subset it uses is converted and no more: ``#`` headings, pipe tables (``\\|``
    an escaped pipe), ``- `` lists, a paragraph that is one image ``![alt](file)``, other
    paragraphs; inside them `` `code` ``, ``**bold**`` and ``[text](url)``. No markdown
    library for that (a dependency of the CPU environment for about 50 lines)."""
    images = dict(figures)
    body: list[str] = []
    block: list[str] = []  # the lines of the table or list being read
    for line in [*markdown.splitlines(), ""]:
        kind = _block_kind(line)
        if block and kind != _block_kind(block[0]):
            body.append(_html_table(block) if _block_kind(block[0]) == "table" else _html_list(block))
            block = []
        if kind:
            block.append(line)
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            body.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif image := _IMAGE.fullmatch(line.strip()):
            body.append(_figure(image["alt"], image["src"], images.get(image["src"])))
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>xentbench report</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body)
            + f"\n<script>{_SORT_SCRIPT}</script>\n</body></html>\n")


_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _block_kind(line: str) -> str | None:
    return "table" if line.startswith("|") else "list" if line.startswith("- ") else None


def _inline(text: str) -> str:
    """Escaped text with its code spans, bold and links as HTML (code first: nothing is
    interpreted inside a code span)."""
    out = []
    for i, part in enumerate(_CODE.split(text)):
        if i % 2:  # the odd parts of the split are the code spans' contents
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        part = _BOLD.sub(r"<strong>\1</strong>", html.escape(part, quote=False))
        out.append(_LINK.sub(lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', part))
    return "".join(out)


def _figure(alt: str, src: str, png: bytes | None) -> str:
    """A figure inline as PNG data when its bytes are given, else a link to the file."""
    if png is None:
        return f'<p><a href="{html.escape(src)}">{html.escape(alt or src)}</a></p>'
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(src)}" '
            f'style="max-width:100%"><figcaption>{html.escape(alt)}</figcaption></figure>')


def _cells(row: str) -> list[str]:
    """A pipe-table row's cells, ``\\|`` read as a pipe inside a cell."""
    inner = row.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _html_table(rows: list[str]) -> str:
    cells = [_cells(r) for r in rows]
    head, body = cells[0], [r for r in cells[1:] if not all(c and set(c) <= set("-: ") for c in r)]
    out = ["<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join(out) + "</table>"


def _html_list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_inline(i.removeprefix('- '))}</li>" for i in items) + "</ul>"
