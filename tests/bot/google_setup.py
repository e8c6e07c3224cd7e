"""Shared set-up of the Google delivery tests: a configuration pointing at :class:`FakeGoogle`,
the service account key file, parcels, and a clock whose sleeps are instant."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.delivery import Parcel
from reporting.config import Config, CustomerConfig, parse_config
from reporting.models import CustomerRef, Period, Report
from tests.bot.doubles import pdf_of
from tests.bot.fake_google import SCOPE_DRIVE, SCOPE_GMAIL_READONLY, SCOPE_GMAIL_SEND, FakeGoogle

SENDER = "reports@northwind.example"
ARCHIVIST = "archive@northwind.example"
PERIOD_END = date(2026, 11, 16)
MB = 1024 * 1024


def setup_google(google: FakeGoogle, *, shared_drive: bool = False) -> dict[str, str]:
    """The Workspace: the sender's mailbox, delegation granted, an archive root the archivist may write."""
    google.add_user(SENDER)
    google.add_user(ARCHIVIST)
    google.grant(SCOPE_GMAIL_SEND, SCOPE_GMAIL_READONLY, SCOPE_DRIVE)
    if shared_drive:
        root = google.add_shared_drive("Customer reports")
    else:
        root = google.add_folder("Report archive")
    google.share(ARCHIVIST, root, "writer")
    return {"root": root}


def key_file(google: FakeGoogle, tmp_path: Path, info: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info or google.service_account_info()))
    return path


def make_config(
    google: FakeGoogle,
    key: Path,
    *,
    root: str,
    email: str = "gmail",
    archive: str = "gdrive",
    shared_drive: bool = False,
    customers: tuple[str, ...] = ("ACME", "GLOBEX"),
    extra: dict[str, Any] | None = None,
) -> Config:
    return parse_config(
        config_dict(
            google.origin,
            key,
            root=root,
            email=email,
            archive=archive,
            shared_drive=shared_drive,
            customers=customers,
            extra=extra,
        ),
        "<test>",
        env={},
    )


def google_tables(
    origin: str, key: Path, *, root: str, email: str = "gmail", archive: str = "gdrive", shared_drive: bool = False
) -> dict[str, Any]:
    """``[delivery]``, ``[gmail]`` and ``[gdrive]`` pointing at a FakeGoogle at ``origin``."""
    endpoints = {
        "token_uri": f"{origin}/token",
        "base_url": origin,
        "upload_url": origin,
        "allow_endpoint_overrides": True,
    }
    gdrive: dict[str, Any] = {"subject": ARCHIVIST, **endpoints}
    gdrive["shared_drive_id" if shared_drive else "root_folder_id"] = root
    return {
        "delivery": {"email": email, "archive": archive},
        "gmail": {"sender": SENDER, "credentials_file": str(key), **endpoints},
        "gdrive": gdrive,
    }


def config_dict(
    origin: str,
    key: Path,
    *,
    root: str,
    email: str = "gmail",
    archive: str = "gdrive",
    shared_drive: bool = False,
    customers: tuple[str, ...] = ("ACME", "GLOBEX"),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    def customer(code: str) -> dict[str, Any]:
        domain = f"{code.lower()}.example"
        return {
            "code": code,
            "name": f"{code.title()} Corp",
            "domain": domain,
            "cto_email": f"cto@{domain}",
            "account_owner_email": f"am-{code.lower()}@northwind.example",
            "teams_channel": f"19:{code}@thread",
            "sharepoint_folder": f"Customers/{code}",
            "drive_folder": f"Clients/{code.title()}",
        }

    data: dict[str, Any] = {
        "msp": {"name": "Northwind IT", "timezone": "Europe/London"},
        **google_tables(origin, key, root=root, email=email, archive=archive, shared_drive=shared_drive),
        "customers": [customer(c) for c in customers],
    }
    for k, v in (extra or {}).items():
        data[k] = {**data.get(k, {}), **v}
    return data


def report_for(c: CustomerConfig, period_end: date = PERIOD_END) -> Report:
    end = datetime(period_end.year, period_end.month, period_end.day, tzinfo=UTC)
    return Report(
        customer=CustomerRef(c.code, c.name, "UTC"),
        period=Period(end - timedelta(days=7), end, "UTC"),
        sections={},
        flags=(),
        generated_at=end,
        summary=(f"{c.name}: uptime 99.95 %", "2 tickets opened"),
    )


def parcel(
    config: Config, code: str = "ACME", pdf: bytes | None = None, draft: str = "d1", period_end: date = PERIOD_END
) -> Parcel:
    c = config.customer(code)
    return Parcel(
        draft,
        code,
        c,
        period_end,
        report_for(c, period_end),
        pdf if pdf is not None else pdf_of(50_000),
        "Sam Approver",
    )
