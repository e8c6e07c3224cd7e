"""A loopback Microsoft Entra ID token service for the bot's outbound credentials (MSAL).

MSAL only talks to an ``https`` authority, so this serves TLS on 127.0.0.1 with a self-signed
certificate made for the test (``ca_file``: point ``REQUESTS_CA_BUNDLE`` at it). It answers what
MSAL asks for a confidential client with a client secret, as Entra ID documents it:

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` — the tenant discovery document;
- ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` and ``scope`` (``<resource>/.default``) — ``{"token_type": "Bearer",
  "expires_in", "ext_expires_in", "access_token"}``, or Entra's error body
  (``{"error": "invalid_client", "error_description": "AADSTS7000215: ...", "error_codes": [...]}``).

Access tokens are opaque strings, except for a scope listed in ``roles``: its tokens are JWTs
whose payload carries ``aud``, ``iss``, ``tid``, ``appid`` and ``roles`` (the application
permissions consented to the app), as Entra ID's app-only tokens do. They are not signed (the
signature part is a placeholder): the client only reads its own token's claims, and the loopback
API it goes to accepts exactly the strings listed in ``issued``.

Runs in a thread (MSAL's ``requests`` calls are synchronous); ``requests`` lists every
``(method, path)``, so a test counts token and discovery requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 (and ``localhost``) and its key, as PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "entra-cert.pem", folder / "entra-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class FakeEntra:
    """Entra ID for one tenant and one app registration (``client_id`` + ``client_secret``)."""

    def __init__(
        self,
        tenant: str,
        client_id: str,
        client_secret: str,
        *,
        expires_in: int = 3599,
        roles: dict[str, list[str]] | None = None,
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.roles = dict(roles or {})  # scope -> the app roles its tokens carry (JWT tokens)
        self.requests: list[tuple[str, str]] = []
        self.issued: list[str] = []  # access tokens handed out, in order
        self.scopes: list[str] = []  # the scope of each token request
        self._folder = tempfile.TemporaryDirectory(prefix="fake-entra-")
        self.ca_file, self._key_file = _self_signed(Path(self._folder.name))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # what tests look at ------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "FakeEntra not started"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def authority(self) -> str:
        """What goes into ``[teams] login_url``: the authority including the tenant."""
        return f"{self.url}/{self.tenant}"

    @property
    def token_requests(self) -> int:
        return sum(1 for m, p in self.requests if m == "POST" and p.endswith("/oauth2/v2.0/token"))

    @property
    def discovery_requests(self) -> int:
        return sum(1 for _, p in self.requests if "/.well-known/openid-configuration" in p)

    # documents -----------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        base = self.authority
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{self.url}/{self.tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "client_credentials":
            return 400, _error("unsupported_grant_type", "AADSTS70003", 70003)
        if form.get("client_id") != self.client_id:
            return 400, _error(
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory.",
                700016,
            )
        if form.get("client_secret") != self.client_secret:
            return 401, _error("invalid_client", "AADSTS7000215: Invalid client secret provided.", 7000215)
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return 400, _error("invalid_scope", "AADSTS1002012: The provided value for scope is not valid.", 1002012)
        with self._lock:
            access = self._jwt(scope) if scope in self.roles else f"entra-{uuid.uuid4().hex}"
            self.issued.append(access)
            self.scopes.append(scope)
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": access,
        }

    def _jwt(self, scope: str) -> str:
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {
            "aud": scope.removesuffix("/.default"),
            "iss": f"https://sts.windows.net/{self.tenant}/",
            "tid": self.tenant,
            "appid": self.client_id,
            "roles": list(self.roles[scope]),
            "iat": now,
            "nbf": now,
            "exp": now + self.expires_in,
            "uti": uuid.uuid4().hex,
        }
        header = {"typ": "JWT", "alg": "RS256", "kid": "fake-entra"}
        return ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims)) + ".unsigned"

    # lifecycle -------------------------------------------------------------------
    def start(self) -> FakeEntra:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read ``requests`` instead of stderr."""

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                fake.requests.append(("GET", self.path))
                if self.path.split("?")[0] == f"/{fake.tenant}/v2.0/.well-known/openid-configuration":
                    self._answer(200, fake.discovery())
                else:
                    self._answer(404, _error("invalid_tenant", f"AADSTS90002: {self.path} not found", 90002))

            def do_POST(self) -> None:  # noqa: N802
                fake.requests.append(("POST", self.path))
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if self.path != f"/{fake.tenant}/oauth2/v2.0/token":
                    self._answer(404, _error("invalid_request", f"AADSTS900561: {self.path}", 900561))
                    return
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                self._answer(*fake.token(form))

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self._key_file)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-entra", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._folder.cleanup()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _error(error: str, description: str, code: int) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
