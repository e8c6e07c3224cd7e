"""The bot's runtime settings, derived once from ``[teams]`` and the command line.

Refuses the unsafe combinations at start-up (``SettingsError``), before anything listens:

- no app id outside ``--sandbox``: an empty app id turns botbuilder into an unauthenticated
  relay that posts replies to any serviceUrl (research/teams-graph-contract.md §1.5);
- ``--sandbox`` binds 127.0.0.1 only;
- endpoint overrides (OpenID metadata, token issuer, login URL) only with
  ``allow_endpoint_overrides = true`` (tests and private clouds);
- a SingleTenant / UserAssignedMSI app needs its tenant id; a password app needs its password.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from reporting.config import Config

PUBLIC_OPENID_METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"
PUBLIC_TOKEN_ISSUER = "https://api.botframework.com"  # noqa: S105 - an issuer URL, not a secret
LOOPBACK = "127.0.0.1"


class SettingsError(ValueError):
    """The bot cannot start with these settings; the message names the key."""


@dataclass(frozen=True)
class BotSettings:
    app_id: str
    app_password: str
    app_tenant_id: str
    app_type: str
    sandbox: bool
    host: str
    port: int
    public_url: str
    link_secret: bytes
    link_ttl_seconds: float
    max_body_bytes: int
    service_urls: tuple[str, ...]
    approvers: frozenset[str]
    engineers: frozenset[str]
    review_channel: str
    rollup_channel: str
    admins: frozenset[str] = frozenset()
    openid_metadata_url: str = ""
    token_issuer: str = ""
    login_url: str = ""
    version: str = "0"
    metrics_token: str = ""  # $REPORTBOT_METRICS_TOKEN: GET /metrics then needs "Authorization: Bearer <it>"
    #: the customer email carries "View online" / "Download PDF" links (``bot.links.ArtefactLinkSigner``)
    #: only when ``[teams] public_url`` is configured: a loopback default is no address for a customer
    report_links: bool = False
    report_link_ttl_seconds: float = 30 * 86400.0  # [delivery] customer_link_days
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.app_id)

    def may_run(self, aad_object_id: str | None) -> bool:
        """Engineers and approvers may run commands; in the sandbox with nobody configured, anyone."""
        allowed = self.engineers | self.approvers
        if not allowed:
            return self.sandbox
        return bool(aad_object_id) and aad_object_id in allowed

    def may_approve(self, aad_object_id: str | None) -> bool:
        """Configured approvers only; in the sandbox with none configured, anyone (the card says so)."""
        if not self.approvers:
            return self.sandbox
        return bool(aad_object_id) and aad_object_id in self.approvers

    def may_administer(self, aad_object_id: str | None) -> bool:
        """Configured ``[teams] admins`` only; in the sandbox with none configured, anyone."""
        if not self.admins:
            return self.sandbox
        return bool(aad_object_id) and aad_object_id in self.admins

    def trusted_service_url(self, url: str | None) -> bool:
        if not url:
            return False
        return any(url.startswith(prefix) for prefix in self.service_urls)

    @classmethod
    def from_config(
        cls, config: Config, *, sandbox: bool = False, host: str | None = None, port: int = 3978, version: str = "0"
    ) -> BotSettings:
        t = config.teams
        problems: list[str] = []
        password = t.app_password.get_secret_value() if t.app_password else ""
        if not t.app_id and not sandbox:
            problems.append(
                "teams.app_id: not set; the bot refuses to run without authentication "
                "(use `reportbot serve --sandbox` to try it on 127.0.0.1 with the Agents Playground)"
            )
        if t.app_id:
            if t.app_type in ("SingleTenant", "UserAssignedMSI") and not t.tenant_id:
                problems.append(f"teams.tenant_id: required for app_type {t.app_type}")
            if t.app_type != "UserAssignedMSI" and not password:
                problems.append("teams.app_password: required (write it as ${ENV_VAR})")
        if not sandbox and not t.review_channel:
            problems.append(
                "teams.review_channel: not set; every customer's review card is posted there "
                "(the channel id, 19:...@thread.tacv2, from the channel's 'Get link')"
            )
        customer_channels = {c.teams_channel: c.code for c in config.customers if c.teams_channel}
        for key in ("review_channel", "rollup_channel"):
            if getattr(t, key) in customer_channels:
                problems.append(
                    f"teams.{key}: is {customer_channels[getattr(t, key)]}'s teams_channel; internal cards "
                    "never go to a customer's channel"
                )
        overrides = {k: getattr(t, k) for k in ("openid_metadata_url", "token_issuer", "login_url") if getattr(t, k)}
        if overrides and not t.allow_endpoint_overrides:
            problems.append(
                f"teams.{next(iter(overrides))}: endpoint overrides are refused unless "
                "teams.allow_endpoint_overrides = true"
            )
        bind = host or (LOOPBACK if sandbox else "0.0.0.0")  # noqa: S104 - production listens behind the Bot Service
        if sandbox and bind != LOOPBACK:
            problems.append(f"--host: the sandbox listens on {LOOPBACK} only, not {bind}")
        if problems:
            raise SettingsError("\n".join(problems))
        secret = t.link_secret.get_secret_value().encode() if t.link_secret else b""
        if not secret:
            if not sandbox:
                raise SettingsError("teams.link_secret: not set; it signs the draft PDF links (write it as ${ENV_VAR})")
            secret = secrets.token_bytes(32)  # sandbox: links die with the process, which is fine
        public = (t.public_url or f"http://{LOOPBACK}:{port}").rstrip("/")
        service_urls = t.service_urls
        if sandbox and not t.app_id:
            service_urls = (*service_urls, f"http://{LOOPBACK}:", "http://localhost:")  # the Agents Playground
        return cls(
            app_id=t.app_id,
            app_password=password,
            app_tenant_id=t.tenant_id,
            app_type=t.app_type,
            sandbox=sandbox,
            host=bind,
            port=port,
            public_url=public,
            link_secret=secret,
            link_ttl_seconds=t.link_ttl_hours * 3600,
            max_body_bytes=t.max_body_bytes,
            service_urls=service_urls,
            approvers=frozenset(t.approvers),
            engineers=frozenset(t.engineers),
            admins=frozenset(t.admins),
            review_channel=t.review_channel,
            rollup_channel=t.rollup_channel,
            openid_metadata_url=t.openid_metadata_url,
            token_issuer=t.token_issuer,
            login_url=t.login_url,
            version=version,
            metrics_token=os.environ.get("REPORTBOT_METRICS_TOKEN", ""),
            report_links=bool(t.public_url),
            report_link_ttl_seconds=config.delivery.customer_link_days * 86400,
        )
