"""Reading vendor JSON defensively: a field missing, renamed or of the wrong type is a
``SourceDataError`` naming the field and where it was expected — never a ``KeyError`` deep in a
mapper, and never a silent default that would turn into a number in a report.

Also the time formats vendors use: epoch seconds, ISO 8601 (with ``Z``, offsets, 7 fractional
digits), and ConnectWise's bracketed ``[2024-05-06T00:00:00Z]`` literals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from reporting.sources import SourceDataError

T = TypeVar("T")

_MISSING = object()


class Fields:
    """Typed access to one vendor JSON object, for error messages that say where it broke.

    ``Fields(system, obj, "GET /api/Tickets item 3")``; ``f.text("summary")``,
    ``f.integer("id")``, ``f.time("dateoccurred")``, ``f.opt_time("dateclosed")``, ``f.obj("priority")``.
    Dotted keys descend: ``f.text("priority.name")``. The accessors are named for what they
    read (text, integer, number, flag, array), not after the builtins they return, which a
    method named ``str`` or ``int`` would shadow in the class body's annotations.
    """

    def __init__(self, system: str, obj: Any, where: str):
        if not isinstance(obj, dict):
            raise SourceDataError(system, f"{where}: expected a JSON object, got {type(obj).__name__}")
        self.system, self.data, self.where = system, obj, where

    def _get(self, key: str) -> Any:
        cur: Any = self.data
        for part in key.split("."):
            if not isinstance(cur, dict) or part not in cur:
                return _MISSING
            cur = cur[part]
        return cur

    def _bad(self, key: str, want: str, value: Any) -> SourceDataError:
        if value is _MISSING:
            return SourceDataError(self.system, f"{self.where}: field '{key}' is missing (the API's schema changed?)")
        return SourceDataError(
            self.system, f"{self.where}: field '{key}' is {type(value).__name__} {str(value)[:40]!r}, expected {want}"
        )

    def has(self, key: str) -> bool:
        v = self._get(key)
        return v is not _MISSING and v is not None

    def raw(self, key: str) -> Any:
        v = self._get(key)
        if v is _MISSING:
            raise self._bad(key, "a value", v)
        return v

    def text(self, key: str) -> str:
        v = self._get(key)
        if isinstance(v, str):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        raise self._bad(key, "a string", v)

    def opt_text(self, key: str) -> str | None:
        v = self._get(key)
        return None if v is _MISSING or v is None else self.text(key)

    def integer(self, key: str) -> int:
        v = self._get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
            return int(v)  # Zabbix sends numbers as strings
        raise self._bad(key, "an integer", v)

    def number(self, key: str) -> float:
        v = self._get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
        raise self._bad(key, "a number", v)

    def opt_number(self, key: str) -> float | None:
        v = self._get(key)
        return None if v is _MISSING or v is None else self.number(key)

    def flag(self, key: str) -> bool:
        v = self._get(key)
        if isinstance(v, bool):
            return v
        if v in (0, 1, "0", "1"):
            return bool(int(v))
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise self._bad(key, "a boolean", v)

    def opt_flag(self, key: str) -> bool | None:
        v = self._get(key)
        return None if v is _MISSING or v is None else self.flag(key)

    def array(self, key: str) -> list[Any]:
        v = self._get(key)
        if isinstance(v, list):
            return v
        raise self._bad(key, "a list", v)

    def obj(self, key: str) -> Fields:
        v = self._get(key)
        if not isinstance(v, dict):
            raise self._bad(key, "an object", v)
        return Fields(self.system, v, f"{self.where} → {key}")

    def opt_obj(self, key: str) -> Fields | None:
        v = self._get(key)
        return None if v is _MISSING or v is None else self.obj(key)

    def time(self, key: str) -> datetime:
        v = self._get(key)
        try:
            return parse_time(v)
        except (TypeError, ValueError):
            raise self._bad(key, "a timestamp", v) from None

    def opt_time(self, key: str) -> datetime | None:
        v = self._get(key)
        if v is _MISSING or v is None or v == "" or v == 0 or v == "0":
            return None
        return self.time(key)


def items(system: str, body: Any, key: str, where: str) -> list[Any]:
    """The list under ``key`` of an envelope object (e.g. ``{"tickets": [...]}``)."""
    return Fields(system, body, where).array(key)


_EPOCH = re.compile(r"^-?\d{9,11}$")


def parse_time(value: Any) -> datetime:
    """Epoch seconds (int or digit string) or ISO 8601 → an aware UTC datetime.

    ISO strings without an offset are taken as UTC (HaloPSA and ConnectWise send UTC). More than
    six fractional digits (.NET's seven) are truncated; ``Z`` is accepted.
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__} is not a time")
    s = value.strip()
    if _EPOCH.match(s):
        return datetime.fromtimestamp(int(s), UTC)
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso_z(ts: datetime) -> str:
    """``2024-05-06T00:00:00Z`` (UTC, no fraction): Graph, ARM, ConnectWise, Cloudflare."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(ts: datetime) -> int:
    return int(ts.astimezone(UTC).timestamp())


def require_in_schema(system: str, rows: Sequence[Any], keys: Iterable[str], where: str) -> None:
    """Fields the vendor documents that may be null or left out on one record (an ongoing
    outage has no end) must still exist in the schema: a key absent from *every* record of a
    non-empty list is API drift (a renamed field) → ``SourceDataError`` naming it, never a
    silent "none of them has one"."""
    objs = [r.data if isinstance(r, Fields) else r for r in rows]
    if not objs:
        return
    for key in keys:
        if not any(_present(o, key) for o in objs):
            raise SourceDataError(
                system, f"{where}: field '{key}' is missing from all {len(objs)} records (the API's schema changed?)"
            )


def _present(obj: Any, key: str) -> bool:
    cur = obj
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False
        cur = cur[part]
    return True
