"""The customer's voice: how a report names its sources and its own gaps to the people who read it.

A section's ``source`` is a connector name and its ``error`` the technical reason it could not be
read; both are for the engineer (review card, roll-up, JSON snapshot). Everything the customer
receives (PDF, Markdown, email, channel card) says it with these words instead.
"""

from __future__ import annotations

from reporting.fmt import WORDS, Words
from reporting.models import Section, Sites, Uptime

#: connector name -> what the customer calls that system
SOURCE_LABELS: dict[str, str] = {
    "zabbix": "Network and server monitoring",
    "librenms": "Network and server monitoring",
    "connectwise": "Service desk",
    "halo": "Service desk",
    "datto": "Backup system",
    "veeam": "Backup system",
    "defender": "Microsoft 365 security",
    "sentinel": "Microsoft security monitoring",
    "statuscheck": "Public-site monitoring",
    "cloudflare": "Public-site monitoring",
}

#: section name -> the figures it holds, as the customer would say it
_WHAT: dict[str, str] = {
    "uptime": "uptime figures for your network and servers",
    "tickets": "service desk ticket figures",
    "changes": "list of changes carried out",
    "backups": "backup figures",
    "security": "security figures",
    "sites": "public-site availability figures",
}

_SECTION_SOURCE: dict[str, str] = {
    "uptime": "Network and server monitoring",
    "tickets": "Service desk",
    "changes": "Service desk",
    "backups": "Backup system",
    "security": "Security monitoring",
    "sites": "Public-site monitoring",
}


def source_label(section: Section) -> str:
    """The source in the customer's words (never a connector name)."""
    return SOURCE_LABELS.get(section.source.lower(), _SECTION_SOURCE.get(section.name, "Our monitoring"))


def possessive(w: Words) -> str:
    """ "This week's" / "This month's" / "The 30 days'"."""
    return "The 30 days'" if w.noun == "30 days" else f"{w.this[:1].upper()}{w.this[1:]}'s"


def missing(name: str, w: Words = WORDS["week"]) -> str:
    """What an unavailable section tells the customer: what is missing, that it is not a zero,
    and that it follows in the next report. No reason: that stays on the review card."""
    what = _WHAT.get(name, "figures for this section")
    return (
        f"{possessive(w)} {what} could not be collected in time for this report, so none are shown here "
        f"(they are not zero). We are looking into it, and {w.next_report} will include them."
    )


def missing_short(name: str, w: Words = WORDS["week"]) -> str:
    """One sentence for the summary and the email."""
    what = _WHAT.get(name, "figures for this section")
    return f"{possessive(w)} {what} are missing; they will follow in {w.next_report}."


def overall_basis(u: Uptime) -> str:
    """How the overall uptime figure was measured, in plain words."""
    if u.overall_source.startswith("SLA "):
        return f"measured by the agreed service level \u201c{u.overall_source.removeprefix('SLA ')}\u201d"
    return "the average over every monitored device, weighted by how long each was monitored"


def score_missing(w: Words = WORDS["week"]) -> str:
    return (
        f"Microsoft did not provide a complete Secure Score {w.this}, so it is left out; "
        f"it will be back in {w.next_report}."
    )


def sites_current_only(w: Words = WORDS["week"]) -> str:
    return (
        f"The {w.noun}{chr(39) if w.noun.endswith('s') else chr(39) + 's'} availability history could not be read, "
        f"so only each site's current status is shown; {w.next_report} will include the {w.adjective} figure."
    )


SCORE_MISSING = score_missing()
SITES_CURRENT_ONLY = sites_current_only()


def sites_note(s: Sites, w: Words = WORDS["week"]) -> str:
    return sites_current_only(w) if s.basis != "period" else ""
