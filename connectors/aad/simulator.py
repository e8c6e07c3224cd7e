"""A loopback Microsoft Entra ID token endpoint (client-credentials flow) over TLS, and the TLS
base the Graph and ARM simulators share.

What it does as Entra ID does (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow):

- ``POST /{tenant}/oauth2/v2.0/token`` with a form of ``client_id``, ``scope`` (``<resource>/.default``),
  ``grant_type=client_credentials`` and either ``client_secret`` or a signed ``client_assertion``
  (``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``, PS256 with
  an ``x5t#S256`` header, as azure-identity's CertificateCredential sends it);
- success: ``{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":<JWT>}``,
  the JWT signed RS256 with claims ``aud, iss, iat, nbf, exp, appid, appidacr, idp, oid, roles,
  sub, tid, ver`` — the resource simulators verify it with :meth:`EntraSimulator.verify`;
- failures with Entra's error body ``{"error", "error_description": "AADSTSnnnn: ...",
  "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}``: a wrong secret is
  HTTP 401 ``invalid_client`` AADSTS7000215; an unknown tenant 400 AADSTS90002; an app that is
  not consented in the tenant 400 ``unauthorized_client`` AADSTS700016; a scope without
  ``/.default`` 400 ``invalid_scope`` AADSTS1002012; an unknown resource 400 AADSTS500011.

The server certificate comes from a :class:`~connectors.aad.pki.ThrowawayPKI`, because
azure-identity accepts only ``https`` authorities.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.aad.pki import ThrowawayPKI
from connectors.sim.base import Simulator

GRAPH_RESOURCE = "https://graph.microsoft.com"
ARM_RESOURCE = "https://management.azure.com"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenInvalid(Exception):
    """An access token the resource must refuse; ``str()`` is the resource's message."""


class TlsSimulator(Simulator):
    """A :class:`Simulator` served over HTTPS with a throwaway CA (its own, or a shared one)."""

    def __init__(self, pki: ThrowawayPKI | None = None) -> None:
        super().__init__()
        self._own_pki = pki is None
        self.pki = pki or ThrowawayPKI()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.pki.server_context())
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]  # aiohttp's private _server: set once started
        self.url = f"https://{host}:{sock.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        await super().stop()
        if self._own_pki:
            self.pki.cleanup()


class EntraSimulator(TlsSimulator):
    """The token endpoint of every tenant in ``tenants`` (tenant id -> display name)."""

    system: ClassVar[str] = "entra"

    def __init__(
        self,
        pki: ThrowawayPKI,
        client_id: str,
        client_secret: str,
        tenants: Mapping[str, str],
        roles: Mapping[str, Iterable[str]] | None = None,
        certificates: Iterable[x509.Certificate] = (),
        latency_ms: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(pki)
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenants = dict(tenants)
        self.consented = set(self.tenants)  # tenants where the app has a service principal
        self.roles = {k: list(v) for k, v in (roles or {}).items()}  # resource -> app roles granted
        self.certificates = {b64url(c.fingerprint(hashes.SHA256())): c for c in certificates}
        self._latency_ms = latency_ms
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = b64url(
            hashlib.sha256(
                self._signing_key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).digest()[:16]
        )
        self.issued: Counter[tuple[str, str]] = Counter()  # (tenant, resource) -> tokens issued
        self.sp_oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client_id}"))

    # -- resource side: what Graph / ARM do with a bearer token
    def verify(self, token: str, audiences: Iterable[str]) -> dict[str, Any]:
        """The claims of a token this endpoint issued, or TokenInvalid with the resource's words."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenInvalid("IDX14100: JWT is not well formed, there are no dots (.).")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except ValueError:
            raise TokenInvalid("IDX14100: JWT is not well formed.") from None
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise TokenInvalid("Access token validation failure: signature key not found.")
        try:
            self._signing_key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise TokenInvalid("Access token validation failure: invalid signature.") from None
        if float(claims.get("exp", 0)) < time.time():
            raise TokenInvalid("Lifetime validation failed, the token is expired.")
        if claims.get("aud") not in set(audiences):
            raise TokenInvalid("Access token validation failure. Invalid audience.")
        return dict(claims)

    # -- the token endpoint
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)

    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        code = {429: "temporarily_unavailable", 503: "temporarily_unavailable"}.get(status, "server_error")
        return self._error(code, 50000 if status >= 500 else 50196, message), "application/json"

    def _error(self, error: str, code: int, description: str) -> dict[str, Any]:
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        }

    def _fail(self, status: int, error: str, code: int, description: str) -> web.Response:
        return self.json(self._error(error, code, description), status=status)

    async def _openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant not in self.tenants:
            return self._fail(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{self.url}/{tenant}"
        return self.json(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "issuer": f"{self.url}/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        if self._latency_ms is not None and self._latency_ms() > 0:
            await asyncio.sleep(self._latency_ms() / 1000.0)
        tenant = request.match_info["tenant"]
        form = await request.post()

        def get(key: str) -> str:
            return str(form.get(key, ""))

        if get("grant_type") != "client_credentials":
            return self._fail(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if tenant not in self.tenants:
            return self._fail(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud.",
            )
        client_id = get("client_id")
        if client_id != self.client_id or tenant not in self.consented:
            return self._fail(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This "
                "can happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant.",
            )
        scope = get("scope")
        if not scope.endswith("/.default") or " " in scope.strip():
            return self._fail(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scope[: -len("/.default")]
        if resource not in self.roles:
            return self._fail(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant}.",
            )
        if "client_assertion" in form:
            problem = self._check_assertion(get("client_assertion"), get("client_assertion_type"), str(request.url))
            if problem:
                return self._fail(401, "invalid_client", problem[0], problem[1])
            acr = "2"
        elif get("client_secret") == self.client_secret:
            acr = "1"
        else:
            return self._fail(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{self.client_id}'.",
            )
        self.issued[(tenant, resource)] += 1
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + 3599,
            "appid": client_id,
            "appidacr": acr,
            "idp": f"https://sts.windows.net/{tenant}/",
            "oid": self.sp_oid,
            "roles": self.roles[resource],
            "sub": self.sp_oid,
            "tid": tenant,
            "ver": "1.0",
        }
        return self.json(
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": self._sign(claims)}
        )

    def _sign(self, claims: dict[str, Any]) -> str:
        head = b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": self.kid}).encode())
        body = b64url(json.dumps(claims).encode())
        sig = self._signing_key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64url(sig)}"

    def _check_assertion(self, assertion: str, kind: str, token_url: str) -> tuple[int, str] | None:
        if kind != JWT_BEARER:
            return 700023, "Invalid client assertion type."
        try:
            head_b64, body_b64, sig_b64 = assertion.split(".")
            header = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(body_b64))
            signature = b64url_decode(sig_b64)
        except ValueError:
            return 50027, "JWT token is invalid or malformed."
        cert = self.certificates.get(str(header.get("x5t#S256", "")).rstrip("="))
        if cert is None:
            return (
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on application.",
            )
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            key.verify(
                signature,
                f"{head_b64}.{body_b64}".encode(),
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return 700027, "Client assertion failed signature validation."
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return 700021, "Client assertion application identifier doesn't match 'client_id' parameter."
        if float(claims.get("exp", 0)) < time.time():
            return 700024, "Client assertion is not within its valid time range."
        if str(claims.get("aud", "")).rstrip("/") != token_url.split("?")[0].rstrip("/"):
            return 700212, "No matching federated identity record found for presented assertion audience."
        return None
