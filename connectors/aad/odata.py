"""The subset of OData ``$filter`` that Microsoft Graph and Azure Resource Manager evaluate for
the calls reportbot makes — used by the loopback simulators, never by a connector.

Grammar: comparisons ``<property> eq|ne|lt|le|gt|ge <literal>`` joined by ``and`` / ``or``,
``not``, and parentheses. Literals: ``'text'`` (``''`` escapes a quote), ISO 8601 date-times
without quotes (``2026-11-09T00:00:00Z``), numbers, ``true``/``false``/``null``. Strings
compare case-insensitively (Graph and ARM match enum members regardless of case).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectors.fields import parse_time


class FilterError(ValueError):
    """The expression is not valid OData (or names a property the resource does not have)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<str>'(?:[^']|'')*')"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_@][\w./@]*))"
)
_OPS = {"eq", "ne", "lt", "le", "gt", "ge"}
Getter = Callable[[str], Any]  # property path -> value; raises KeyError for an unknown property


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"syntax error at position {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0
        self.props: set[str] = set()

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise FilterError("unexpected end of the expression")
        self.i += 1
        return tok

    def word(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() in words:
            self.i += 1
            return True
        return False

    def expr(self) -> Callable[[Getter], bool]:
        left = self.conj()
        while self.word("or"):
            right = self.conj()
            left = (lambda a, b: lambda g: a(g) or b(g))(left, right)
        return left

    def conj(self) -> Callable[[Getter], bool]:
        left = self.unary()
        while self.word("and"):
            right = self.unary()
            left = (lambda a, b: lambda g: a(g) and b(g))(left, right)
        return left

    def unary(self) -> Callable[[Getter], bool]:
        if self.word("not"):
            inner = self.unary()
            return lambda g: not inner(g)
        tok = self.peek()
        if tok and tok[0] == "lp":
            self.take()
            inner = self.expr()
            if self.take()[0] != "rp":
                raise FilterError("missing ')'")
            return inner
        return self.comparison()

    def comparison(self) -> Callable[[Getter], bool]:
        kind, prop = self.take()
        if kind != "word":
            raise FilterError(f"expected a property name, got {prop!r}")
        kind, op = self.take()
        if kind != "word" or op.lower() not in _OPS:
            raise FilterError(f"expected a comparison operator after {prop!r}, got {op!r}")
        literal = self.literal()
        self.props.add(prop)
        return lambda g: _compare(g(prop), op.lower(), literal)

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "dt":
            return parse_time(text)
        if kind == "num":
            return float(text)
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise FilterError(f"expected a literal, got {text!r}")


def _compare(value: Any, op: str, literal: Any) -> bool:
    if isinstance(literal, datetime) and isinstance(value, str):
        value = parse_time(value)
    if isinstance(value, str) and isinstance(literal, str):
        value, literal = value.lower(), literal.lower()
    if op == "eq":
        return bool(value == literal)
    if op == "ne":
        return bool(value != literal)
    if value is None or literal is None:
        return False
    try:
        return bool({"lt": value < literal, "le": value <= literal, "gt": value > literal, "ge": value >= literal}[op])
    except TypeError as err:
        raise FilterError(f"cannot compare {type(value).__name__} with {type(literal).__name__}") from err


class Filter:
    """A compiled ``$filter``: call it with a property getter; ``props`` names every property used."""

    def __init__(self, text: str):
        p = _Parser(text)
        self._pred = p.expr()
        tok = p.peek()
        if tok is not None:
            raise FilterError(f"unexpected {tok[1]!r}")
        self.props = frozenset(p.props)

    def __call__(self, get: Getter) -> bool:
        return self._pred(get)


def compile_filter(text: str) -> Filter:
    """Raises FilterError on a malformed expression."""
    return Filter(text)
