"""A small document model rendered to Markdown or to a self-contained HTML page.

The runbook is written once as blocks, so the Markdown and the HTML say the same thing.
Inline text may hold `code` spans (backticks); everything else is plain text and escaped
for HTML.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

FORMATS = ("md", "html")


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Banner:
    """A warning set apart from the text (stale inputs, failed budget)."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""


@dataclass(frozen=True)
class Comment:
    """Invisible in both renderings (an HTML comment): machine-readable facts."""

    text: str


Block = Heading | Para | Banner | Bullets | Table | Code | Comment


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def to_markdown(doc: Document) -> str:
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += [f"{'#' * (b.level + 1)} {b.text}", ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Banner):
            out += [f"> **{b.text}**", ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Code):
            out += [f"```{b.lang}", b.text.rstrip("\n"), "```", ""]
        else:
            out += [f"<!-- {b.text} -->", ""]
    return "\n".join(out)


_CODE_SPAN = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    parts = _CODE_SPAN.split(text)
    # split() alternates plain text and code spans.
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p)
                   for i, p in enumerate(parts))


_STYLE = """body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;
line-height:1.45}table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #bbb;
padding:.25rem .5rem;vertical-align:top;text-align:left}pre{background:#f4f4f4;padding:.6rem;
overflow-x:auto}.banner{border-left:.4rem solid #c60;background:#fff4e5;padding:.5rem 1rem;
font-weight:bold}"""


def to_html(doc: Document) -> str:
    """A page with no external resources: the Mermaid source stays readable as text (paste
    it into any Mermaid viewer); nothing is fetched when the page opens."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(doc.title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{html.escape(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            n = min(6, b.level + 1)
            out.append(f"<h{n}>{_inline(b.text)}</h{n}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Banner):
            out.append(f'<p class="banner">{_inline(b.text)}</p>')
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                           for row in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Code):
            cls = f' class="language-{html.escape(b.lang)}"' if b.lang else ""
            out.append(f"<pre><code{cls}>{html.escape(b.text.rstrip())}</code></pre>")
        else:
            out.append(f"<!-- {b.text} -->")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(doc: Document, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(doc)
    if fmt == "html":
        return to_html(doc)
    raise ValueError(f"format {fmt!r}; allowed: {', '.join(FORMATS)}")
