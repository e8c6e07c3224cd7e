"""cards.text: what data looks like once it reaches a Markdown-rendering card property."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from cards.text import clip, link, plain, safe_url
from tests.cards.nodetools import run_node

VALIDATE = Path(__file__).with_name("validate_cards.js")

HOSTILE = [
    "**bold**",
    "__bold__ and _it_",
    "[click](javascript:alert(1))",
    "![img](https://evil.example/x.png)",
    "<script>alert(1)</script>",
    "<b>bold</b> <a href='https://evil.example'>x</a>",
    "&lt;b&gt; and &amp; and &#42;",
    "`code` and ```fence```",
    "# heading",
    "## heading",
    "> quote",
    "- bullet",
    "+ bullet",
    "* bullet",
    "1. one",
    "2) two",
    "---",
    "===",
    "~~strike~~",
    "<https://evil.example>",
    "back\\slash \\*not bold\\*",
    "C:\\temp\\new_file_(1).txt",
    "{{DATE(2017-02-14T06:08:39Z, SHORT)}}",
    "    four spaces of indent",
    "[x]: https://evil.example",
    "a*b*c_d_e",
    "https://example.com/a_(b)_c",
]


def test_plain_escapes_emphasis_links_html() -> None:
    assert plain("**x**") == r"\*\*x\*\*"
    assert plain("[x](javascript:alert(1))") == r"\[x\](javascript:alert(1))"
    assert plain("<script>") == r"\<script\>"
    assert plain("a & b") == r"a \& b"
    assert plain("# h") == r"\# h"
    assert plain("- item") == r"\- item"
    assert plain("1. one") == r"1\. one"


def test_plain_leaves_ordinary_text_alone() -> None:
    # Hosts that show backslashes literally (older Teams mobile) should rarely see one.
    for text in (
        "Uptime was 99.98 % (target 99.50 %).",
        "Initech (INITECH)",
        "HOOLI-SQL01",
        "−8.0 pts",
        "portal.acme.example",
    ):
        assert plain(text) == text


def test_plain_single_line_folds_line_breaks() -> None:
    # Folded into one line, the markers are no longer at a line start and need no escape.
    assert plain("one\n\n- two\r\n# three") == "one - two # three"


def test_plain_multiline_keeps_lines_as_paragraphs() -> None:
    assert plain("one\n- two\n\n\n# three", multiline=True) == "one\n\n\\- two\n\n\\# three"


def test_plain_limit_cuts_before_escaping() -> None:
    assert plain("*" * 10, limit=4) == r"\*\*\*" + "\u2026"
    assert clip("abcdef", 3) == "ab\u2026"


def test_safe_url_accepts_http_only_and_encodes_markdown() -> None:
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("data:text/html,x") is None
    assert safe_url("/relative") is None
    assert safe_url("https://x.example/a b(c)") == "https://x.example/a%20b%28c%29"
    assert link("open", "javascript:alert(1)") == "open"
    assert link("o]pen", "https://x.example/f(1).pdf") == r"[o\]pen](https://x.example/f%281%29.pdf)"


def _visible(rendered: str) -> str:
    """The text a reader sees in markdown-it's HTML (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def test_hostile_text_renders_literally_in_commonmark(node_modules: Path) -> None:
    """Every hostile string, once escaped, renders through markdown-it (CommonMark) as one plain
    paragraph whose visible text is exactly the input — no link, emphasis, code, heading, list,
    quote, rule or HTML."""
    body = [{"type": "TextBlock", "text": plain(t)} for t in HOSTILE]
    body += [{"type": "TextBlock", "text": plain("\n".join(HOSTILE), multiline=True)}]
    out = run_node(
        str(VALIDATE),
        {"cards": {"t": {"type": "AdaptiveCard", "version": "1.5", "body": body}}, "schema": None},
        node_modules,
    )
    texts = out["t"]["texts"]
    for original, rendered in zip(HOSTILE, texts[: len(HOSTILE)], strict=True):
        h = rendered["html"]
        assert re.fullmatch(r"<p>[^<]*</p>\n", h), f"{original!r} rendered as {h!r}"
        assert _visible(h) == original.strip(), f"{original!r} shows as {_visible(h)!r}"
    multi = texts[-1]["html"]
    assert multi.count("<p>") == len(HOSTILE)
    assert not re.search(r"<(?!/?p>)", multi), multi


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "vbscript:x", "file:///etc/passwd", "", "https://"])
def test_link_never_emits_a_non_http_target(bad: str) -> None:
    assert "(" not in link("label", bad)
