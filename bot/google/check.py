"""``reportbot config check`` for the Google steps: does the delegation work?

For ``[delivery] email = "gmail"``: a token for the sender with each scope (gmail.send,
gmail.readonly), then the sender's profile. For ``archive = "gdrive"``: a token with the drive
scope (as ``[gdrive] subject``, or the service account), the archive root read (a folder that may
be written in, or a shared drive) and its children listed. Each line starts ``ok:`` or
``error:`` and an error says what to fix: the client id and scopes in the Google Admin console,
the key, or the Drive sharing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.delivery import PermanentError
from bot.google.auth import GMAIL_SCOPES, SCOPE_DRIVE, CredentialsError, GoogleUnavailable
from bot.google.backend import GoogleDelivery
from reporting.config import Config


def offline_problems(config: Config) -> list[str]:
    """``config check --offline`` too: the service account keys can be read."""
    from bot.google.backend import _credentials

    out = []
    for section, used in (("gmail", config.delivery.email == "gmail"), ("gdrive", config.delivery.archive == "gdrive")):
        table = config.gmail if section == "gmail" else config.gdrive
        if not used or not (table.credentials_file or table.credentials_json):
            continue
        try:
            _credentials(section, table)
        except CredentialsError as err:
            out.append(f"error: {err}")
    return out


async def check_google(config: Config) -> list[str]:
    if not config.delivery.uses_google:
        return []
    try:
        google = GoogleDelivery(config, max_attempts=2)
    except CredentialsError as err:
        return [f"error: {err}"]
    lines: list[str] = []
    try:
        if google.gmail is not None:
            g = google.gmail
            lines.extend(
                await _probe("gmail", lambda scope: g.http.tokens.token(scope, g.sender), GMAIL_SCOPES, g.sender)
            )
            if not any(line.startswith("error") for line in lines):
                lines.append(await _line("gmail", g.check_profile()))
        if google.drive is not None:
            d = google.drive
            probed = await _probe(
                "gdrive", lambda scope: d.http.tokens.token(scope, d.http.subject), (SCOPE_DRIVE,), d.principal
            )
            lines.extend(probed)
            if not any(line.startswith("error") for line in probed):
                lines.append(await _line("gdrive", d.check_root()))
    finally:
        await google.aclose()
    return lines


async def _probe(
    section: str, mint: Callable[[str], Awaitable[object]], scopes: tuple[str, ...], who: str
) -> list[str]:
    out = []
    for scope in scopes:
        try:
            await mint(scope)
        except (PermanentError, GoogleUnavailable) as err:
            out.append(f"error: {err}")
        else:
            out.append(f"ok: {section}: a token as {who} for {scope}")
    return out


async def _line(section: str, probe: Awaitable[object]) -> str:
    try:
        return f"ok: {section}: {await probe}"
    except (PermanentError, GoogleUnavailable) as err:
        text = str(err)
        return f"error: {text}" if text.startswith((section, "Drive")) else f"error: {section}: {text}"
