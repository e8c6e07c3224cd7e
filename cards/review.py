"""The review card: one customer's weekly draft as engineers see it in the review channel.

Adaptive Card 1.5 (the highest Teams renders for bot cards). While the draft is open
(``drafted``/``saved``) it carries the commentary input and the four verbs as
``Action.Execute`` — each with an ``Action.Submit`` fallback for clients without Universal
Actions. Once approved or skipped the card is frozen: no inputs, no save/approve, and it says
who decided and when; during and after delivery it lists each delivery step.

No ``refresh`` section, on purpose. Every viewer is meant to see the same card, and the bot
edits the message (``update_activity``) after every state change; a message edit replaces the
card for everyone (research/teams-graph-contract.md §0, §2). The invoke response only replaces
the clicker's view until that edit lands. ``refresh`` would add user-specific views: with no
``userIds`` every member of a channel of 60 or fewer auto-invokes the bot each time the card
is shown, and larger channels get only a manual "Refresh card". That is load and a second
source of truth for no gain. Add it only for role-based views (e.g. showing Approve to
approvers only), and then with explicit ``userIds`` (Teams MRIs, at most 60).

Data sent with every action: ``{"draft_id", "version", "customer"}``. The bot must check all
three against its store (draft exists, belongs to that customer, version is current). Input
values arrive merged in: ``commentary`` and, for skip, ``skip_reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cards import verbs
from cards.elements import (
    MAX_CARD_BYTES,
    Element,
    adaptive_card,
    card_bytes,
    check_size,
    container,
    execute,
    fact_set,
    heading,
    open_url,
    text_block,
)
from cards.text import Markdown, join, link, md, plain, safe_url
from reporting import fmt
from reporting.drafts import DECIDED, EDITABLE, DraftState
from reporting.models import (
    SECTION_NAMES,
    SECTION_TITLES,
    SEVERITY_ORDER,
    Backups,
    Changes,
    Report,
    Section,
    Security,
    Sites,
    Tickets,
    Uptime,
)
from reporting.text import COMMENTARY_LIMIT, utf16_length

STATES: tuple[str, ...] = tuple(DraftState)
EDITABLE_STATES = frozenset(EDITABLE)
DECIDED_STATES = frozenset(DECIDED)

MAX_COMMENTARY = COMMENTARY_LIMIT  # the one limit: Input.Text maxLength, the bot's save, the PDF
MAX_SKIP_REASON = 500

SEVERITY_COLOR = {"high": "attention", "medium": "warning", "low": "accent"}
_STATE_COLOR = {
    "drafted": "default",
    "saved": "accent",
    "approved": "good",
    "delivering": "accent",
    "delivered": "good",
    "skipped": "warning",
    "failed": "attention",
}
_STEP_ICON = {"done": "\u2705", "sent": "\u2705", "posted": "\u2705", "archived": "\u2705", "failed": "\u274c"}


def commentary_length(text: str) -> int:
    """Length as the card's ``maxLength`` counts it: UTF-16 code units (a JavaScript string's
    length), so an emoji counts two. The bot applies the same measure on save."""
    return utf16_length(text)


@dataclass(frozen=True)
class _Limits:
    """How much of each list and text the card shows. The card is built with FULL; if it comes
    out over the size budget (a 10 000-unit commentary of non-ASCII text is ~60 KB of JSON on
    its own) it is rebuilt with COMPACT, then MINIMAL. The PDF always has everything."""

    flags: int
    flag_text: int
    sentences: int
    sentence_text: int
    recommendations: int
    changes: int
    incidents: int
    title_text: int
    steps: int
    step_text: int


FULL = _Limits(10, 300, 6, 400, 3, 10, 5, 160, 10, 300)
COMPACT = _Limits(6, 200, 3, 300, 1, 5, 3, 100, 10, 120)
MINIMAL = _Limits(3, 120, 1, 200, 0, 0, 0, 80, 10, 40)
_NOT_OK_BACKUPS = 5
_FIGURE_TEXT = 300
_MAX_URL = 512  # a longer step link is dropped rather than bloat the card (Graph webUrls are ~200)


@dataclass(frozen=True)
class DeliveryStepView:
    """One delivery step as shown on the card: ``status`` is e.g. pending, running, done,
    failed, skipped; ``url`` (http/https only) links the result — the email's archive copy,
    the channel post, the SharePoint file."""

    name: str
    status: str
    detail: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Decision:
    """Who approved (or skipped) the draft, when, and for a skip why."""

    by: str
    at: datetime
    reason: str | None = None


def review_card(
    report: Report,
    *,
    draft_id: str,
    version: int,
    state: str,
    commentary: str,
    pdf_url: str | None,
    approvers_note: str | None = None,
    steps: Sequence[DeliveryStepView] = (),
    message: str | None = None,
    decision: Decision | None = None,
    tz: str | None = None,
    page_url: str | None = None,
) -> dict[str, Any]:
    """Build the review card for ``report`` at ``state``.

    ``commentary`` is the engineer's text as stored (verbatim in the input; escaped when shown
    as text after approval). ``pdf_url`` is the bot's signed link to the draft (or final) PDF.
    ``approvers_note`` says who may approve (e.g. "Anyone here may approve: sandbox mode").
    ``message`` is a one-line notice on top (e.g. "This card was out of date; here is the
    current draft."). ``decision`` is who approved/skipped and when. ``tz`` is the timezone for
    times on the card (default: the customer's; the bot may pass the MSP's).

    Lists and long texts are capped; if the card still comes out over the size budget it is
    rebuilt with shorter lists (see :class:`_Limits`) — the commentary and the actions are never
    cut. Raises ValueError for an unknown state, commentary over :data:`MAX_COMMENTARY` UTF-16
    units or a non-http(s) ``pdf_url``, and :class:`cards.elements.CardTooLarge` if even the
    condensed card is too big (not reachable with the caps in place; see tests/cards/test_sizes).
    """
    if state not in STATES:
        raise ValueError(f"unknown draft state {state!r}; expected one of {', '.join(STATES)}")
    if commentary_length(commentary) > MAX_COMMENTARY:
        raise ValueError(f"commentary is {commentary_length(commentary)} characters; the limit is {MAX_COMMENTARY}")
    for name, url in (("pdf_url", pdf_url), ("page_url", page_url)):
        if url is not None and safe_url(url) is None:
            raise ValueError(f"{name} must be an absolute http(s) URL")
    view = _View(
        report, draft_id, version, state, commentary, pdf_url, approvers_note, steps, message, decision, tz, page_url
    )
    for limits in (FULL, COMPACT):
        card = view.build(limits)
        if card_bytes(card) <= MAX_CARD_BYTES:
            return card
    return check_size(view.build(MINIMAL))


@dataclass(frozen=True)
class _View:
    report: Report
    draft_id: str
    version: int
    state: str
    commentary: str
    pdf_url: str | None
    approvers_note: str | None
    steps: Sequence[DeliveryStepView]
    message: str | None
    decision: Decision | None
    tz_name: str | None
    page_url: str | None = None  # the same report as a web page

    def build(self, lim: _Limits) -> dict[str, Any]:
        report, state, decision = self.report, self.state, self.decision
        tz = self.tz_name or report.period.timezone
        editable = state in EDITABLE_STATES
        data = {"draft_id": self.draft_id, "version": self.version, "customer": report.customer.code}

        body: list[Element] = [_header(report, self.version, tz), _state_line(state, self.version, decision, tz)]
        if state == DraftState.SKIPPED and decision is not None and decision.reason:
            reason = plain(decision.reason, limit=MAX_SKIP_REASON)
            body.append(text_block(join(md("Reason:"), reason, sep=" ")))
        if self.message:
            body.append(text_block(plain(self.message, limit=300), color="accent", weight="Bolder"))
        body += _flags(report, lim)
        body += _key_figures(report, tz, lim)
        body += _summary(report, lim)
        body += _commentary(self.commentary, editable)
        if self.steps:
            body += _steps(self.steps, lim)
        if self.approvers_note and editable:
            note = plain(self.approvers_note, limit=300)
            body.append(text_block(note, isSubtle=True, size="Small", spacing="Medium"))

        actions: list[Element] = []
        if self.page_url is not None:
            actions.append(open_url("View in browser", self.page_url))
        if self.pdf_url is not None:
            actions.append(open_url("Open draft PDF" if editable else "Open PDF", self.pdf_url))
        if editable:
            actions += [
                execute("Save commentary", verbs.VERB_SAVE, data),
                execute("Approve and send", verbs.VERB_APPROVE, data),
                execute("Regenerate", verbs.VERB_REGENERATE, data),
                _skip_action(data),
            ]
        elif state == DraftState.FAILED:  # fixed the cause (an address, the bot added to the channel)? deliver the rest
            actions.append(execute("Retry delivery", verbs.VERB_RETRY, data))

        c = report.customer
        fallback = plain(
            f"{fmt.words(report.period).adjective.capitalize()} report for {c.name} ({c.code}), "
            f"{fmt.report_week(report)}: "
            "open this message in Teams to review it.",
            limit=300,
        )
        return adaptive_card(body, actions, fallback_text=fallback)


# ---- pieces -------------------------------------------------------------------------------


def period_text(report: Report) -> str:
    """The week's one label (:func:`reporting.fmt.report_week`), "partial, as of …" included."""
    return fmt.report_week(report)


def _header(report: Report, version: int, tz: str) -> Element:
    c = report.customer
    return container(
        [
            text_block(plain(f"{c.name} ({c.code})", limit=120), size="Large", weight="Bolder"),
            text_block(
                join(
                    md(f"{fmt.words(report.period).adjective.capitalize()} report"),
                    plain(period_text(report)),
                    plain(f"draft v{version}"),
                    plain(f"generated {fmt.when(report.generated_at, tz)}"),
                ),
                isSubtle=True,
                spacing="None",
            ),
        ],
        style="emphasis",
    )


def _decided(verb: str, decision: Decision | None, tz: str) -> Markdown:
    if decision is None:
        return plain(f"{verb} (who and when not recorded)")
    return join(plain(f"{verb} by {decision.by}", limit=160), plain(fmt.stamp(decision.at, tz)))


def _state_line(state: str, version: int, decision: Decision | None, tz: str) -> Element:
    if state == DraftState.DRAFTED:
        line = plain(f"Draft v{version} \u2014 waiting for review")
    elif state == DraftState.SAVED:
        line = plain(f"Draft v{version} \u2014 commentary saved, waiting for approval")
    elif state == DraftState.APPROVED:
        line = _decided("Approved", decision, tz)
    elif state == DraftState.DELIVERING:
        line = join(_decided("Approved", decision, tz), md("delivering\u2026"))
    elif state == DraftState.DELIVERED:
        line = join(md("Delivered"), _decided("approved", decision, tz))
    elif state == DraftState.FAILED:
        line = join(md("Delivery failed \u2014 see the steps below"), _decided("approved", decision, tz))
    else:  # skipped
        line = _decided("Skipped this week", decision, tz)
    return text_block(line, color=_STATE_COLOR[state], weight="Bolder", spacing="Small")


def _flags(report: Report, lim: _Limits) -> list[Element]:
    flags = sorted(report.flags, key=lambda f: SEVERITY_ORDER.get(f.severity, 9))
    out: list[Element] = [heading(md(f"Flags ({len(flags)})"))]
    if not flags:
        out.append(text_block(md("No flags this week."), color="good"))
        return out
    for f in flags[: lim.flags]:
        label = md(f"**{f.severity.upper()}**") if f.severity in SEVERITY_COLOR else plain(f.severity, limit=20)
        where = plain(SECTION_TITLES.get(f.section, f.section), limit=60)
        out.append(
            text_block(
                join(label, where, plain(f.message, limit=lim.flag_text)),
                color=SEVERITY_COLOR.get(f.severity, "default"),
                spacing="Small",
            )
        )
    if len(flags) > lim.flags:
        out.append(text_block(plain(f"\u2026 and {len(flags) - lim.flags} more in the report."), isSubtle=True))
    return out


def _more(items: Sequence[Any], cap: int) -> str:
    return f", and {len(items) - cap} more" if len(items) > cap else ""


def _figure(section: Section | None, tz: str) -> Markdown:
    """One line of key figures for a section, or why it is missing."""
    if section is None:
        return md("not collected")
    if not section.ok or section.data is None:
        return plain(f"unavailable \u2014 {section.error or 'no reason given'}", limit=_FIGURE_TEXT)
    d = section.data
    if isinstance(d, Uptime):
        return plain(f"{fmt.uptime(d.overall_pct)} overall (target {fmt.target(d.target_pct)})")
    if isinstance(d, Tickets):
        sla = (
            f"SLA {fmt.rate(d.sla_attainment_pct)} (target {fmt.target(d.target_pct)})"
            if d.sla_attainment_pct is not None
            else "SLA n/a (none closed)"
        )
        breaches = f"{d.sla_breaches} breach" + ("" if d.sla_breaches == 1 else "es")
        return plain(
            f"{d.opened} opened \u00b7 {d.closed} closed \u00b7 backlog {d.backlog} \u00b7 {sla} \u00b7 {breaches}"
        )
    if isinstance(d, Changes):
        return plain(f"{d.count} executed")
    if isinstance(d, Backups):
        rate = (
            f"{fmt.rate(d.success_rate_pct)} of runs succeeded"
            if d.success_rate_pct is not None
            else "no runs finished"
        )
        bad = [p for p in d.protected if p.status != "ok"]
        if not bad:
            return plain(f"{rate}; all {len(d.protected)} protected items ok")
        shown = [
            f"{clip_name(p.name)} ({p.status}"
            + (f", last good {fmt.hours(p.rpo_hours)} ago" if p.rpo_hours is not None else "")
            + ")"
            for p in bad[:_NOT_OK_BACKUPS]
        ]
        return plain(f"{rate}; not ok: {', '.join(shown)}{_more(bad, _NOT_OK_BACKUPS)}", limit=_FIGURE_TEXT)
    if isinstance(d, Security):
        score = (
            f"secure score {fmt.rate(d.secure_score_pct)} ({fmt.points(d.secure_score_change)})"
            if d.secure_score_pct is not None
            else "secure score n/a"
        )
        return plain(f"{d.incidents_new} new \u00b7 {d.incidents_open} open incidents \u00b7 {score}")
    if isinstance(d, Sites):
        if not d.checks:
            return md("no public checks")
        measured = [(c.availability_pct, c.name) for c in d.checks if c.availability_pct is not None]
        if d.basis != "period" or not measured:  # no availability figure: only each check's state now
            up = sum(1 for c in d.checks if (c.status_now or "").lower() == "healthy")
            return plain(
                f"{up} of {len(d.checks)} check{'s' if len(d.checks) != 1 else ''} healthy now "
                "(current status only; the week's history could not be read)",
                limit=_FIGURE_TEXT,
            )
        worst_pct, worst_name = min(measured, key=lambda m: m[0])
        below = sum(1 for pct, _ in measured if pct < d.target_pct)
        return plain(
            f"lowest availability {fmt.uptime(worst_pct)} ({clip_name(worst_name)}) of {len(d.checks)} "
            f"site{'s' if len(d.checks) != 1 else ''}; {below} below the {fmt.target(d.target_pct)} target"
        )
    return md("n/a")


def clip_name(name: str) -> str:
    return name if len(name) <= 60 else name[:59] + "\u2026"


def _bullets(lines: Sequence[Markdown]) -> Markdown:
    """A Markdown bullet list of already-escaped single-line items, "\\r"-separated as in the
    Adaptive Cards text-features documentation."""
    return Markdown("\r".join(f"- {line}" for line in lines))


def _key_figures(report: Report, tz: str, lim: _Limits) -> list[Element]:
    sections = report.sections
    facts = [(plain(SECTION_TITLES[name]), _figure(sections.get(name), tz)) for name in SECTION_NAMES]
    out: list[Element] = [heading(md("Key figures")), fact_set(facts)]
    out += _open_incidents(sections.get("security"), lim)
    out += _change_list(sections.get("changes"), tz, lim)
    return out


def _open_incidents(section: Section | None, lim: _Limits) -> list[Element]:
    if (
        not lim.incidents
        or section is None
        or not section.ok
        or not isinstance(section.data, Security)
        or not section.data.open_items
    ):
        return []
    items = section.data.open_items
    lines = [
        join(plain(i.severity.upper(), limit=20), plain(f"{i.title} (incident {i.id})", limit=lim.title_text))
        for i in items[: lim.incidents]
    ]
    out = [text_block(md("**Open incidents**"), spacing="Medium"), text_block(_bullets(lines), spacing="Small")]
    if len(items) > lim.incidents:
        out.append(text_block(plain(f"\u2026 and {len(items) - lim.incidents} more"), isSubtle=True))
    return out


def _change_list(section: Section | None, tz: str, lim: _Limits) -> list[Element]:
    if (
        not lim.changes
        or section is None
        or not section.ok
        or not isinstance(section.data, Changes)
        or not section.data.items
    ):
        return []
    items = section.data.items
    lines = [
        join(plain(ch.title, limit=lim.title_text), plain(fmt.when(ch.closed_at, tz))) for ch in items[: lim.changes]
    ]
    out = [text_block(md("**Changes**"), spacing="Medium"), text_block(_bullets(lines), spacing="Small")]
    if len(items) > lim.changes:
        more = plain(f"\u2026 and {len(items) - lim.changes} more in the PDF")
        out.append(text_block(more, isSubtle=True, spacing="None"))
    return out


def _summary(report: Report, lim: _Limits) -> list[Element]:
    out: list[Element] = [heading(md("Executive summary"))]
    sentences = report.summary[: lim.sentences] or ("No summary was generated.",)
    out += [text_block(plain(s, limit=lim.sentence_text), spacing="Small") for s in sentences]
    recommendations = report.recommendations[: lim.recommendations]
    if recommendations:
        out.append(text_block(md("**Advice to the customer** (in the report)"), spacing="Medium"))
        out.append(
            text_block(
                _bullets([plain(r, limit=lim.sentence_text) for r in recommendations]),
                spacing="Small",
            )
        )
    actions = report.engineer_actions[: max(1, lim.recommendations)]
    if actions:  # internal: the technical reasons and our own to-dos, never in what the customer receives
        out.append(
            text_block(md("**Engineer actions** (internal, not in the report)"), spacing="Medium", color="warning")
        )
        out.append(text_block(_bullets([plain(a, limit=lim.sentence_text) for a in actions]), spacing="Small"))
        if len(report.engineer_actions) > len(actions):
            out.append(
                text_block(
                    plain(f"\u2026 and {len(report.engineer_actions) - len(actions)} more"),
                    isSubtle=True,
                    spacing="None",
                )
            )
    return out


def _commentary(commentary: str, editable: bool) -> list[Element]:
    if editable:
        field: Element = {
            "type": "Input.Text",
            "id": verbs.INPUT_COMMENTARY,
            "label": "Engineer commentary (goes into the report as written)",
            "isMultiline": True,
            "maxLength": MAX_COMMENTARY,
            "placeholder": "Context for the customer: what happened, what we are doing about it.",
            "spacing": "Medium",
        }
        if commentary:
            field["value"] = commentary  # verbatim: Input.Text values are not Markdown
        return [field]
    shown = plain(commentary, multiline=True) if commentary.strip() else md("No commentary.")
    return [heading(md("Commentary")), text_block(shown, spacing="Small")]


def _steps(steps: Sequence[DeliveryStepView], lim: _Limits) -> list[Element]:
    facts = []
    for s in steps[: lim.steps]:
        icon = _STEP_ICON.get(s.status, "\u23f3" if s.status in ("pending", "running") else "\u2022")
        parts = [plain(f"{icon} {s.status}", limit=40)]
        if s.detail:
            parts.append(plain(s.detail, limit=lim.step_text))
        if s.url and len(s.url) <= _MAX_URL and safe_url(s.url):
            parts.append(link("open", s.url))
        facts.append((plain(s.name, limit=40), join(*parts)))
    return [heading(md("Delivery")), fact_set(facts)]


def _skip_action(data: dict[str, Any]) -> Element:
    """Skip needs a reason: a ShowCard with its own input and its own Execute."""
    return {
        "type": "Action.ShowCard",
        "title": "Skip this week\u2026",
        "card": {
            "type": "AdaptiveCard",
            "body": [
                {
                    "type": "Input.Text",
                    "id": verbs.INPUT_SKIP_REASON,
                    "label": "Why is this week's report not sent?",
                    "isRequired": True,
                    "errorMessage": "Give a reason for skipping.",
                    "maxLength": MAX_SKIP_REASON,
                }
            ],
            "actions": [execute("Skip this week", verbs.VERB_SKIP, data)],
        },
    }
