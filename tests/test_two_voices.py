"""Two voices (issue 14, must-show 1): what the customer receives — PDF, Markdown, both parts of
the email, the channel card — is written for the customer; the technical reason and the
engineer's to-dos stay on the review card (and in the JSON snapshot it reads)."""

from __future__ import annotations

import json
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from pypdf import PdfReader

from cards.review import review_card
from reporting import snapshot
from tests.conftest import PERIOD_END, load_json

CODES = [
    "ACME",
    "CYBERDYNE",
    "GLOBEX",
    "HOOLI",
    "INITECH",
    "MASSIVE",
    "SOYLENT",
    "STARK",
    "TYRELL",
    "UMBRELLA",
    "WAYNE",
    "WONKA",
]
CONNECTORS = (
    "zabbix",
    "librenms",
    "connectwise",
    "halo",
    "datto",
    "veeam",
    "defender",
    "sentinel",
    "statuscheck",
    "cloudflare",
    "sandbox",
)
INTERNAL = [(re.compile(rf"\b{name}\b", re.IGNORECASE), f"connector name {name}") for name in CONNECTORS] + [
    (re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)\b"), "HTTP method"),
    (re.compile(r"(?<![\w.])/(api|v\d|security|zones|apiv|public|users)\b|\.php\b|api_jsonrpc"), "API path"),
    (
        re.compile(
            r"\bHTTP\s*\d{3}\b|\bstatus(?: code)?\s*\d{3}\b"
            r"|\b[1-5]\d\d (Partial|Bad|Internal|Service|Gateway|Not)\b",
            re.IGNORECASE,
        ),
        "status code",
    ),
    (re.compile(r"reportbot", re.IGNORECASE), "product name"),
    (re.compile(r"try again later", re.IGNORECASE), "retry hint"),
    (
        re.compile(r"Traceback|Exception|Error:|\battempts?\)|timed out|errno|ConnectError|Timeout", re.IGNORECASE),
        "exception text",
    ),
]


def internal_strings(text: str) -> list[str]:
    found = []
    for pattern, what in INTERNAL:
        m = pattern.search(text)
        if m:
            found.append(f"{what}: {text[max(0, m.start() - 60) : m.end() + 60]!r}")
    return found


def test_the_checker_finds_every_kind_of_internal_string() -> None:
    today = (
        "Uptime and SLA figures are missing this week: zabbix: POST /api_jsonrpc.php: HTTP 502 (an HTML error "
        "page) (after 4 attempts) (try again later). Restore reportbot's access."
    )
    kinds = {f.split(":")[0] for f in internal_strings(today)}
    assert {
        "connector name zabbix",
        "HTTP method",
        "API path",
        "status code",
        "product name",
        "retry hint",
        "exception text",
    } <= kinds
    assert internal_strings("This week's uptime figures are missing; they will follow in next week's report.") == []


def _pdf_text(path: Path) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(path).pages)


_SHOWN_KEYS = {"text", "title", "fallbackText", "altText", "placeholder", "label", "url"}


def _shown(element: object) -> list[str]:
    """Every string an Adaptive Card shows (or links to); element ids are not shown to anyone."""
    if isinstance(element, dict):
        return [t for k, v in element.items() for t in ([v] if k in _SHOWN_KEYS and isinstance(v, str) else _shown(v))]
    if isinstance(element, list):
        return [t for v in element for t in _shown(v)]
    return []


def _customer_texts(demo_out: Path, code: str) -> dict[str, str]:
    out = {
        "pdf": _pdf_text(demo_out / code / f"{code}-weekly-{PERIOD_END}.pdf"),
        "markdown": (demo_out / code / f"{code}-weekly-{PERIOD_END}.md").read_text(encoding="utf-8"),
        # the technical report is the customer's too (its IT manager's)
        "technical pdf": _pdf_text(demo_out / code / f"{code}-weekly-{PERIOD_END}-technical.pdf"),
        "technical markdown": (demo_out / code / f"{code}-weekly-{PERIOD_END}-technical.md").read_text(
            encoding="utf-8"
        ),
    }
    mails = {"email": demo_out / "outbox" / "mail" / f"{code}-weekly-{PERIOD_END}.eml"}
    technical_eml = demo_out / "outbox" / "mail" / f"{code}-weekly-{PERIOD_END}-technical.eml"
    if technical_eml.exists():
        mails["technical email"] = technical_eml
    for what, eml in mails.items():
        with eml.open("rb") as fh:
            msg = BytesParser(policy=policy.default).parse(fh)
        out[f"{what} subject"] = str(msg["Subject"])
        plain = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        assert plain is not None and html is not None
        out[f"{what} text part"] = plain.get_content()
        out[f"{what} html part"] = html.get_content()
    posts = list((demo_out / "outbox" / "channels").glob(f"*/{code}-weekly-{PERIOD_END}.json"))
    assert posts, f"{code}: no channel post"
    post = json.loads(posts[0].read_text(encoding="utf-8"))
    out["channel card"] = "\n".join([*_shown(post["card"]), post["text"], *post["summary"]])
    return out


@pytest.mark.parametrize("code", CODES)
def test_no_internal_string_reaches_the_customer(demo_out: Path, code: str) -> None:
    problems = {
        where: found for where, text in _customer_texts(demo_out, code).items() if (found := internal_strings(text))
    }
    assert problems == {}


def test_hooli_tells_the_customer_what_is_missing_and_the_review_card_keeps_the_reason(demo_out: Path) -> None:
    texts = _customer_texts(demo_out, "HOOLI")
    pdf = " ".join(texts["pdf"].split())
    assert "Not available this week" in pdf
    assert "Not available this week" in " ".join(texts["technical pdf"].split())
    assert "uptime figures for your network and servers could not be collected" in pdf
    assert "next week's report will include them" in pdf
    # our data problem is not "an item needing attention" for the customer
    assert "needs attention" not in pdf and "need attention" not in pdf

    snap = load_json(demo_out, "HOOLI")
    assert "HTTP 502" in snap["sections"]["uptime"]["error"]
    assert any("zabbix" in a and "HTTP 502" in a for a in snap["engineer_actions"])
    card = json.dumps(
        review_card(snapshot.from_dict(snap), draft_id="d1", version=1, state="drafted", commentary="", pdf_url=None)
    )
    assert "HTTP 502" in card and "zabbix" in card and "Engineer actions" in card


def test_recommendations_are_advice_tied_to_their_fact_and_todos_stay_internal(demo_out: Path) -> None:
    initech = load_json(demo_out, "INITECH")
    advice = initech["recommendations"]
    assert any("Suspicious sign-in to finance mailbox" in r and "Please confirm with us" in r for r in advice), advice
    assert not any("customer's contact" in r for r in advice)
    assert any("customer's contact" in a for a in initech["engineer_actions"])
    hooli = load_json(demo_out, "HOOLI")
    assert not any("access" in r.lower() for r in hooli["recommendations"])


def test_the_plain_text_email_part_carries_the_same_note(demo_out: Path) -> None:
    texts = _customer_texts(demo_out, "HOOLI")
    assert "next week's report" in texts["email text part"]
