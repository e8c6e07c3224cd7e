"""Report settings an admin saves in Teams, over the configuration file's values.

Pure data and validation (no store, no Teams): the settings card's form is parsed here, each
address checked, and two versions compared field by field for the change log. What an empty value
means is "the file's value": an empty MSP name keeps ``[msp] name``, an empty executive list keeps
the customer's ``recipients.executive`` (else its ``cto_email`` / ``account_owner_email``), an
empty technical list keeps its ``recipients.technical`` (else nobody).

What takes effect:

- ``msp_name``: the name on the PDF, the Markdown, the web page and the email's cover note;
- ``customers.<CODE>.enabled``: the Monday batch skips a disabled customer;
- ``customers.<CODE>.recipients.executive``: the To list of the customer's report email (the
  executive report);
- ``customers.<CODE>.recipients.technical``: the To list of the second email, with the
  technical report; nobody (from here and from the file): no technical email is sent;
- ``customers.<CODE>.period``: the customer's period (``reporting.period``), over the file's
  ``period``; empty keeps the file's;
- ``internal_reports.{owners,managers}``: who gets the MSP's own weekly service-desk summaries
  by email (owner report, manager report), over the file's ``[internal_reports]``; an empty list
  keeps the file's. Addresses of a customer are refused when the summaries are sent
  (``bot.internal_delivery``): they name technicians and never go to a customer.

Addresses are checked by :func:`check_address` here and in the configuration file
(``reporting.config.Recipients``), so both accept the same addresses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any

from reporting.models import PERIOD_KINDS
from reporting.text import neutral

PERIODS: tuple[str, ...] = PERIOD_KINDS
FILE_PERIOD = "file"  # the settings card's choice "As in the configuration file": nothing saved
PERIOD_LABELS: dict[str, str] = {
    "week": "Week (7 days)",
    "fortnight": "Fortnight (14 days)",
    "30d": "30 days",
    "month": "Calendar month",
}
MAX_RECIPIENTS = 50
MAX_MSP_NAME = 80

# a plain addr-spec: dot-atom local part, a host name of labels; no quotes, comments, brackets,
# display names, IP literals or whitespace (so nothing a mail header could be made to carry)
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS_RE = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,63}}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SEPARATORS = re.compile(r"[,;\s]+")


class SettingsInvalid(ValueError):
    """The form cannot be saved; ``problems`` are one line each, naming the field and the value."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def shown(value: str, limit: int = 60) -> str:
    """A refused value, quoted for a message: controls and bidi overrides removed, shortened."""
    text = neutral(value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "\u2026")


def check_address(value: str, where: str) -> str:
    """``value`` as a plain address (``name@example.com``), or :class:`SettingsInvalid` naming
    ``where`` and the value. The regex is the strict gate; ``email.utils.parseaddr`` and
    ``email.headerregistry.Address`` must read it back as the same address with no display name."""
    problem = None
    if _CONTROL.search(value):
        problem = "contains a control or invisible character"
    elif len(value) > 254:
        problem = "is longer than 254 characters"
    elif not ADDRESS_RE.fullmatch(value):
        problem = "is not a plain email address (name@example.com, no display name)"
    else:
        local, _, _domain = value.partition("@")
        name, spec = parseaddr(value)
        try:
            parsed = Address(addr_spec=value)
        except (HeaderParseError, ValueError, IndexError):
            parsed = None
        if len(local) > 64:
            problem = "has a local part longer than 64 characters"
        elif name or spec != value or parsed is None or parsed.addr_spec != value or parsed.display_name:
            problem = "is not a plain email address (name@example.com, no display name)"
    if problem:
        raise SettingsInvalid([f"{where}: {shown(value)} {problem}"])
    return value


def parse_addresses(text: str, where: str) -> tuple[str, ...]:
    """Addresses separated by commas, semicolons, spaces or lines; each checked, duplicates
    (ignoring case) dropped, at most :data:`MAX_RECIPIENTS`. Every bad value is reported."""
    items = [item for item in _SEPARATORS.split(text) if item]
    problems: list[str] = []
    out: dict[str, str] = {}
    for item in items:
        try:
            address = check_address(item, where)
        except SettingsInvalid as err:
            problems.extend(err.problems)
            continue
        out.setdefault(address.lower(), address)
    if len(out) > MAX_RECIPIENTS:
        problems.append(f"{where}: {len(out)} addresses; at most {MAX_RECIPIENTS}")
    if problems:
        raise SettingsInvalid(problems[:10])
    return tuple(out.values())


@dataclass(frozen=True)
class CustomerSettings:
    enabled: bool = True
    executive: tuple[str, ...] = ()
    technical: tuple[str, ...] = ()
    period: str = ""  # week | fortnight | 30d | month; "": the configuration file's ``period``

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "recipients": {"executive": list(self.executive), "technical": list(self.technical)},
            "period": self.period,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustomerSettings:
        recipients = data.get("recipients") or {}
        period = str(data.get("period") or "")
        return cls(
            enabled=bool(data.get("enabled", True)),
            executive=tuple(str(a) for a in recipients.get("executive") or ()),
            technical=tuple(str(a) for a in recipients.get("technical") or ()),
            period=period if period in PERIODS else "",
        )


DEFAULT_CUSTOMER = CustomerSettings()


@dataclass(frozen=True)
class ReportSettings:
    """One saved version of the settings (``version`` 0: nothing saved yet, the file's values)."""

    version: int = 0
    msp_name: str = ""
    customers: Mapping[str, CustomerSettings] = field(default_factory=dict)
    owners: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()

    def customer(self, code: str) -> CustomerSettings:
        return self.customers.get(code, DEFAULT_CUSTOMER)

    def enabled(self, code: str) -> bool:
        return self.customer(code).enabled

    def to_json(self) -> dict[str, Any]:
        return {
            "msp_name": self.msp_name,
            "customers": {code: c.to_json() for code, c in sorted(self.customers.items()) if c != DEFAULT_CUSTOMER},
            "internal_reports": {"owners": list(self.owners), "managers": list(self.managers)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], version: int) -> ReportSettings:
        internal = data.get("internal_reports") or {}
        return cls(
            version=version,
            msp_name=str(data.get("msp_name") or ""),
            customers={str(code): CustomerSettings.from_json(c) for code, c in (data.get("customers") or {}).items()},
            owners=tuple(str(a) for a in internal.get("owners") or ()),
            managers=tuple(str(a) for a in internal.get("managers") or ()),
        )

    def flat(self) -> dict[str, Any]:
        """Every value by its dotted key (what the change log and ``config check`` show)."""
        out: dict[str, Any] = {
            "msp_name": self.msp_name,
            "internal_reports.owners": list(self.owners),
            "internal_reports.managers": list(self.managers),
        }
        for code, c in sorted(self.customers.items()):
            out[f"customers.{code}.enabled"] = c.enabled
            out[f"customers.{code}.recipients.executive"] = list(c.executive)
            out[f"customers.{code}.recipients.technical"] = list(c.technical)
            out[f"customers.{code}.period"] = c.period
        return out

    def overrides(self) -> dict[str, Any]:
        """The values that differ from "nothing set" (the file's values stay in force otherwise)."""
        return {key: change["to"] for key, change in diff(ReportSettings(), self).items()}


def diff(old: ReportSettings, new: ReportSettings) -> dict[str, dict[str, Any]]:
    """``{dotted key: {"from": old, "to": new}}`` for every value that changed (a customer with no
    entry counts as the defaults: enabled, no recipient override, weekly)."""
    codes = sorted(set(old.customers) | set(new.customers))
    a = replace(old, customers={c: old.customer(c) for c in codes}).flat()
    b = replace(new, customers={c: new.customer(c) for c in codes}).flat()
    return {key: {"from": a.get(key), "to": b[key]} for key in b if a.get(key) != b[key]}


# ---- the settings card's form --------------------------------------------------------------

INPUT_MSP_NAME = "msp_name"
INPUT_OWNERS = "internal_reports.owners"
INPUT_MANAGERS = "internal_reports.managers"


def customer_input(code: str, name: str) -> str:
    """The id of a customer's input on the card: ``customers.<CODE>.<name>``."""
    return f"customers.{code}.{name}"


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"))


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def parse_form(data: Mapping[str, Any], current: ReportSettings, codes: Iterable[str]) -> ReportSettings:
    """The settings the submitted card asks for: ``current`` with every field the card carried
    replaced (a field not on the card, e.g. another customer's on a one-customer card, is kept).
    Only the configured ``codes`` are read. Raises :class:`SettingsInvalid` with every problem."""
    problems: list[str] = []
    msp_name = current.msp_name
    raw_name = _text(data, INPUT_MSP_NAME)
    if raw_name is not None:
        if _CONTROL.search(raw_name):
            problems.append(f"msp_name: {shown(raw_name)} contains a control or invisible character")
        elif len(raw_name.strip()) > MAX_MSP_NAME:
            problems.append(f"msp_name: {len(raw_name.strip())} characters; at most {MAX_MSP_NAME}")
        else:
            msp_name = raw_name.strip()

    def addresses(key: str, where: str, keep: tuple[str, ...]) -> tuple[str, ...]:
        raw = _text(data, key)
        if raw is None:
            return keep
        try:
            return parse_addresses(raw, where)
        except SettingsInvalid as err:
            problems.extend(err.problems)
            return keep

    owners = addresses(INPUT_OWNERS, "internal_reports.owners", current.owners)
    managers = addresses(INPUT_MANAGERS, "internal_reports.managers", current.managers)
    customers = dict(current.customers)
    for code in codes:
        was = current.customer(code)
        enabled = was.enabled
        raw_enabled = data.get(customer_input(code, "enabled"))
        if raw_enabled is not None:
            enabled = _truthy(raw_enabled)
        period = was.period
        raw_period = _text(data, customer_input(code, "period"))
        if raw_period is not None:
            if raw_period in PERIODS:
                period = raw_period
            elif raw_period in ("", FILE_PERIOD):
                period = ""
            else:
                problems.append(f"customers.{code}.period: {shown(raw_period)} is not one of {', '.join(PERIODS)}")
        executive = addresses(
            customer_input(code, "executive"), f"customers.{code}.recipients.executive", was.executive
        )
        technical = addresses(
            customer_input(code, "technical"), f"customers.{code}.recipients.technical", was.technical
        )
        now = CustomerSettings(enabled, executive, technical, period)
        if now == DEFAULT_CUSTOMER:
            customers.pop(code, None)
        else:
            customers[code] = now
    if problems:
        raise SettingsInvalid(problems)
    return ReportSettings(current.version, msp_name, customers, owners, managers)
