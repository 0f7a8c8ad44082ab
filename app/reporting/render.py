"""The evaluation report's two renderings, of one list of sections.

`app.evaluate` decides what the report says and in what order (`Section`s of `Block`s);
`to_markdown` and `to_html` only render that list, so `report.md` and `report.html` cannot drift
apart.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from collections.abc import Callable, Sequence
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Block:
    """One piece of a section. `kind`: "text" (a paragraph), "strong" (a paragraph of
    (label, value) pairs with the values in bold), "items" (a bullet list), "notes",
    "tables" (one or more tables, side by side where the page is wide: rows, header first),
    "images" (file names beside the report), "quotes" (examples, `style` "mistake" or
    "surprising")."""

    kind: str
    content: object
    style: str = ""


@dataclasses.dataclass(frozen=True)
class Section:
    title: str | None
    blocks: list[Block]


def _quote_head(m: dict, style: str, bold: Callable[[str], str]) -> str:
    """What a quoted example is labelled and what the model said of it."""
    if style == "surprising":
        return f"labelled {bold(m['label'])}, the model says {bold(m['model'])} (loss {m['loss']:.3f})"
    return (f"true {bold(m['true'])}, predicted {bold(m['predicted'])} "
            f"({m.get('why') or format(m['confidence'], '.3f')})")


# ----------------------------------------------------------------------------- Markdown


def _md_table(rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(map(str, rows[0])) + " |", "| --- " * len(rows[0]) + "|",
            *("| " + " | ".join(map(str, row)) + " |" for row in rows[1:]), ""]


def to_markdown(parts: list[Section]) -> str:
    lines: list[str] = []
    for i, section in enumerate(parts):
        lines += [f"{'#' if i == 0 else '##'} {section.title}", ""]
        for block in section.blocks:
            if block.kind == "text":
                lines += [block.content, ""]
            elif block.kind == "strong":
                lines += [", ".join(f"{label} **{value}**" for label, value in block.content) + ".", ""]
            elif block.kind == "items":
                lines += [f"- {item}" for item in block.content] + [""]
            elif block.kind == "notes":
                lines += [f"> **Note:** {note}" for note in block.content] + [""]
            elif block.kind == "tables":
                for table in block.content:
                    lines += _md_table(table)
            elif block.kind == "images":
                for image in block.content:
                    lines += [f"![{image[:-4].replace('_', ' ')}]({image})", ""]
            elif block.kind == "quotes":
                lines += [f"- `{m['id']}` {_quote_head(m, block.style, lambda v: f'**{v}**')}: {m['text']}"
                          for m in block.content] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- HTML


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;color:#222;max-width:72em;margin:1.5em auto;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd}
.summary{color:#555}.headline{font-size:1.25em;margin:.6em 0}
.findings{background:#f3f7fc;border-left:4px solid #3a78c3;padding:.6em 1em .6em 2em}
.findings li{margin:.3em 0}.note{background:#fff3cd;padding:.5em 1em}
table{border-collapse:collapse;margin:.4em 0 1em}td,th{border-bottom:1px solid #e3e3e3;padding:.25em .7em;
text-align:left}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.row{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(30em,1fr));gap:1em}
.plots img{width:100%;border:1px solid #eee}
.quotes{list-style:none;padding:0}.quotes li{margin:.6em 0}.meta{font-size:.9em;color:#444}
blockquote{margin:.2em 0 0;padding:.3em .8em;border-left:3px solid #ccc;color:#333;background:#fafafa}
"""


def _html_table(rows: Sequence[Sequence[str]]) -> str:
    """The first row the header; cells that read as numbers right-aligned."""
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td{' class=num' if j and _numeric(v) else ''}>{esc(str(v))}</td>"
                                    for j, v in enumerate(row)) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numeric(value) -> bool:
    try:
        float(str(value).split(" ")[0].rstrip("%"))
    except ValueError:
        return False
    return True


def _html_quote(m: dict, style: str) -> str:
    escaped = {k: html.escape(v) if isinstance(v, str) else v for k, v in m.items()}
    head = _quote_head(escaped, style, lambda v: f"<b>{v}</b>")
    return (f"<li><div class=meta><code>{escaped['id']}</code> {head}</div>"
            f"<blockquote>{escaped['text']}</blockquote></li>")


def to_html(parts: list[Section], folder: Path) -> str:
    """A self-contained page: the plots (PNG files in `folder`) embedded as base64."""
    esc = html.escape
    body = []
    for i, section in enumerate(parts):
        body.append(f"<h{1 if i == 0 else 2}>{esc(section.title)}</h{1 if i == 0 else 2}>")
        for j, block in enumerate(section.blocks):
            if block.kind == "text":
                body.append(f"<p{' class=summary' if i == 0 and j == 0 else ''}>{esc(block.content)}</p>")
            elif block.kind == "strong":
                body.append("<p class=headline>" + ", ".join(f"{esc(label)} <b>{esc(value)}</b>"
                                                             for label, value in block.content) + "</p>")
            elif block.kind == "items":
                body.append("<ul class=findings>" + "".join(f"<li>{esc(item)}</li>" for item in block.content)
                            + "</ul>")
            elif block.kind == "notes":
                body += [f"<p class=note><b>Note:</b> {esc(note)}</p>" for note in block.content]
            elif block.kind == "tables":
                body.append("<div class=row>" + "".join(_html_table(t) for t in block.content) + "</div>")
            elif block.kind == "images":
                body.append("<div class=plots>" + "".join(
                    f'<figure><img alt="{esc(image)}" src="data:image/png;base64,'
                    f'{base64.b64encode((folder / image).read_bytes()).decode()}"></figure>'
                    for image in block.content) + "</div>")
            elif block.kind == "quotes":
                body.append("<ul class=quotes>" + "".join(_html_quote(m, block.style) for m in block.content)
                            + "</ul>")
    title = esc(parts[0].title)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n")
