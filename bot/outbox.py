"""The outbox delivery backend: what Graph would do, as files under ``OUT/outbox/``.

For the sandbox and the demo (no cloud needed), through the same ``bot.delivery`` steps as
production:

- ``mail/<CODE>-weekly-<YYYY-MM-DD>.eml`` — the email (opens in any mail client): From the
  configured mailbox, To the customer's CTO, Cc the account owner, Reply-To the account engineer
  (from that customer's entry only), the HTML cover note, the PDF attached, and the delivery id in
  ``X-Reportbot-Delivery-Id``; ``mail/<CODE>-weekly-<YYYY-MM-DD>-technical.eml`` the technical
  report's email, to the technical recipients;
- ``channels/<channel>/<CODE>-weekly-<YYYY-MM-DD>.json`` — the channel post (card and file
  link), with the PDF under ``channels/<channel>/files/``;
- ``sharepoint/<library>/<sharepoint_folder>/<YYYY>/<CODE>-weekly-<YYYY-MM-DD>.pdf`` — the
  archive, at the contract path (and ``...-technical.pdf`` beside it);
- ``rollup-<YYYY-MM-DD>.json`` — the roll-up card;
- ``internal-<YYYY-MM-DD>.json`` and ``mail/{owner,manager}-<YYYY-MM-DD>.eml`` — the MSP's own
  service-desk summaries' post and emails (``bot.internal_delivery``), to MSP addresses only.

Every file is named by the report, not by the attempt, and written atomically: a step repeated
after a crash replaces its file, so there is always exactly one of each.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from bot.delivery import Parcel, PermanentError, StepResult
from cards.customer import channel_card
from reporting import fmt
from reporting.config import Config
from reporting.output import write_atomic
from reporting.text import neutral

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("bot", "templates"), autoescape=True)  # noqa: S701 - autoescape is on


@dataclass(frozen=True)
class Addressing:
    """Who a customer's report email goes to: the CTO in To, the account owner in Cc (To when
    there is no CTO), and replies to the named account engineer when one is configured."""

    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    reply_to: tuple[str, str] | None = None  # (name, address)

    @property
    def everyone(self) -> list[str]:
        return [*self.to, *self.cc]

    def describe(self) -> str:
        return ", ".join(self.to) + (f" (cc {', '.join(self.cc)})" if self.cc else "")


def addressing(parcel: Parcel) -> Addressing:
    """The admins' executive recipients when set (all in To), else that customer's entry only:
    its ``recipients.executive`` (all in To), else ``cto_email`` / ``account_owner_email``;
    :class:`PermanentError` when it names nobody. The technical report goes to its parcel's
    recipients (the technical list, all in To). A test send goes to its requester alone."""
    c = parcel.customer
    if parcel.test:
        if not parcel.recipients:
            raise PermanentError("a test send needs the requester's address")
        return Addressing(parcel.recipients)
    engineer = c.account_engineer
    reply_to = (engineer.name, engineer.email) if engineer else None
    if parcel.variant == "technical":
        if not parcel.recipients:
            raise PermanentError(f"customers[{parcel.code}] has no technical recipients")
        return Addressing(parcel.recipients, (), reply_to)
    if parcel.recipients:
        return Addressing(parcel.recipients, (), reply_to)
    if c.recipients.executive:
        return Addressing(c.recipients.executive, (), reply_to)
    if not (c.cto_email or c.account_owner_email):
        raise PermanentError(f"customers[{parcel.code}] has no cto_email or account_owner_email")
    to = c.cto_email or c.account_owner_email
    cc = (c.account_owner_email,) if c.cto_email and c.account_owner_email and c.account_owner_email != to else ()
    engineer = c.account_engineer
    return Addressing((to,), cc, (engineer.name, engineer.email) if engineer else None)


@dataclass(frozen=True)
class Letter:
    """One email as every mail backend sends it: who to, the subject, the HTML note (the plain-text
    part is :func:`html_to_text` of it), one PDF attached, and the sender's display name. A customer
    report's is :func:`letter`; the MSP's internal summaries make their own (``bot.internal_delivery``)."""

    to: Addressing
    subject: str
    html: str
    attachment_name: str
    attachment: bytes
    sender_name: str = ""


def letter(config: Config, parcel: Parcel) -> Letter:
    """A customer report's email (:class:`PermanentError` when the customer's entry names nobody)."""
    return Letter(
        addressing(parcel),
        subject(parcel),
        cover_note(config, parcel),
        parcel.file_name,
        parcel.pdf,
        msp_name(config, parcel),
    )


def mime_message(config: Config, mail: Letter, key: str) -> EmailMessage:
    """``mail`` as the outbox's .eml: From the configured mailbox, the delivery id in a header."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = config.graph.mailbox or "reports@msp.invalid"
    address_headers(msg, mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="reportbot.invalid")
    msg["X-Reportbot-Delivery-Id"] = key
    msg.set_content(html_to_text(mail.html))  # the same note as the HTML part, from one source
    msg.add_alternative(mail.html, subtype="html")
    msg.add_attachment(mail.attachment, maintype="application", subtype="pdf", filename=mail.attachment_name)
    return msg


def recipients(parcel: Parcel) -> list[str]:
    """Every address the email goes to (To, then Cc)."""
    return addressing(parcel).everyone


def subject(parcel: Parcel) -> str:
    # neutral(): no CR/LF or other controls from the config reach a header, no bidi override
    adjective = fmt.words(parcel.report.period).adjective  # weekly | fortnightly | 30-day | monthly
    kind = f"{adjective} technical report" if getattr(parcel, "variant", "") == "technical" else f"{adjective} report"
    text = neutral(f"{parcel.customer.name}: {kind}, {fmt.report_week(parcel.report)}")
    return f"TEST — {text}" if getattr(parcel, "test", False) else text  # duck-typed parcels have no flag


def msp_name(config: Config, parcel: Parcel) -> str:
    """The MSP's name on what the customer receives: the admins' setting, else ``[msp] name``."""
    return parcel.msp_name or config.msp.name


def address_headers(msg: EmailMessage, to: Addressing) -> None:
    """To, Cc and Reply-To of a MIME message (the outbox and Gmail)."""
    msg["To"] = ", ".join(to.to)
    if to.cc:
        msg["Cc"] = ", ".join(to.cc)
    if to.reply_to:
        msg["Reply-To"] = formataddr((neutral(to.reply_to[0]), to.reply_to[1]))


class _Text(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "tr", "h1", "h2", "h3", "h4", "table", "ul", "ol"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0
        self._href: str | None = None  # an open <a href="http(s)://...">: its target follows its words

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self._href = href if href.startswith(("https://", "http://")) else None
        if tag in ("style", "script", "head", "title"):
            self._skip += 1
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in self._BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href:
            self.out.append(f" <{self._href}>")
            self._href = None
        if tag in ("style", "script", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS or tag == "li":
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" ")  # "Organisation: Acme", not "Organisation:Acme"

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def html_to_text(markup: str) -> str:
    """The plain-text part: the cover note's words, paragraph by paragraph; a web link's address
    after its words (``View online <https://…>``)."""
    parser = _Text()
    parser.feed(markup)
    text = html.unescape("".join(parser.out))
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def cover_note(config: Config, parcel: Parcel) -> str:
    r = parcel.report
    period = fmt.report_week(r)  # "Week of Mon 23 Nov – Sun 29 Nov 2026" (and "partial, as of …")
    dates = fmt.week_span(r.period) + (
        f" ({fmt.partial(r.partial_as_of, r.period.timezone)})" if r.partial_as_of else ""
    )
    links = None if parcel.test else parcel.links  # a test send carries no link that outlives it
    return _ENV.get_template("cover_note.html.j2").render(
        period_dates=dates,
        links=links,
        links_until=fmt.day(links.expires.astimezone(ZoneInfo(r.period.timezone)).date(), year=True) if links else "",
        msp_name=neutral(msp_name(config, parcel)),
        test=parcel.test,
        brand_color=config.msp.brand_color,
        customer_name=neutral(parcel.customer.name),
        period=period,
        # "the week of Mon 23 Nov – Sun 29 Nov 2026"; a month by its name: "November 2026"
        period_phrase=period if r.period.kind == "month" else f"the {period[0].lower()}{period[1:]}",
        w=fmt.words(r.period),
        highlights=[neutral(s) for s in r.summary[:4]],
        commentary=neutral(r.commentary.text, multiline=True) if r.commentary else "",
        file_name=neutral(parcel.file_name),
        technical=parcel.variant == "technical",
        contact=(neutral(c.name), c.email) if (c := parcel.customer.account_engineer) else None,
    )


class OutboxBackend:
    def __init__(self, config: Config, root: Path):
        self.config = config
        self.root = root

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        return await self.send_letter(letter(self.config, parcel), key)

    async def send_letter(self, mail: Letter, key: str) -> StepResult:
        """``mail/<attachment name>.eml``: named by what it carries, so a repeat replaces it."""
        msg = mime_message(self.config, mail, key)
        path = self.root / "mail" / (mail.attachment_name.removesuffix(".pdf") + ".eml")
        await asyncio.to_thread(write_atomic, path, msg.as_bytes())
        return StepResult(f"sent to {mail.to.describe()}", path.resolve().as_uri())

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        channel = parcel.customer.teams_channel
        if not channel:
            raise PermanentError(f"customers[{parcel.code}] has no teams_channel")
        folder = self.root / "channels" / _safe(channel)
        file_path = folder / "files" / parcel.file_name
        post = {
            "delivery_id": key,
            "channel": channel,
            "file": str(file_path.resolve()),
            "text": f"{fmt.words(parcel.report.period).adjective.capitalize()} report for {parcel.customer.name}, "
            f"{fmt.report_week(parcel.report)}",
            "summary": list(parcel.report.summary[:4]),
            "card": channel_card(
                parcel.report, file_url=file_path.resolve().as_uri(), key=key, msp_name=msp_name(self.config, parcel)
            ),
        }
        await asyncio.to_thread(write_atomic, file_path, parcel.pdf)
        post_path = folder / parcel.file_name.replace(".pdf", ".json")
        await asyncio.to_thread(write_atomic, post_path, json.dumps(post, indent=2, ensure_ascii=False) + "\n")
        return StepResult(f"posted in {channel}", post_path.resolve().as_uri())

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        folder = parcel.archive_folder
        path = self.root / "sharepoint" / _safe(self.config.graph.sharepoint_library or "Documents")
        for part in folder.split("/"):
            if part:
                path /= _safe(part)
        path = path / str(parcel.period_end.year) / parcel.file_name
        await asyncio.to_thread(write_atomic, path, parcel.pdf)
        return StepResult("archived", path.resolve().as_uri())

    async def post_internal(self, period_end: Any, card: dict[str, Any], files: dict[str, str]) -> Path:
        """``internal-<YYYY-MM-DD>.json``: the service-desk summaries' #weekly-reports post (the card
        and the PDFs it is about)."""
        path = self.root / f"internal-{period_end.isoformat()}.json"
        post = {"channel": "rollup", "card": card, "files": files}
        await asyncio.to_thread(write_atomic, path, json.dumps(post, indent=2, ensure_ascii=False) + "\n")
        return path

    async def post_rollup(self, period_end: Any, card: dict[str, Any]) -> Path:
        path = self.root / f"rollup-{period_end.isoformat()}.json"
        await asyncio.to_thread(write_atomic, path, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        return path


def _safe(part: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_. @" else "_" for ch in part).strip(". ")
    return cleaned or "_"
