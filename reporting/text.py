"""Text from outside (vendor data, configuration, an engineer's commentary) made safe to show.

One function, :func:`neutral`, is applied by every sink before its own escaping — Markdown
(``reporting.markdown``), Adaptive Cards (``cards.text``), the PDF (``reporting.pdf``), email
headers and bodies (``bot.delivery``) — and by the store boundary for commentary
(:func:`clean_commentary`), so the same input reads the same everywhere:

- C0 controls (NUL, ESC, BEL, ...), DEL and C1 controls are removed; tab becomes a space; the
  visible characters around them stay (``"ab\\x1b[31mc"`` shows ``ab[31mc``). PostgreSQL text
  columns cannot hold NUL, so this is also what keeps a NUL in commentary from failing a save.
- Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) are removed: an
  unterminated RIGHT-TO-LEFT OVERRIDE in a vendor's site name would otherwise reverse the rest of
  the product's sentence it is quoted in. Right-to-left *letters* are kept and laid out by the
  Unicode bidi algorithm as usual; the marks LRM/RLM/ALM (which cannot leak past a paragraph)
  are kept too.
- Lone surrogates (which no UTF-8 encoder accepts) are removed.
- Line breaks (CR LF, CR, U+2028/U+2029, VT, FF, NEL) become ``\\n`` when ``multiline``,
  otherwise one space.

:func:`isolate` wraps a vendor value for quoting inside one of our sentences (FSI … PDI), for
sinks whose renderer implements bidi isolates (browsers, Teams); the PDF lays isolates out itself.
"""

from __future__ import annotations

import re

#: One commentary limit for the card input, the bot's save/approve and the PDF: UTF-16 code
#: units, as the card's ``Input.Text.maxLength`` counts them (an emoji counts two).
COMMENTARY_LIMIT = 10_000

BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
FSI = "\u2068"
PDI = "\u2069"

_BREAKS = re.compile(r"\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]")
_DROP = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def neutral(value: object, *, multiline: bool = False) -> str:
    """``value`` as text with no control characters and no bidi overrides (see the module doc)."""
    text = "" if value is None else str(value)
    if text.isprintable() and not any(c in BIDI_CONTROLS for c in text):
        return text  # the common case: nothing to do
    text = text.replace("\t", " ")
    text = _BREAKS.sub("\n" if multiline else " ", text)
    return _DROP.sub("", text)


def isolate(value: object) -> str:
    """A neutralised value wrapped in FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE, so a
    right-to-left name quoted in a left-to-right sentence cannot reorder the words around it."""
    return f"{FSI}{neutral(value)}{PDI}"


def utf16_length(text: str) -> int:
    """Length as JavaScript (and the card's ``maxLength``) counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class CommentaryTooLong(ValueError):
    """The commentary is over :data:`COMMENTARY_LIMIT`; the message says by how much."""


def clean_commentary(text: str) -> str:
    """Commentary as it is stored and rendered: neutralised, line breaks kept, checked against
    the one limit. Raises :class:`CommentaryTooLong` with a message for the engineer."""
    cleaned = neutral(text, multiline=True)
    n = utf16_length(cleaned)
    if n > COMMENTARY_LIMIT:
        raise CommentaryTooLong(
            f"The commentary is {n:,} characters; the limit is {COMMENTARY_LIMIT:,}. "
            f"Shorten it by {n - COMMENTARY_LIMIT:,} characters and save again."
        )
    return cleaned


__all__ = [
    "BIDI_CONTROLS",
    "COMMENTARY_LIMIT",
    "CommentaryTooLong",
    "clean_commentary",
    "isolate",
    "neutral",
    "utf16_length",
]
