"""Configuration: TOML validated once at start-up (pydantic); every error names the key and file.

Secrets are written as ``${ENV_VAR}`` references and resolved from the environment at load; the
resolved values are kept as ``SecretStr`` so they never show up in a repr, a log or an error.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from reporting.models import SECTION_NAMES, Branding, PeriodKind
from reporting.overrides import MAX_RECIPIENTS, SettingsInvalid, check_address
from reporting.period import PeriodError, zone

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_KEY = re.compile(r"(password|secret|token|private|api_key|apikey|credential)", re.IGNORECASE)


def is_secret_key(name: str) -> bool:
    """Whether a ``[sources.*]`` key holds a secret (kept as SecretStr, written as ``${VAR}``)."""
    return bool(_SECRET_KEY.search(name))


CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
# C0 and C1 controls (CR, LF, TAB, ESC...), DEL and the bidi overrides: refused in names and
# addresses, which end up in mail headers, file names and card titles
EMAIL_RE = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class ConfigError(ValueError):
    """The configuration cannot be used; ``str()`` is one line per problem, each naming the key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_tz(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zone(value)
    except PeriodError as err:
        raise ValueError(str(err)) from err
    return value


class MspConfig(_Strict):
    name: str
    timezone: str = "UTC"
    logo: str | None = None
    brand_color: str = "#1F4E79"

    _tz = field_validator("timezone")(_check_tz)

    @field_validator("brand_color")
    @classmethod
    def _color(cls, v: str) -> str:
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", v):
            raise ValueError("must be a hex colour like #1F4E79")
        return v


class ScheduleConfig(_Strict):
    """``[schedule]``: when the Monday batch runs (cron in the MSP's timezone), how many
    customers at once, how late a missed run may still start (``misfire_grace_minutes``), how
    long an instance's claim on a customer-week lasts without a heartbeat (``lease_seconds``)
    before another instance may take it over, and when the reminder of drafts still waiting
    for approval is posted (``reminder_cron``; empty: none). ``period_cron`` (default every
    day at 06:00; empty: none) drafts the customers on a fortnight, 30-day or monthly period
    whose period has ended and is not drafted yet: a calendar month ends on any weekday, so its
    report is drafted the morning after, not on the next Monday. It posts no roll-up."""

    cron: str = "0 6 * * mon"
    concurrency: int = Field(default=6, ge=1, le=256)
    misfire_grace_minutes: float = Field(default=180.0, ge=0, le=24 * 60)
    lease_seconds: float = Field(default=300.0, ge=2, le=24 * 3600)
    reminder_cron: str = "30 8 * * mon"
    period_cron: str = "0 6 * * *"

    @field_validator("cron", "reminder_cron", "period_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if not v:
            return v
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except ValueError as err:
            raise ValueError(f"not a cron expression ({err})") from err
        return v


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _asyncpg_query(url: str) -> str:
    """libpq's ``sslmode=`` (what Azure, AWS and most guides write) as asyncpg's ``ssl=``, which
    takes the same values; asyncpg itself would fail on ``sslmode`` with a TypeError at start."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    params = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "sslmode":
            if value not in SSL_MODES:
                raise ValueError(f"sslmode={value!r}: one of {', '.join(SSL_MODES)}")
            key = "ssl"
        params.append((key, value))
    return f"{base}?{urlencode(params)}"


class StoreConfig(_Strict):
    url: str = "sqlite+aiosqlite:///reportbot.db"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        for scheme in ("postgresql://", "postgres://"):
            if v.startswith(scheme):
                v = "postgresql+asyncpg://" + v[len(scheme) :]
        if v.startswith("postgresql+asyncpg://"):
            v = _asyncpg_query(v)
        elif v.startswith("sqlite:///"):
            v = "sqlite+aiosqlite:///" + v[len("sqlite:///") :]
        elif not v.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://")):
            raise ValueError("must be sqlite:///FILE or postgresql://...")
        return v


class Thresholds(_Strict):
    """Flag thresholds; the defaults are the ones the product was specified with."""

    sla_drop_points: float = Field(default=3.0, gt=0)
    uptime_target_pct: float = Field(default=99.5, ge=0, le=100)
    ticket_sla_target_pct: float = Field(default=90.0, ge=0, le=100)
    site_target_pct: float = Field(default=99.5, ge=0, le=100)
    backup_stale_hours: float = Field(default=48.0, gt=0)
    tickets_opened_increase_pct: float = Field(default=25.0, gt=0)
    secure_score_drop_points: float = Field(default=5.0, gt=0)
    open_incident_severities: tuple[str, ...] = ("high", "medium")


class CollectConfig(_Strict):
    timeout_seconds: float = Field(default=60.0, gt=0)


class TeamsConfig(_Strict):
    """``[teams]``: the bot's identity, its channels and who may do what.

    ``approvers``, ``engineers`` and ``admins`` are AAD object ids; approvers may approve, engineers
    (and approvers) may run commands in the review channel or a personal chat, admins may change the
    report settings in Teams (``@reportbot settings``) and send test reports. ``public_url`` is where
    the bot is reachable (signed PDF links point there); ``link_secret`` signs those links.
    ``service_urls``: the Bot Connector URL prefixes an activity's ``serviceUrl`` must start with.
    The endpoint overrides (``openid_metadata_url``, ``token_issuer``, ``login_url``) point the bot
    at other Bot Framework endpoints and are refused unless ``allow_endpoint_overrides`` is true.
    """

    app_id: str = ""
    app_password: SecretStr | None = None
    tenant_id: str = ""
    app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = "SingleTenant"
    review_channel: str = ""
    rollup_channel: str = ""
    approvers: tuple[str, ...] = ()
    engineers: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    public_url: str = ""
    link_secret: SecretStr | None = None
    link_ttl_hours: float = Field(default=72.0, gt=0, le=24 * 31)
    service_urls: tuple[str, ...] = ("https://smba.trafficmanager.net/",)
    openid_metadata_url: str = ""
    token_issuer: str = ""
    login_url: str = ""
    allow_endpoint_overrides: bool = False
    max_body_bytes: int = Field(default=256 * 1024, ge=4096, le=16 * 1024 * 1024)

    @field_validator("admins")
    @classmethod
    def _object_ids(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, item in enumerate(v):
            if not item.strip() or _CONTROL.search(item) or len(item) > 200:
                raise ValueError(f"item {i} is not an AAD object id (one non-empty plain line)")
        return tuple(item.strip() for item in v)


class GraphConfig(_Strict):
    """``[graph]``: delivery through Microsoft Graph as the bot's app (``[teams]`` app id and
    tenant). ``channel_teams`` maps a customer code to the team (AAD group) id that holds its
    ``teams_channel`` (optional: the bot also learns it from Teams' activities); ``auth`` picks the
    credential (the app password, a certificate file, or the host's managed identity).

    ``mail_permissions`` says where the mailbox permissions (Mail.Send, Mail.ReadWrite) are
    granted: ``entra`` (admin consent in Entra ID: they are in the Graph token's ``roles``) or
    ``exchange_rbac`` (RBAC for Applications in Exchange Online, scoped to the mailbox: they are
    not in the token). ``authority`` is the Entra ID authority host the Graph token comes from
    (default ``login.microsoftonline.com``; an ``https`` URL or host, used with
    ``disable_instance_discovery``) and ``ca_bundle`` a PEM file of CAs to trust for it (the async
    azure-identity credentials ignore ``REQUESTS_CA_BUNDLE``); ``authority`` is refused unless
    ``allow_endpoint_overrides`` is true."""

    mailbox: str = ""
    sharepoint_site: str = ""
    sharepoint_library: str = "Documents"
    base_url: str | None = None
    channel_teams: dict[str, str] = Field(default_factory=dict)
    auth: Literal["secret", "certificate", "managed_identity"] = "secret"
    certificate_path: str = ""
    mail_permissions: Literal["entra", "exchange_rbac"] = "entra"
    authority: str = ""
    ca_bundle: str = ""
    allow_endpoint_overrides: bool = False

    @field_validator("authority")
    @classmethod
    def _authority(cls, v: str) -> str:
        if "://" in v and not v.startswith("https://"):
            raise ValueError("must be an https URL or a host name (azure-identity refuses plain http)")
        return v.rstrip("/")


class DeliveryConfig(_Strict):
    """``[delivery]``: which backend does each delivery step. ``email``: ``graph`` (the
    ``[graph]`` mailbox), ``gmail`` (``[gmail]``) or ``outbox`` (files under ``OUT/outbox/``);
    ``archive``: ``sharepoint`` (``[graph]`` site), ``gdrive`` (``[gdrive]``) or ``outbox``. The
    customer-channel step is always Teams. The defaults are the Microsoft path (the sandbox and
    the demo deliver the Microsoft steps to the outbox). ``customer_link_days``: how long the
    email's "View online" and "Download PDF" links work (they are in the email only when
    ``[teams] public_url`` is set, where the bot serves them)."""

    email: Literal["graph", "gmail", "outbox"] = "graph"
    archive: Literal["sharepoint", "gdrive", "outbox"] = "sharepoint"
    customer_link_days: float = Field(default=30.0, gt=0, le=400)

    @property
    def uses_google(self) -> bool:
        return self.email == "gmail" or self.archive == "gdrive"


GOOGLE_ENDPOINT_KEYS = ("token_uri", "base_url", "upload_url")


class _GoogleAccess(_Strict):
    """A Google service account (its JSON key: a file path, or the JSON from ``${ENV}``) and the
    endpoints, which default to Google's and may be overridden only with
    ``allow_endpoint_overrides = true`` (tests, private endpoints)."""

    credentials_file: str = ""
    credentials_json: SecretStr | None = None
    token_uri: str = ""
    base_url: str = ""
    upload_url: str = ""
    ca_bundle: str = ""
    allow_endpoint_overrides: bool = False

    @field_validator(*GOOGLE_ENDPOINT_KEYS)
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")


class GmailConfig(_GoogleAccess):
    """``[gmail]``: the Workspace mailbox (``sender``) the service account impersonates
    (domain-wide delegation: scopes gmail.send and gmail.readonly)."""

    sender: str = ""


class GdriveConfig(_GoogleAccess):
    """``[gdrive]``: the archive root, a folder (``root_folder_id``) or a shared drive
    (``shared_drive_id``); ``subject``: the Workspace user the service account acts as (empty: the
    service account itself, which then must be a member of the shared drive or an editor of the
    folder). Credentials default to ``[gmail]``'s."""

    root_folder_id: str = ""
    shared_drive_id: str = ""
    subject: str = ""


class InternalReportsConfig(_Strict):
    """``[internal_reports]``: who gets the MSP's own weekly service-desk summaries
    (``reporting.internal``) by email: ``owners`` the owner report, ``managers`` the manager
    report (it names technicians). At most 50 plain addresses each; the admins' settings in Teams
    override either list. MSP-internal: an address of a customer (its ``cto_email``, or at its
    ``domain``) is refused (:meth:`Config.customer_of_address`)."""

    owners: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()

    @field_validator("owners", "managers")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from reporting.overrides import MAX_RECIPIENTS, SettingsInvalid, check_address

        out: dict[str, str] = {}
        for i, item in enumerate(v):
            try:
                address = check_address(item.strip(), f"item {i}")
            except SettingsInvalid as err:
                raise ValueError("; ".join(err.problems)) from None
            out.setdefault(address.lower(), address)
        if len(out) > MAX_RECIPIENTS:
            raise ValueError(f"{len(out)} addresses; at most {MAX_RECIPIENTS}")
        return tuple(out.values())


class SourceConfig(BaseModel):
    """``[sources.<name>]``: ``type`` picks the connector (default: the table's name); ``url``
    is the base URL; every other key is passed to the connector. Keys that look like secrets
    (password, secret, token, key...) are held as SecretStr."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str = ""
    url: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    concurrency: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: (SecretStr(v) if isinstance(v, str) and is_secret_key(k) else v) for k, v in data.items()}
        return data

    def option(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)

    def secret(self, key: str) -> str | None:
        value = (self.model_extra or {}).get(key)
        if value is None:
            return None
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


class Contact(_Strict):
    """A named person at the MSP the customer can reach (``account_engineer``): shown in the email
    (and as its Reply-To) and on the PDF's cover."""

    name: str
    email: str

    @field_validator("name", "email")
    @classmethod
    def _plain(cls, v: str) -> str:
        m = _CONTROL.search(v)
        if m:
            raise ValueError(f"contains a control character ({m.group(0)!r}); names and addresses are one plain line")
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not EMAIL_RE.fullmatch(v):
            raise ValueError("is not an email address")
        return v


def _recipient(value: str) -> str:
    """One address of ``recipients.<variant>``: the settings card's strict check
    (:func:`reporting.overrides.check_address`), so the file and Teams accept the same addresses."""
    try:
        return check_address(value, "")
    except SettingsInvalid as err:
        raise ValueError(err.problems[0].removeprefix(": ")) from None


Recipient = Annotated[str, AfterValidator(_recipient)]


class Recipients(_Strict):
    """``[customers.recipients]``: who receives each variant of the customer's report, at most
    :data:`reporting.overrides.MAX_RECIPIENTS` each. ``executive`` empty: the customer's
    ``cto_email`` (To) and ``account_owner_email`` (Cc), as before; ``technical`` empty: no
    technical report is sent. The admins' settings saved in Teams override both."""

    executive: tuple[Recipient, ...] = ()
    technical: tuple[Recipient, ...] = ()

    @field_validator("executive", "technical", mode="before")
    @classmethod
    def _a_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError('must be a list of addresses, e.g. ["it@example.com"]')
        return v

    @field_validator("executive", "technical")
    @classmethod
    def _at_most(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unique = tuple({a.lower(): a for a in reversed(v)}.values())[::-1]  # first spelling of each, in order
        if len(unique) > MAX_RECIPIENTS:
            raise ValueError(f"{len(unique)} addresses; at most {MAX_RECIPIENTS}")
        return unique


class CustomerConfig(_Strict):
    code: str
    name: str
    domain: str = ""
    tenant_id: str = ""
    timezone: str | None = None
    period: PeriodKind = "week"  # week | fortnight | 30d | month (reporting.period)
    cto_email: str = ""
    account_owner_email: str = ""
    account_engineer: Contact | None = None
    recipients: Recipients = Recipients()
    teams_channel: str = ""
    sharepoint_folder: str = ""
    drive_folder: str = ""
    uptime_target_pct: float | None = Field(default=None, ge=0, le=100)
    ticket_sla_target_pct: float | None = Field(default=None, ge=0, le=100)
    ids: dict[str, str] = Field(default_factory=dict)
    sources: dict[str, str] = Field(default_factory=dict)

    _tz = field_validator("timezone")(_check_tz)

    @property
    def owner(self) -> str:
        """Who at the MSP owns this customer, for internal views: the account engineer's name,
        else the account owner's address."""
        return self.account_engineer.name if self.account_engineer is not None else self.account_owner_email

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not CODE_RE.fullmatch(v):
            raise ValueError("must be 1-32 characters of A-Z, 0-9, '_' or '-', starting with a letter or digit")
        return v

    @field_validator(
        "name", "domain", "tenant_id", "cto_email", "account_owner_email", "teams_channel", "sharepoint_folder"
    )
    @classmethod
    def _no_controls(cls, v: str) -> str:
        m = _CONTROL.search(v)
        if m:
            raise ValueError(f"contains a control character ({m.group(0)!r}); names and addresses are one plain line")
        return v

    @field_validator("cto_email", "account_owner_email")
    @classmethod
    def _email(cls, v: str) -> str:
        if v and not EMAIL_RE.fullmatch(v):
            raise ValueError("is not an email address")
        return v

    @field_validator("sources")
    @classmethod
    def _sections(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(SECTION_NAMES))
        if unknown:
            raise ValueError(f"unknown section(s) {', '.join(unknown)}; sections are {', '.join(SECTION_NAMES)}")
        return v


class Config(_Strict):
    msp: MspConfig
    schedule: ScheduleConfig = ScheduleConfig()
    store: StoreConfig = StoreConfig()
    thresholds: Thresholds = Thresholds()
    collect: CollectConfig = CollectConfig()
    teams: TeamsConfig = TeamsConfig()
    graph: GraphConfig = GraphConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    gmail: GmailConfig = GmailConfig()
    gdrive: GdriveConfig = GdriveConfig()
    internal_reports: InternalReportsConfig = InternalReportsConfig()
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    sandbox: dict[str, Any] = Field(default_factory=dict)
    customers: tuple[CustomerConfig, ...] = ()

    @model_validator(mode="after")
    def _cross(self) -> Config:
        problems = []
        seen: set[str] = set()
        for i, c in enumerate(self.customers):
            if c.code in seen:
                problems.append(f"customers[{i}].code: duplicate customer code {c.code!r}")
            seen.add(c.code)
            for section, system in c.sources.items():
                if system not in self.sources:
                    problems.append(f"customers[{i}].sources.{section}: no [sources.{system}] table is configured")
                elif system not in c.ids:
                    problems.append(
                        f"customers[{i}].ids.{system}: {c.code} uses {system} for {section} but has no id there"
                    )
        problems.extend(self._google_problems())
        for key in ("owners", "managers"):
            for i, address in enumerate(getattr(self.internal_reports, key)):
                code = self.customer_of_address(address)
                if code is not None:
                    problems.append(
                        f"internal_reports.{key}[{i}]: {address} is an address of customer {code} — "
                        "the internal reports name technicians and never go to a customer"
                    )
        if self.graph.authority and not self.graph.allow_endpoint_overrides:
            problems.append(
                "graph.authority: endpoint overrides are refused unless graph.allow_endpoint_overrides = true"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _google_problems(self) -> list[str]:
        problems = []
        for name, table in (("gmail", self.gmail), ("gdrive", self.gdrive)):
            for key in GOOGLE_ENDPOINT_KEYS:
                if getattr(table, key) and not table.allow_endpoint_overrides:
                    problems.append(
                        f"{name}.{key}: endpoint overrides are refused unless {name}.allow_endpoint_overrides = true"
                    )
        if self.delivery.email == "gmail":
            if not self.gmail.sender:
                problems.append(
                    'gmail.sender: required with delivery.email = "gmail" (the Workspace mailbox '
                    "that sends the reports)"
                )
            elif not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+", self.gmail.sender):
                problems.append("gmail.sender: is not an email address")
            if not (self.gmail.credentials_file or self.gmail.credentials_json):
                problems.append(
                    'gmail.credentials_file: required with delivery.email = "gmail" (the service '
                    'account\'s JSON key, or gmail.credentials_json = "${ENV_VAR}")'
                )
        if self.delivery.archive == "gdrive":
            d = self.gdrive
            if bool(d.root_folder_id) == bool(d.shared_drive_id):
                problems.append(
                    "gdrive.root_folder_id: give exactly one of gdrive.root_folder_id and "
                    'gdrive.shared_drive_id with delivery.archive = "gdrive"'
                )
            if not (
                d.credentials_file or d.credentials_json or self.gmail.credentials_file or self.gmail.credentials_json
            ):
                problems.append(
                    'gdrive.credentials_file: required with delivery.archive = "gdrive" (or set '
                    "[gmail] credentials, which it then shares)"
                )
        return problems

    # -- helpers
    def customer(self, code: str) -> CustomerConfig:
        for c in self.customers:
            if c.code == code:
                return c
        raise KeyError(code)

    def customer_of_address(self, address: str) -> str | None:
        """The code of the customer ``address`` belongs to — it is a customer's ``cto_email``, or
        it is at a customer's ``domain`` (or a subdomain of it) — else None. What keeps the
        MSP-internal reports from reaching a customer."""
        a = address.strip().lower()
        host = a.rpartition("@")[2]
        for c in self.customers:
            domain = c.domain.strip().lower().lstrip("@")
            if (c.cto_email and a == c.cto_email.lower()) or (
                domain and (host == domain or host.endswith("." + domain))
            ):
                return c.code
        return None

    def customer_timezone(self, c: CustomerConfig) -> str:
        return c.timezone or self.msp.timezone

    def branding(self, base: Path | None = None) -> Branding:
        logo = self.msp.logo
        if logo and base is not None and not Path(logo).is_absolute():
            logo = str(base / logo)
        return Branding(msp_name=self.msp.name, brand_color=self.msp.brand_color, logo_path=logo)


def _expand(value: Any, path: str, env: dict[str, str], problems: list[str]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else k, env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    return value


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts) or "(top level)"


def parse_config(data: dict[str, Any], source: str = "<config>", env: dict[str, str] | None = None) -> Config:
    problems: list[str] = []
    data = _expand(data, "", dict(os.environ) if env is None else env, problems)
    if problems:
        raise ConfigError(source, problems)
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        out = []
        for e in err.errors(include_url=False, include_input=False):
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "missing":
                msg = "required key is missing"
            elif e["type"] == "extra_forbidden":
                msg = "unknown key"
            if not e["loc"]:  # cross-field checks already name their keys
                out.extend(msg.split("; "))
            else:
                out.append(f"{_loc(tuple(e['loc']))}: {msg}")
        raise ConfigError(source, out) from None


class SourceOptions(BaseModel):
    """The keys of one ``[sources.<name>]`` table besides ``type``, ``url``, ``timeout_seconds``
    and ``concurrency``: each connector declares its own as a subclass (secrets as ``SecretStr``),
    so a typo'd key, a wrong type or a missing required key is a config error at load time that
    names the file and the key — not a silently unavailable section on Monday."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url_required: ClassVar[bool] = True  # False: the connector has a default endpoint (Graph, ARM)


def check_sources(config: Config, source_types: Mapping[str, type[SourceOptions]], where: str) -> None:
    """Every ``[sources.<name>]`` against its connector's options model (``type``, else the
    table's name, picks it). Raises one ``ConfigError`` with one line per problem."""
    problems: list[str] = []
    for name, src in config.sources.items():
        kind = src.type or name
        model = source_types.get(kind)
        if model is None:
            close = difflib.get_close_matches(kind, list(source_types), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            key = f"sources.{name}.type" if src.type else f"sources.{name}"
            problems.append(f"{key}: no connector named {kind!r} ({hint}known: {', '.join(sorted(source_types))})")
            continue
        if model.url_required and not src.url:
            problems.append(f"sources.{name}.url: required key is missing (the {kind} API's base URL)")
        try:
            model.model_validate(src.model_extra or {})
        except ValidationError as err:
            for e in err.errors(include_url=False, include_input=False):
                key = f"sources.{name}.{_loc(tuple(e['loc']))}"
                if e["type"] == "extra_forbidden":
                    known = [f for f in model.model_fields if not f.startswith("_")]
                    close = difflib.get_close_matches(str(e["loc"][0]), known, n=1, cutoff=0.6)
                    problems.append(f"{key}: unknown key" + (f" (did you mean {close[0]}?)" if close else ""))
                elif e["type"] == "missing":
                    problems.append(f"{key}: required key is missing")
                else:
                    problems.append(f"{key}: {e['msg'].removeprefix('Value error, ')}")
    if problems:
        raise ConfigError(where, problems)


def load_config(
    path: str | Path, env: dict[str, str] | None = None, source_types: Mapping[str, type[SourceOptions]] | None = None
) -> Config:
    """Read and validate ``path``; with ``source_types`` (the connector registry's options
    models) every source table is validated too."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(p), ["file not found"]) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(p), [f"not valid TOML: {err}"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(p), [f"cannot read: {err}"]) from None
    config = parse_config(raw, str(p), env)
    if source_types is not None:
        check_sources(config, source_types, str(p))
    return config
