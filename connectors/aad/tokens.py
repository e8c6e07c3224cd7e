"""App-only tokens for many customer tenants through azure-identity (client-credentials flow).

One ``[sources.<name>]`` holds ONE multi-tenant app registration (``client_id`` plus a
``client_secret`` or a ``certificate_path``); each customer tenant that consented to it gets its
own credential object — ``azure.identity.aio.ClientSecretCredential`` (or
``CertificateCredential``) for ``https://<authority>/<tenant>`` — created once and reused for
every customer, week and section of the batch, so azure-identity's in-memory token cache serves
every call after the first (it refreshes a token itself shortly before it expires). A per-tenant
lock makes concurrent sections of one tenant wait for that first token instead of each asking.

Config keys read here (all in ``[sources.<name>]``):
``client_id``, ``client_secret`` (a ``${ENV}`` reference) or ``certificate_path`` (PEM with key
and certificate; ``certificate_password`` if it is encrypted), ``authority`` (default
``login.microsoftonline.com``; an ``https`` URL or host — azure-identity refuses plain http),
``ca_bundle`` (a PEM file of CAs to trust for a private endpoint: azure-identity's
``connection_verify``; it ignores ``REQUESTS_CA_BUNDLE``), ``token_timeout_seconds`` (default:
``request_timeout_seconds``, at least 5 s; a token request, retries included, takes at most
twice that).

azure-identity's errors are translated once, here: a refused credential
(``ClientAuthenticationError``, e.g. AADSTS7000215) becomes :class:`SourceAuthError` naming the
tenant and the AADSTS code — never the secret, never Entra's trace ids; an unknown tenant
(AADSTS90002) is a :class:`SourceDataError` naming the customer's id; an unreachable or failing
endpoint — or one that answers without an AADSTS code (an HTML page from a proxy or gateway) —
is :class:`SourceUnavailable`.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.identity.aio import CertificateCredential, ClientSecretCredential

from connectors.http import require_credential
from reporting.config import SourceConfig
from reporting.sources import SourceAuthError, SourceDataError, SourceUnavailable

PUBLIC_AUTHORITY = "login.microsoftonline.com"
MIN_TOKEN_TIMEOUT = 5.0  # seconds
_AADSTS = re.compile(r"(AADSTS\d+):\s*(.*?\.)(?=\s|'|$)")
NO_CODE = "no AADSTS code in the answer"
_TENANT = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


def aadsts(message: str) -> str:
    """``AADSTS7000215: Invalid client secret provided.`` from azure-identity's message."""
    m = _AADSTS.search(message)
    return f"{m.group(1)}: {m.group(2).strip()}" if m else NO_CODE


class TenantTokens:
    """Bearer tokens per (tenant, scope) for one configured source."""

    def __init__(self, system: str, name: str, source: SourceConfig):
        self.system, self.name = system, name
        self.client_id = require_credential(system, name, source, "client_id", "the app registration's application id")
        self._secret = source.secret("client_secret")
        self._cert_path = source.option("certificate_path")
        self._cert_password = source.secret("certificate_password")
        if bool(self._secret) == bool(self._cert_path):
            raise SourceAuthError(
                system,
                f"set exactly one of sources.{name}.client_secret (as ${{ENV}}) or sources.{name}.certificate_path",
            )
        authority = str(source.option("authority") or PUBLIC_AUTHORITY).rstrip("/")
        if "://" in authority and not authority.startswith("https://"):
            raise SourceDataError(
                system,
                f"sources.{name}.authority must be an https URL (azure-identity refuses {authority.split(':')[0]})",
            )
        self.authority = authority
        self.ca_bundle = source.option("ca_bundle")
        # a token request happens once per tenant and the identity platform may be slower than the
        # API: it waits token_timeout_seconds, by default the request timeout but at least 5 s
        default = max(float(source.option("request_timeout_seconds", 15.0)), MIN_TOKEN_TIMEOUT)
        self.timeout = float(source.option("token_timeout_seconds", default))
        self._creds: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._secret, self._cert_password) if s)

    def _credential(self, tenant: str) -> Any:
        if self._closed:
            raise SourceUnavailable(self.system, "the connector was closed while a request was still running")
        cred = self._creds.get(tenant)
        if cred is None:
            kw: dict[str, Any] = {
                "authority": self.authority,
                "disable_instance_discovery": True,
                "connection_verify": self.ca_bundle or True,
                "connection_timeout": self.timeout,
                "read_timeout": self.timeout,
                "retry_total": 2,
                "retry_backoff_factor": 0.25,
            }
            if self._secret:
                cred = ClientSecretCredential(tenant, self.client_id, self._secret, **kw)
            else:
                cred = CertificateCredential(
                    tenant, self.client_id, self._cert_path, password=self._cert_password, **kw
                )
            self._creds[tenant] = cred
        return cred

    async def token(self, tenant: str, scope: str) -> str:
        """A bearer token for ``scope`` (e.g. ``https://graph.microsoft.com/.default``) in ``tenant``."""
        if not _TENANT.match(tenant):
            raise SourceDataError(self.system, f"{tenant!r} is not a tenant id (a GUID or a verified domain)")
        lock = self._locks.setdefault(tenant, asyncio.Lock())
        async with lock:
            cred = self._credential(tenant)
            try:
                tok = await asyncio.wait_for(cred.get_token(scope), timeout=self.timeout * 2)
            except ClientAuthenticationError as err:
                raise self._refused(tenant, err) from None
            except (TimeoutError, ServiceResponseError) as err:
                raise SourceUnavailable(
                    self.system,
                    f"no answer from the token endpoint {self.authority} within {self.timeout:g} s "
                    f"for tenant {tenant} ({type(err).__name__})",
                ) from None
            except ServiceRequestError as err:
                cause = (
                    f"TLS verification failed (is sources.{self.name}.ca_bundle right?)"
                    if "CERTIFICATE_VERIFY_FAILED" in str(err)
                    else "cannot connect"
                )
                raise SourceUnavailable(
                    self.system, f"token endpoint {self.authority}: {cause} for tenant {tenant}"
                ) from None
            except AzureError as err:
                raise SourceUnavailable(
                    self.system, f"token endpoint {self.authority} failed for tenant {tenant} ({type(err).__name__})"
                ) from None
            except ValueError as err:  # azure-identity's own argument checks (authority, tenant, certificate)
                raise SourceDataError(
                    self.system, f"cannot ask for a token for tenant {tenant}: {self._redact(str(err))}"
                ) from None
        return str(tok.token)

    def _refused(self, tenant: str, err: ClientAuthenticationError) -> Exception:
        message = self._redact(str(getattr(err, "message", "") or err))
        code = aadsts(message)
        status = getattr(getattr(err, "response", None), "status_code", None)
        if code.startswith("AADSTS90002"):
            return SourceDataError(
                self.system,
                f"Microsoft Entra ID does not know tenant {tenant} ({code}); "
                f"check the customer's id (customers.ids.{self.name} / tenant_id)",
            )
        if code.startswith(("AADSTS500011", "AADSTS1002012", "AADSTS70011")):
            return SourceDataError(
                self.system,
                f"Microsoft Entra ID refused the scope for tenant {tenant} ({code}); "
                f"check sources.{self.name}.resource",
            )
        if code.startswith("AADSTS700016"):
            return SourceAuthError(
                self.system,
                f"the credentials were refused for tenant {tenant}: app {self.client_id} is not consented there "
                f"({code.split(':')[0]}); an admin of that tenant must grant consent",
            )
        if status is not None and status >= 500:
            return SourceUnavailable(self.system, f"the token endpoint failed for tenant {tenant}: HTTP {status}")
        if code == NO_CODE:
            # Entra refuses credentials with an AADSTS code; an answer without one (an HTML page
            # from a proxy or gateway, an empty body) says nothing about the credentials
            what = "an HTML page" if "<html" in message.lower() or "<!doctype" in message.lower() else "no Entra error"
            return SourceUnavailable(
                self.system,
                f"the token endpoint {self.authority} answered{f' HTTP {status}' if status else ''} with {what} "
                f"for tenant {tenant}, not Microsoft Entra ID's JSON (a proxy or gateway in between?)",
            )
        return SourceAuthError(
            self.system,
            f"the credentials were refused by Microsoft Entra ID for tenant {tenant}: {code} "
            f"(check sources.{self.name}.client_id and its secret or certificate)",
        )

    def _redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    async def aclose(self) -> None:
        self._closed = True
        creds, self._creds = list(self._creds.values()), {}
        for cred in creds:
            await cred.close()
