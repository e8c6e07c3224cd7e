"""Text for Adaptive Card elements that render Markdown.

``TextBlock.text``, ``Fact.title``/``Fact.value`` and ``fallbackText`` are rendered through a
Markdown subset (bold, italic, links, lists — https://aka.ms/ACTextFeatures); hosts such as the
Teams web client and the ``adaptivecards`` JS renderer hand the text to a CommonMark processor.
Anything a vendor, a customer config or an engineer wrote must therefore be escaped before it
lands there, or ``**x**`` turns bold, ``[x](javascript:...)`` becomes a link and an engineer's
``- item`` a bullet.

The escape is CommonMark's backslash escape (spec §2.4: any ASCII punctuation may be escaped),
which every Teams client honours (desktop/web always; iOS since Teams-AdaptiveCards-Mobile#83
fixed ``\\*``). We escape the punctuation that can start inline syntax anywhere in a line
(emphasis, code, links, autolinks/HTML, entities, strikethrough) and the markers that only
matter at the start of a line (headings, quotes, list items, thematic breaks). Leading spaces
are dropped so four of them cannot open a code block.

``Input.Text.value``, action ``data`` and action titles are *not* Markdown and stay verbatim —
never pass them through :func:`plain`.

:class:`Markdown` marks a string that is safe to put in a Markdown property; the element
helpers in :mod:`cards.elements` accept only that type, so a raw string is a type error.
"""

from __future__ import annotations

import re
from typing import NewType
from urllib.parse import quote, urlsplit

from reporting.text import neutral

Markdown = NewType("Markdown", str)

# Inline syntax: backslash itself first, emphasis * _ ~, code `, link brackets [ ], raw HTML
# and autolinks < >, entities &, and "{" so "{{DATE(...)}}" is not replaced by the host's
# date formatting (an Adaptive Card text feature). Parentheses are left alone: they only mean something right
# after "]" (a link destination), and "]" is always escaped; escaping them would litter every
# "(INITECH)" with backslashes for hosts that show escapes literally.
_INLINE = str.maketrans({c: "\\" + c for c in "\\`*_~[]<>&{"})
# Block syntax that only counts at the start of a line: ATX heading #, bullets - + (the * is
# already escaped inline), setext underline / thematic break = -, and an ordered-list marker
# "12." or "12)" followed by a space or the end of the line ("99.98 %" is not a list).
_LINE_START = re.compile(r"^([#+=\-])|^(\d{1,9})([.)])(?=\s|$)")
_LINE_BREAKS = re.compile(r"\s*[\r\n\u2028\u2029\x0b\x0c\x85]+\s*")

ELLIPSIS = "\u2026"


def md(trusted: str) -> Markdown:
    """Mark a literal written in this package (e.g. ``"**Flags**"``) as Markdown. Never call it
    on data."""
    return Markdown(trusted)


def clip(value: object, limit: int | None) -> str:
    """``str(value)`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    text = str(value)
    if limit is not None and len(text) > limit:
        return text[: max(limit - 1, 0)] + ELLIPSIS
    return text


def _escape_line(line: str) -> str:
    line = line.strip().translate(_INLINE)
    return _LINE_START.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), line)


def plain(value: object, *, limit: int | None = None, multiline: bool = False) -> Markdown:
    """``value`` as text that shows literally in a Markdown-rendering card property.

    ``limit`` cuts the *unescaped* text first (so an escape is never cut in half).
    Single-line (default): every run of whitespace that contains a line break becomes one
    space. ``multiline=True`` keeps the lines, each escaped on its own and separated by a blank
    line (a single newline is a soft break in CommonMark and would be shown as a space); empty
    lines are dropped.
    """
    text = clip(neutral(value, multiline=True), limit)  # controls and bidi overrides removed first
    if not multiline:
        return Markdown(_escape_line(_LINE_BREAKS.sub(" ", text)))
    lines = [_escape_line(line) for line in re.split(r"\r\n|[\r\n\u2028\u2029\x0b\x0c\x85]", text)]
    return Markdown("\n\n".join(line for line in lines if line))


# Characters left as they are in a URL placed in a Markdown link destination. Parentheses,
# angle brackets, square brackets, quotes, backslashes and whitespace are percent-encoded so the
# URL cannot end the link early or smuggle Markdown.
_URL_SAFE = ":/?#@!$&'*+,;=%-._~"


def safe_url(url: str | None) -> str | None:
    """An absolute http(s) URL with Markdown-significant characters percent-encoded, or None
    when ``url`` is not one (``javascript:``, ``data:``, relative, empty)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("https", "http") or not parts.netloc:
        return None
    return quote(url.strip(), safe=_URL_SAFE)


def link(label: object, url: str | None, *, limit: int | None = 80) -> Markdown:
    """A Markdown link with an escaped label; just the label when the URL is not http(s)."""
    target = safe_url(url)
    text = plain(label, limit=limit)
    if target is None:
        return text
    return Markdown(f"[{text}]({target})")


def join(*parts: Markdown, sep: str = " \u00b7 ") -> Markdown:
    """Join already-safe pieces (the separator must be Markdown-inert)."""
    return Markdown(sep.join(p for p in parts if p))
