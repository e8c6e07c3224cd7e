"""``reportbot config check --live``: is this deployment ready for Monday?

Each check makes the calls the bot itself makes, through the same code, against the configured
endpoints (``[teams] login_url``, ``[graph] base_url`` and ``authority``, ``[store] url``), and
says in one line what holds or exactly what to fix:

1. ``bot connector``: the bot's credentials (botbuilder's factory: the app password, or the
   user-assigned managed identity) mint a token for the Bot Connector (``bot.auth.connector_token``).
2. ``graph token``: the ``[graph] auth`` credential mints a Graph token, and its ``roles`` hold
   each application permission :func:`bot.graph.permissions.required_permissions` lists for this
   configuration (one ``permission`` line each).
3. ``mailbox``: the email step's exactly-once look-up, ``GET /users/{mailbox}/messages?$filter=
   singleValueExtendedProperties/any(...)``, for a delivery id nothing carries (``Mail.ReadWrite``:
   the permission the step needs anyway; ``GET /users/{id}`` would need ``User.Read.All``, which
   the delivery does not).
4. ``archive``: a small probe file written into the archive folder (the deepest existing folder all
   customers' archive folders share, else the library root) and deleted again, through the
   archive's own ``Drives`` (``PUT .../items/{parent}:/{name}:/content``, ``DELETE .../items/{id}``).
5. ``channel``: the review channel, the roll-up channel and every customer's ``teams_channel`` are
   in a team the app is installed in: the installations and channel teams the store has from
   Teams' activities, and Graph's ``GET /teams/{team}/channels/{channel}/filesFolder`` (the
   channel step's own first call; ``Files.ReadWrite.All`` or the manifest's RSC
   ``File.Read.Group`` allow it, while ``GET /teams/{id}/channels/{id}`` would need
   ``ChannelSettings.Read.Group``, which the manifest leaves out, or ``Channel.ReadBasic.All``).
6. ``store``: ``[store] url`` opens and answers ``SELECT 1``.

A line is ``ok``, ``FAIL`` (the deployment would fail there) or ``note`` (something no call can
show from here, such as a grant that never appears in an app token, and how to verify it). Tokens
and secrets are never printed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from sqlalchemy.exc import SQLAlchemyError

from bot.auth import PUBLIC_LOGIN_URL, PUBLIC_OAUTH_SCOPE, connector_token
from bot.delivery import PermanentError, archive_folder
from bot.graph.backend import GraphBackend
from bot.graph.client import DEFAULT_BASE_URL, GraphUnavailable, config_credential, graph_scope
from bot.graph.drive import folder_parts
from bot.graph.permissions import (
    Permission,
    archive_via_graph,
    email_via_graph,
    required_permissions,
    uses_graph,
)
from bot.settings import BotSettings, SettingsError
from bot.state import ReviewState
from connectors.aad.tokens import NO_CODE, PUBLIC_AUTHORITY, aadsts
from reporting.config import Config
from reporting.store import HistoryStore, StoreError

Status = Literal["ok", "FAIL", "note"]
CHECK_TIMEOUT = 60.0  # seconds for any one check (a token, a Graph call with its retries, the store)
PROBE_CONTENT = b"reportbot config check --live: a probe that the check deletes at once\n"


@dataclass(frozen=True)
class Line:
    status: Status
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.status:<4} {self.check}: {self.message}"


class _Failed(Exception):  # noqa: N818 - a check's verdict, not an error of the program
    """A check's FAIL line, raised from deep inside it."""


class LiveCheck:
    """The checks for one configuration; :meth:`run` returns every line, in the order above."""

    def __init__(self, config: Config, *, timeout: float = CHECK_TIMEOUT) -> None:
        self.config, self.timeout = config, timeout
        t = config.teams
        self.app_id, self.tenant = t.app_id, t.tenant_id
        self.base_url = (config.graph.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._secrets = [
            s.get_secret_value() for s in (t.app_password, t.link_secret) if s is not None and s.get_secret_value()
        ]

    # -- the whole run ---------------------------------------------------------------------
    async def run(self) -> list[Line]:
        lines: list[Line] = []
        store_line, state, store = await self._store()
        try:
            lines += await self._bot_connector()
            backend: GraphBackend | None = None
            credential: Any = None
            if uses_graph(self.config):
                credential, token_lines = await self._graph_token()
                lines += token_lines
                if credential is not None:
                    backend = GraphBackend(
                        self.config, credential, max_attempts=2, max_retry_after=10.0, settle_checks=1, settle_delay=0.0
                    )
            else:
                lines.append(
                    Line(
                        "note",
                        "graph",
                        "not used: no [graph] mailbox and no [delivery] table, so approved PDFs are filed under "
                        "OUT/approved/ and nothing is emailed, archived or posted in customer channels",
                    )
                )
            try:
                if email_via_graph(self.config):
                    lines.append(await self._guard("mailbox", backend, self._mailbox))
                if archive_via_graph(self.config):
                    lines.append(await self._guard("archive", backend, self._archive))
                lines += await self._channels(state, backend)
            finally:
                if backend is not None:
                    await backend.aclose()
                if credential is not None:
                    await credential.close()
        finally:
            if store is not None:
                await store.close()
        lines.append(store_line)
        return lines

    async def _guard(
        self, check: str, backend: GraphBackend | None, fn: Callable[[GraphBackend], Awaitable[str]]
    ) -> Line:
        """``fn(backend)`` as one line: its description (ok), or the reason it failed."""
        if backend is None:
            return Line("FAIL", check, "not checked: no Graph token (see 'graph token' above)")
        try:
            return Line("ok", check, await asyncio.wait_for(fn(backend), self.timeout))
        except _Failed as err:
            return Line("FAIL", check, self._clean(str(err)))
        except TimeoutError:
            return Line("FAIL", check, f"no answer from Graph at {self.base_url} within {self.timeout:g} s")
        except GraphUnavailable as err:
            return Line("FAIL", check, self._clean(f"Graph did not answer as it should: {err}"))
        except PermanentError as err:
            return Line("FAIL", check, self._clean(str(err)))

    # -- 1. the Bot Connector token ----------------------------------------------------------
    async def _bot_connector(self) -> list[Line]:
        try:
            settings = BotSettings.from_config(self.config)
        except SettingsError as err:
            problems = [Line("FAIL", "teams", self._clean(p)) for p in str(err).splitlines()]
            return [*problems, Line("FAIL", "bot connector", "not tried: serve refuses these [teams] settings (above)")]
        login = settings.login_url or PUBLIC_LOGIN_URL
        try:
            await asyncio.wait_for(connector_token(settings), self.timeout)
        except TimeoutError:
            return [Line("FAIL", "bot connector", f"no token from {login} within {self.timeout:g} s")]
        except PermissionError as err:  # botbuilder's credentials: Entra ID refused them
            why = self._entra_refusal(str(err), "teams.app_password")
            return [Line("FAIL", "bot connector", self._clean(f"Microsoft Entra ID at {login} refused a token: {why}"))]
        except (requests.RequestException, ValueError, OSError) as err:  # MSAL: discovery or the token request
            return [Line("FAIL", "bot connector", self._clean(self._unreachable(login, "teams.login_url", err)))]
        who = f"the managed identity {self.app_id}" if settings.app_type == "UserAssignedMSI" else f"app {self.app_id}"
        return [
            Line("ok", "bot connector", f"{who} has a token for the Bot Connector ({PUBLIC_OAUTH_SCOPE}) from {login}")
        ]

    # -- 2. the Graph token and its roles ------------------------------------------------------
    async def _graph_token(self) -> tuple[Any, list[Line]]:
        g = self.config.graph
        secret_key = "graph.certificate_path" if g.auth == "certificate" else "teams.app_password"
        try:
            credential = config_credential(self.config)
        except ValueError as err:
            return None, [Line("FAIL", "graph token", self._clean(f"[graph] auth = {g.auth!r}: {err}"))]
        authority = g.authority or PUBLIC_AUTHORITY
        scope = graph_scope(self.base_url)
        try:
            # as msgraph's auth provider asks (CAE on), so the SDK's calls below reuse this very token
            token = await asyncio.wait_for(credential.get_token(scope, enable_cae=True), self.timeout)
        except TimeoutError:
            why = f"no token from {authority} within {self.timeout:g} s"
        except ClientAuthenticationError as err:  # refused (or, for a managed identity, unavailable)
            why = f"Microsoft Entra ID at {authority} refused a token: {self._entra_refusal(str(err), secret_key)}"
        except ServiceRequestError as err:
            why = self._unreachable(authority, "graph.authority", err)
        except (AzureError, ValueError, OSError) as err:
            why = f"no token from {authority} ({type(err).__name__}: {err})"
        else:
            roles = _roles(token.token)
            if roles is None:
                await credential.close()
                return None, [
                    Line("FAIL", "graph token", f"the token from {authority} is not a JWT: its roles cannot be read")
                ]
            shown = ", ".join(sorted(roles)) or "none"
            lines = [
                Line(
                    "ok",
                    "graph token",
                    f"app {self.app_id} has a Graph token ({scope}) from {authority}; roles: {shown}",
                )
            ]
            return credential, lines + [self._permission(p, roles) for p in required_permissions(self.config)]
        await credential.close()
        return None, [Line("FAIL", "graph token", self._clean(why))]

    def _permission(self, p: Permission, roles: set[str]) -> Line:
        name = " or ".join(p.any_of)
        check = f"permission {name}"
        held = [r for r in p.any_of if r in roles]
        if p.exchange_role:
            if held:
                return Line(
                    "FAIL",
                    check,
                    f'consented tenant-wide in Entra ID although [graph] mail_permissions = "exchange_rbac": grants '
                    f"add up, so the Exchange scope restricts nothing; remove the admin consent for {name} from app "
                    f"{self.app_id} (Entra ID > App registrations > API permissions)",
                )
            return Line(
                "note",
                check,
                f"granted in Exchange Online (RBAC for Applications, role {p.exchange_role!r}), which no Graph token "
                f"shows; needed for: {p.need}. Verify with `Test-ServicePrincipalAuthorization -Identity {self.app_id} "
                f"-Resource {self.config.graph.mailbox}` (InScope True)",
            )
        if held:
            extra = f" ({p.also})" if p.also and held == ["Sites.Selected"] else ""
            return Line("ok", check, f"{held[0]} is in the token's roles; needed for: {p.need}{extra}")
        if p.rsc:
            return Line(
                "note",
                check,
                f"not in the token's roles; needed for: {p.need}. The app manifest's resource-specific consent "
                f"({', '.join(p.rsc)}) allows it in each team the app is installed in, and no app token shows that "
                "(see the channel lines)",
            )
        least = "Sites.Selected (with a write grant on the archive site)" if "Sites.Selected" in p.any_of else name
        return Line(
            "FAIL",
            check,
            f"not in the Graph token's roles; needed for: {p.need}. Add the Microsoft Graph application permission "
            f"{least} to app {self.app_id} (Entra ID > App registrations > API permissions) and grant admin consent",
        )

    # -- 3. the mailbox -------------------------------------------------------------------------
    async def _mailbox(self, backend: GraphBackend) -> str:
        mailbox = self.config.graph.mailbox
        if not mailbox:
            raise _Failed('graph.mailbox: not set, but [delivery] email = "graph" sends from it')
        try:
            await backend.mail.check_mailbox()
        except PermanentError as err:
            status, code = _graph_error(err)
            if status == 404:
                raise _Failed(
                    f"graph.mailbox {mailbox} is not a mailbox of tenant {self.tenant} (Graph {status} {code}): "
                    "give the primary SMTP address (or UPN) of a licensed user or shared mailbox"
                ) from None
            if status == 403:
                fix = (
                    f'New-ManagementRoleAssignment -App {self.app_id} -Role "Application Mail.ReadWrite" '
                    f"-CustomResourceScope <a scope that includes {mailbox}>"
                    if self.config.graph.mail_permissions == "exchange_rbac"
                    else f"grant app {self.app_id} the application permission Mail.ReadWrite (admin consent), or "
                    "scope it to this mailbox with RBAC for Applications"
                )
                raise _Failed(
                    f"the app may not search mailbox {mailbox} (Graph {status} {code}), as the email step must "
                    f"before every send: {fix}"
                ) from None
            raise
        return (
            f"{mailbox} answers the email step's exactly-once look-up (GET /users/{mailbox}/messages with the "
            "delivery-id $filter; nothing sent)"
        )

    # -- 4. the archive ---------------------------------------------------------------------------
    async def _archive(self, backend: GraphBackend) -> str:
        g, drives = self.config.graph, backend.drives
        if not g.sharepoint_site:
            raise _Failed('graph.sharepoint_site: not set, but [delivery] archive = "sharepoint" files the PDFs there')
        try:
            drive = await drives.archive_drive()
        except PermanentError as err:
            status, code = _graph_error(err)
            if status == 404:
                raise _Failed(
                    f"graph.sharepoint_site {g.sharepoint_site}: no such site (Graph {status} {code}); write it "
                    "as host:/sites/path (e.g. northwind.sharepoint.com:/sites/Customers) or a site id"
                ) from None
            if status == 403:
                raise _Failed(self._write_fix(g.sharepoint_site, "read the site", status, code)) from None
            if "no document library" in str(err):
                raise _Failed(f"{err} (graph.sharepoint_library)") from None
            raise
        parts = self._common_archive_folder()
        parent, where = "root", []
        for depth in range(len(parts)):
            found = await drives.find_folder(drive, parent, parts[: depth + 1])
            if found is None:
                break
            parent, where = found, parts[: depth + 1]
        name = f"reportbot-config-check-{uuid.uuid4().hex[:12]}.txt"
        path = "/".join([g.sharepoint_library, *where, name])
        try:
            item = await drives.upload(drive, parent, name, PROBE_CONTENT)
        except PermanentError as err:
            status, code = _graph_error(err)
            if status in (401, 403):
                raise _Failed(self._write_fix(g.sharepoint_site, f"write {path}", status, code)) from None
            raise
        if not item.get("id"):
            raise _Failed(f"the probe {path} was written but Graph named no item id: delete it by hand")
        try:
            await drives.delete(drive, str(item["id"]), path)
        except PermanentError as err:
            raise _Failed(f"the probe {path} was written, but deleting it failed ({err}): delete it by hand") from None
        return f"wrote and deleted the probe {path} on {g.sharepoint_site}"

    def _common_archive_folder(self) -> list[str]:
        """The folder every customer's archive folder starts with (``Customers`` for the default
        ``Customers/<CODE>``); empty: the library root."""
        paths = [
            folder_parts(archive_folder(c), f"customers[{c.code}].sharepoint_folder") for c in self.config.customers
        ]
        return list(os.path.commonprefix(paths))  # item by item: lists of folder names

    def _write_fix(self, site: str, what: str, status: int, code: str) -> str:
        return (
            f"the app may not {what} (Graph {status} {code}): with Sites.Selected, grant it write on {site} "
            f'(POST /sites/{{site-id}}/permissions with roles ["write"] and the application {self.app_id}); else '
            "consent Sites.ReadWrite.All or Files.ReadWrite.All"
        )

    # -- 5. the channels -----------------------------------------------------------------------------
    async def _channels(self, state: ReviewState | None, backend: GraphBackend | None) -> list[Line]:
        t = self.config.teams
        wanted: list[tuple[str, str, str]] = [  # (key, channel id, customer code or "")
            ("teams.review_channel", t.review_channel, ""),
            ("teams.rollup_channel", t.rollup_channel, ""),
        ]
        wanted += [(f"customers[{c.code}].teams_channel", c.teams_channel, c.code) for c in self.config.customers]
        wanted = [w for w in wanted if w[1]]
        if not wanted:
            return []
        if state is None:
            return [
                Line("FAIL", f"channel {key}", "not checked: the store did not answer (see 'store')")
                for key, *_ in wanted
            ]
        installs = await state.installations(self.tenant)
        out = []
        for key, channel, code in wanted:
            try:
                line = await asyncio.wait_for(self._channel(state, backend, installs, key, channel, code), self.timeout)
            except TimeoutError:
                line = Line("FAIL", f"channel {key}", f"no answer from Graph within {self.timeout:g} s")
            out.append(line)
        return out

    async def _channel(
        self,
        state: ReviewState,
        graph: GraphBackend | None,
        installs: list[dict[str, Any]],
        key: str,
        channel: str,
        code: str,
    ) -> Line:
        check = f"channel {key}"
        configured = self.config.graph.channel_teams.get(code, "") if code else ""
        learnt = await state.team_of(channel)
        team = configured or learnt  # what the channel step uses (bot.service's team_of)
        heard = await state.reference(f"channel:{channel}") is not None
        installed = {str(i.get("aad_group_id") or "") for i in installs} - {""}
        if not installs and not heard:
            return Line(
                "FAIL",
                check,
                f"{channel}: the app is not installed in any team of tenant {self.tenant} (no installation event in "
                "the store): install it (the package from `reportbot manifest`) in the team that holds the channel "
                "while `reportbot serve` runs",
            )
        if graph is None:
            return self._channel_from_store(check, channel, heard, learnt, configured, len(installed))
        candidates = [team] if team else sorted(installed)
        found = ""
        for group in candidates:
            try:
                await graph.channels.files_folder(group, channel)
            except PermanentError as err:
                status, gcode = _graph_error(err)
                if status == 404:
                    continue
                if status == 403 and not code:  # an internal channel: the bot posts there without Graph
                    return self._channel_from_store(check, channel, heard, learnt, configured, len(installed))
                if status == 403:
                    return Line(
                        "FAIL",
                        check,
                        f"Graph refused GET /teams/{group}/channels/{channel}/filesFolder ({status} {gcode}), the "
                        "channel step's first call: install the app in that team (its RSC File.Read.Group) and "
                        "grant Files.ReadWrite.All",
                    )
                return Line("FAIL", check, self._clean(str(err)))
            except GraphUnavailable as err:
                return Line("FAIL", check, self._clean(f"Graph did not answer as it should: {err}"))
            found = group
            break
        if not found:
            if team:
                source = f"[graph] channel_teams.{code}" if configured else "learnt from Teams"
                return Line(
                    "FAIL",
                    check,
                    f"{channel} is not a channel of team {team} ({source}): check the channel id (the channel's "
                    "'Get link', 19:...@thread.tacv2)" + (f" and [graph] channel_teams.{code}" if configured else ""),
                )
            return Line(
                "FAIL",
                check,
                f"{channel} is in none of the {len(installed)} team(s) the app is installed in: install the app in "
                "the team that holds it, or correct the channel id",
            )
        if found not in installed and not heard:
            return Line(
                "FAIL",
                check,
                f"{channel} is in team {found}, but the app is not installed there (no installation event from it "
                "in the store): install it in that team",
            )
        if code and not team:
            return Line(
                "FAIL",
                check,
                f"{channel} is in team {found}, which the bot has not learnt yet (the channel step needs it): set "
                f'[graph] channel_teams.{code} = "{found}", or mention @reportbot in the channel once',
            )
        return Line("ok", check, f"{channel} is in team {found}, where the app is installed")

    def _channel_from_store(
        self, check: str, channel: str, heard: bool, learnt: str, configured: str, installed: int
    ) -> Line:
        """The verdict on a channel from what Teams told the bot alone (no Graph to ask)."""
        if heard:
            return Line("ok", check, f"{channel}: the bot has had activity from it (the store has its reference)")
        if learnt:
            return Line("ok", check, f"{channel}: Teams told the bot it is in team {learnt}")
        said = f"[graph] channel_teams names team {configured}, but " if configured else ""
        return Line(
            "note",
            check,
            f"{channel}: {said}nothing in the store shows the bot in this channel (the app is installed in "
            f"{installed} team(s)) and Graph cannot be asked: mention @reportbot there once to confirm",
        )

    # -- 6. the store -------------------------------------------------------------------------------
    async def _store(self) -> tuple[Line, ReviewState | None, HistoryStore | None]:
        url = self.config.store.url
        try:
            store = await asyncio.wait_for(HistoryStore.open(url), self.timeout)
        except TimeoutError:
            return Line("FAIL", "store", f"store.url: no answer within {self.timeout:g} s"), None, None
        except StoreError as err:
            return Line("FAIL", "store", self._clean(f"store.url: {err}")), None, None
        try:
            status = await asyncio.wait_for(store.status(), self.timeout)
            if status != "ok":
                await store.close()
                return Line("FAIL", "store", f"store.url: opened, but SELECT 1 failed ({status})"), None, None
            state = await ReviewState.open(store.engine)
            installs = await state.installations(self.tenant)
        except (SQLAlchemyError, OSError, TimeoutError) as err:
            await store.close()
            return Line("FAIL", "store", self._clean(f"store.url: {type(err).__name__}: {err}")), None, None
        where = _safe_url(url)
        return Line("ok", "store", f"{where} answers; {len(installs)} team installation(s) known"), state, store

    # -- messages --------------------------------------------------------------------------------------
    def _entra_refusal(self, message: str, secret_key: str) -> str:
        """What to fix for Entra ID's refusal, by its AADSTS code."""
        code = aadsts(message)
        number = code.split(":")[0]
        app, tenant = self.app_id, self.tenant
        if number in ("AADSTS7000215", "AADSTS7000222"):
            return (
                f"{code} {secret_key} is not a current client secret of app {app}: create one (Entra ID > App "
                f"registrations > {app} > Certificates & secrets) and set {secret_key} to it (as ${{ENV_VAR}})"
            )
        if number == "AADSTS700016":
            return f"{code} app {app} is not registered in tenant {tenant}: check teams.app_id and teams.tenant_id"
        if number in ("AADSTS90002", "AADSTS900023"):
            return f"{code} check teams.tenant_id ({tenant})"
        if number in ("AADSTS700027", "AADSTS700024"):
            return f"{code} the certificate in graph.certificate_path is not one uploaded to app {app}"
        if code == NO_CODE:
            return f"{message.splitlines()[0] if message else 'no reason given'} (check {secret_key})"
        return f"{code} (check teams.app_id, teams.tenant_id and {secret_key})"

    def _unreachable(self, endpoint: str, key: str, err: BaseException) -> str:
        text = str(err)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            hint = "TLS verification failed: is the CA in graph.ca_bundle (Graph) or REQUESTS_CA_BUNDLE (the bot)?"
        else:
            hint = f"{type(err).__name__}"
        host = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}").netloc
        return f"cannot reach the login endpoint {host} ({hint}): check {key} and the network"

    def _clean(self, text: str) -> str:
        """One line, at most 600 characters, with no secret in it."""
        for s in self._secrets:
            text = text.replace(s, "***")
        return " ".join(text.split())[:600]


def _roles(token: str) -> set[str] | None:
    """The ``roles`` claim of an access token. The JWT payload is decoded WITHOUT verifying the
    signature: it is our own token, just minted from Entra ID over TLS, read only to see which
    application permissions it carries (Graph verifies it for real). None: not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    roles = payload.get("roles") or []
    return {str(r) for r in roles} if isinstance(roles, list) else set()


def _graph_error(err: BaseException) -> tuple[int, str]:
    """(HTTP status, Graph error code) of the SDK error behind ``err`` (``translate`` chains it)."""
    cause = err.__cause__
    if not isinstance(cause, APIError):
        return 0, ""
    code = cause.error.code or "" if isinstance(cause, ODataError) and cause.error is not None else ""
    return cause.response_status_code or 0, code


def _safe_url(url: str) -> str:
    """The store URL without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


async def live_check(config: Config, *, seconds_per_check: float = CHECK_TIMEOUT) -> list[Line]:
    """Every ``--live`` line for ``config``; each check is given up after ``seconds_per_check``."""
    return await LiveCheck(config, timeout=seconds_per_check).run()
