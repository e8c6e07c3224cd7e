"""Loopback Google for the Gmail and Drive delivery tests: the OAuth 2.0 token endpoint, the
Gmail API and the Drive v3 API, speaking Google's wire format, over one aiohttp server.

What it is strict about, because Google is:

- **Token endpoint** (``POST /token``, form-encoded): ``grant_type`` must be
  ``urn:ietf:params:oauth:grant-type:jwt-bearer``; the ``assertion`` is an RS256 JWT whose
  signature is verified with the service account's *public* key (the one :attr:`key` made), its
  ``kid`` the key id, ``iss`` the service account, ``aud`` Google's token URI, ``exp - iat`` at
  most an hour. With ``sub`` (domain-wide delegation) the user must exist and every requested
  scope must be granted to the service account's client id (:meth:`grant`), else 401
  ``unauthorized_client``; an unknown key is 400 ``invalid_grant: Invalid JWT Signature.``.
  Tokens last 3599 s; each one carries its principal and scopes.
- **API calls** need ``Authorization: Bearer <token>``: unknown or expired is 401
  ``authError``; a token without a scope the method accepts is 403 ``insufficientPermissions``.
  Errors have Google's body: ``{"error": {"code", "message", "errors": [{"message", "domain",
  "reason"}], "status"}}``.
- **Gmail**: ``users/me/messages/send`` (JSON ``{"raw": base64url}``), the resumable
  ``/upload/gmail/v1/users/me/messages/send?uploadType=resumable`` (``message/rfc822``),
  ``users/me/messages?q=rfc822msgid:<id>`` (the only ``q`` it understands; the
  ``gmail.metadata`` scope may not use ``q``, as on Gmail), ``users/me/profile``.
- **Drive v3**: ``files.list`` with ``q`` parsed clause by clause (``'<id>' in parents``,
  ``name = '...'``, ``mimeType = '...'``, ``trashed = false``, ``appProperties has { key='...'
  and value='...' }``; anything else is 400 ``invalid`` and recorded as unexpected), paged by
  ``nextPageToken`` (:attr:`page_size_cap`), shared drives only with ``supportsAllDrives`` /
  ``includeItemsFromAllDrives`` and ``corpora=drive&driveId=``; ``files.get``, ``drives.get``,
  ``files.create`` (metadata, ``uploadType=multipart`` ``multipart/related``, and
  ``uploadType=resumable``), ``files.update`` (metadata PATCH, ``uploadType=media``, resumable).
  Only the fields asked for in ``fields`` are returned (default: ``kind,id,name,mimeType``).
  Access is per principal (:meth:`share`): no access is 404 ``notFound``, read-only access to a
  folder one writes into is 403 ``insufficientFilePermissions``.
- **Resumable sessions** (both APIs): the session URI comes back in ``Location``; chunks are
  ``PUT`` with ``Content-Range``; every chunk but the last is a multiple of 256 KiB and must start
  at the next expected byte; an unfinished session answers ``308`` with ``Range: bytes=0-N`` (no
  ``Range`` before the first byte); ``Content-Range: bytes */N`` asks for the status.

Every request is recorded (:attr:`FakeGoogle.requests`); a request the fake does not implement is
answered 501 and listed in :attr:`FakeGoogle.unexpected` (tests assert it stays empty).
:meth:`fail` injects faults, before or *after* the request took effect (``after=True``: a send
accepted, then a 503), and :meth:`cut_chunk` keeps part of one chunk and answers 503, as a
connection lost mid-chunk does.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - the audience every assertion must name
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FOLDER = "application/vnd.google-apps.folder"
CHUNK_UNIT = 256 * 1024
DEFAULT_FIELDS = ("kind", "id", "name", "mimeType")  # what Drive v3 returns without fields=
SCOPE_GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
SCOPE_GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
SCOPE_GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
SCOPE_DRIVE = "https://www.googleapis.com/auth/drive"
_FULL_MAIL = {"https://mail.google.com/", "https://www.googleapis.com/auth/gmail.modify"}
SEND_SCOPES = {SCOPE_GMAIL_SEND, "https://www.googleapis.com/auth/gmail.compose"} | _FULL_MAIL
READ_SCOPES = {SCOPE_GMAIL_READONLY, SCOPE_GMAIL_METADATA} | _FULL_MAIL
PROFILE_SCOPES = READ_SCOPES | {"https://www.googleapis.com/auth/gmail.compose"}
DRIVE_SCOPES = {SCOPE_DRIVE, "https://www.googleapis.com/auth/drive.file"}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON / form, or the number of bytes
    principal: str | None = None

    def __repr__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.method} {self.path}{'?' + q if q else ''}"


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    after: bool
    reason: str
    message: str
    domain: str
    skip: int = 0  # let this many matching requests through first


@dataclass
class Token:
    principal: str
    scopes: frozenset[str]
    expires: float


@dataclass
class DFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    drive_id: str | None
    app_properties: dict[str, str] = field(default_factory=dict)
    revisions: list[bytes] = field(default_factory=list)
    trashed: bool = False
    created: int = 0

    @property
    def content(self) -> bytes:
        return self.revisions[-1] if self.revisions else b""

    def resource(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": list(self.parents),
            "trashed": self.trashed,
            "appProperties": dict(self.app_properties),
            "createdTime": f"2026-11-16T00:00:{self.created % 60:02d}.000Z",
            "webViewLink": (
                f"https://drive.google.com/drive/folders/{self.id}"
                if self.mime_type == FOLDER
                else f"https://drive.google.com/file/d/{self.id}/view?usp=drivesdk"
            ),
        }
        if self.drive_id:
            out["driveId"] = self.drive_id
        if self.mime_type != FOLDER:
            out.update(
                size=str(len(self.content)),
                md5Checksum=hashlib.md5(self.content).hexdigest(),  # noqa: S324
                version=str(len(self.revisions)),
                headRevisionId=f"rev{len(self.revisions)}",
            )
        return out


@dataclass
class Upload:
    kind: str  # "gmail" | "drive-create" | "drive-update"
    principal: str
    total: int
    content_type: str
    meta: dict[str, Any]
    query: dict[str, str]
    data: bytearray = field(default_factory=bytearray)
    result: dict[str, Any] | None = None


class GoogleError(Exception):
    def __init__(
        self, status: int, reason: str, message: str, domain: str = "global", headers: dict[str, str] | None = None
    ):
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message, self.domain = status, reason, message, domain
        self.headers = headers or {}


def google_error(status: int, reason: str, message: str, domain: str = "global") -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


_CLAUSES = [
    (re.compile(r"^'((?:[^'\\]|\\.)*)' in parents$"), "parent"),
    (re.compile(r"^name = '((?:[^'\\]|\\.)*)'$"), "name"),
    (re.compile(r"^mimeType = '((?:[^'\\]|\\.)*)'$"), "mime"),
    (re.compile(r"^mimeType != '((?:[^'\\]|\\.)*)'$"), "not_mime"),
    (re.compile(r"^trashed = (true|false)$"), "trashed"),
    (re.compile(r"^appProperties has \{ key='((?:[^'\\]|\\.)*)' and value='((?:[^'\\]|\\.)*)' \}$"), "app"),
]


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def parse_drive_query(q: str) -> list[tuple[str, tuple[str, ...]]]:
    """``q`` as ``[(kind, groups)]``; ValueError for anything this fake (and the backend) does not use."""
    parts = re.split(r" and (?![^{]*\})", q.strip())
    out = []
    for part in parts:
        for pattern, kind in _CLAUSES:
            m = pattern.match(part.strip())
            if m:
                out.append((kind, tuple(_unescape(g) for g in m.groups())))
                break
        else:
            raise ValueError(f"Invalid Value: {part!r}")
    return out


def _fields(spec: str | None, resource: dict[str, Any], default: tuple[str, ...]) -> dict[str, Any]:
    wanted = [f.strip() for f in spec.split(",")] if spec else list(default)
    if "*" in wanted:
        return resource
    return {k: resource[k] for k in wanted if k in resource}


class FakeGoogle:
    """``await FakeGoogle().start()``; :meth:`service_account_info` is the key file's JSON."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = "1f0e2d3c4b5a69788796a5b4c3d2e1f001234567"
        self.client_email = "reportbot@northwind-reports.iam.gserviceaccount.com"
        self.client_id = "104857600000000000001"
        self.grants: dict[str, set[str]] = {}  # client id -> scopes granted (Admin console, domain-wide delegation)
        self.users: set[str] = set()
        self.tokens: dict[str, Token] = {}
        self.token_requests: list[dict[str, Any]] = []  # decoded assertion claims, one per token request
        self.requests: list[Request] = []
        self.unexpected: list[str] = []
        self.faults: list[Fault] = []
        self.cuts: list[tuple[int, int]] = []  # (chunk number across all sessions, bytes kept)
        self.mailboxes: dict[str, dict[str, dict[str, Any]]] = {}
        self.files: dict[str, DFile] = {}
        self.shared_drives: dict[str, str] = {}  # id -> name
        self.access: dict[str, dict[str, str]] = {}  # principal -> {folder or drive id: "reader" | "writer"}
        self.uploads: dict[str, Upload] = {}
        self.page_size_cap = 100
        self.now = time.time  # token expiry clock (tests may replace it)
        self._ids = itertools.count(1)
        self._chunks = 0
        self._server: TestServer | None = None
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> FakeGoogle:
        self._server = TestServer(self.app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    @property
    def origin(self) -> str:
        assert self._server is not None, "FakeGoogle not started"
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.origin}/token"

    # -- set-up ---------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):05d}"

    def service_account_info(self, *, key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
        pem = (
            (key or self.key)
            .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            .decode()
        )
        return {
            "type": "service_account",
            "project_id": "northwind-reports",
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri if self._server is not None else GOOGLE_TOKEN_URI,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    def add_user(self, address: str) -> None:
        self.users.add(address.lower())
        self.mailboxes.setdefault(address.lower(), {})

    def grant(self, *scopes: str, client_id: str | None = None) -> None:
        """Domain-wide delegation: the Admin console's client id + scopes entry."""
        self.grants.setdefault(client_id or self.client_id, set()).update(scopes)

    def add_folder(self, name: str, parent: str | None = None, drive_id: str | None = None) -> str:
        f = DFile(self._id("fold"), name, FOLDER, [parent] if parent else [], drive_id, created=next(self._ids))
        self.files[f.id] = f
        return f.id

    def add_shared_drive(self, name: str) -> str:
        drive_id = self._id("0AD")
        self.shared_drives[drive_id] = name
        return drive_id

    def share(self, principal: str, item_id: str, role: str = "writer") -> None:
        self.access.setdefault(principal.lower(), {})[item_id] = role

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        after: bool = False,
        reason: str = "backendError",
        message: str = "Backend Error",
        domain: str = "global",
        skip: int = 0,
    ) -> None:
        self.faults.append(Fault(method.upper(), re.compile(path), status, times, after, reason, message, domain, skip))

    def cut_chunk(self, number: int, keep: int) -> None:
        """The ``number``-th chunk PUT (1-based, counted across sessions) keeps its first ``keep``
        bytes and is answered 503: the client must ask where the session is and go on from there."""
        self.cuts.append((number, keep))

    # -- inspection -----------------------------------------------------------------------------
    def sent(self, user: str) -> list[dict[str, Any]]:
        return list(self.mailboxes.get(user.lower(), {}).values())

    def parsed(self, user: str) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m["raw"], policy=email.policy.default) for m in self.sent(user)]  # type: ignore[misc]

    def path_of(self, f: DFile) -> str:
        parts, cur = [], f
        while True:
            parts.append(cur.name)
            if not cur.parents or cur.parents[0] not in self.files:
                root = cur.parents[0] if cur.parents else ""
                return "/".join([p for p in (self.shared_drives.get(root, root), *reversed(parts)) if p])
            cur = self.files[cur.parents[0]]

    def stored(self) -> dict[str, DFile]:
        """Every file that is not a folder, by its path from its root (a folder id or shared drive name)."""
        return {self.path_of(f): f for f in self.files.values() if f.mime_type != FOLDER and not f.trashed}

    def calls(self) -> list[str]:
        return [repr(r) for r in self.requests]

    # -- dispatch -------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        query = dict(request.query)
        path = request.path
        ctype = request.headers.get("Content-Type", "")
        body: Any = len(raw) if raw else None
        if raw and ctype.startswith("application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                return self._error(GoogleError(400, "parseError", "Parse Error"))
        elif raw and ctype.startswith("application/x-www-form-urlencoded"):
            body = dict(parse_qsl(raw.decode()))
        rec = Request(request.method, path, query, {k.lower(): v for k, v in request.headers.items()}, body)
        self.requests.append(rec)
        try:
            if path == "/token" and request.method == "POST":
                return self._token(body if isinstance(body, dict) else {})
            fault = self._fault(request.method, path)
            if fault is not None and not fault.after:
                raise GoogleError(fault.status, fault.reason, fault.message, fault.domain)
            if "upload_id" in query and request.method == "PUT":
                resp = self._chunk(query["upload_id"], raw, request.headers)
            else:
                rec.principal, scopes = self._auth(request.headers.get("Authorization", ""))
                resp = self._route(request.method, path, query, body, raw, request.headers, rec.principal, scopes)
            if fault is not None:  # after: it took effect, and the answer is lost
                raise GoogleError(fault.status, fault.reason, fault.message, fault.domain)
            return resp
        except GoogleError as err:
            return self._error(err)

    def _error(self, err: GoogleError) -> web.Response:
        return web.json_response(
            google_error(err.status, err.reason, err.message, err.domain), status=err.status, headers=err.headers
        )

    def _fault(self, method: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.times > 0 and f.method == method and f.path.search(path):
                if f.skip > 0:
                    f.skip -= 1
                    continue
                f.times -= 1
                return f
        return None

    def _unexpected(self, method: str, path: str, why: str = "not implemented") -> web.Response:
        self.unexpected.append(f"{method} {path}: {why}")
        return web.json_response(google_error(501, "notImplemented", f"fake Google: {why}"), status=501)

    # -- OAuth ----------------------------------------------------------------------------------
    def _token(self, form: dict[str, str]) -> web.Response:
        def oauth_error(status: int, error: str, description: str) -> web.Response:
            return web.json_response({"error": error, "error_description": description}, status=status)

        if form.get("grant_type") != JWT_BEARER:
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", ""))
        try:
            head_b64, claims_b64, sig_b64 = form.get("assertion", "").split(".")
            header = json.loads(_b64url_decode(head_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            signature = _b64url_decode(sig_b64)
        except ValueError:
            return oauth_error(
                400, "invalid_grant", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
            )
        if header.get("alg") != "RS256" or header.get("kid") != self.key_id:
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            self.key.public_key().verify(
                signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        self.token_requests.append(claims)
        now = self.now()
        if claims.get("iss") != self.client_email:
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != GOOGLE_TOKEN_URI:
            return oauth_error(400, "invalid_grant", "Invalid JWT: audience is not the token endpoint")
        iat, exp = claims.get("iat", 0), claims.get("exp", 0)
        if exp - iat > 3600 or exp < now - 300 or iat > now + 300:
            return oauth_error(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) "
                "and in a reasonable timeframe. Check your iat and exp values",
            )
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            return oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        principal = self.client_email
        sub = claims.get("sub")
        if sub:
            if str(sub).lower() not in self.users:
                return oauth_error(400, "invalid_grant", "Invalid email or User ID")
            if not scopes <= self.grants.get(self.client_id, set()):
                return oauth_error(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens "
                    "using this method, or client not authorized for any of the scopes requested.",
                )
            principal = str(sub).lower()
        token = f"ya29.fake-{next(self._ids)}"
        self.tokens[token] = Token(principal, scopes, now + 3599)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _auth(self, header: str) -> tuple[str, frozenset[str]]:
        token = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if token is None or token.expires < self.now():
            raise GoogleError(
                401,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        return token.principal, token.scopes

    @staticmethod
    def _need(scopes: frozenset[str], accepted: set[str]) -> None:
        if not scopes & accepted:
            raise GoogleError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")

    # -- routing --------------------------------------------------------------------------------
    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        raw: bytes,
        headers: Any,
        principal: str,
        scopes: frozenset[str],
    ) -> web.StreamResponse:
        m = re.fullmatch(r"/gmail/v1/users/([^/]+)/(profile|messages|messages/send)", path)
        if m:
            self._need(
                scopes, PROFILE_SCOPES if m[2] == "profile" else READ_SCOPES if m[2] == "messages" else SEND_SCOPES
            )
            user = self._gmail_user(m[1], principal)
            if m[2] == "profile" and method == "GET":
                return web.json_response(
                    {
                        "emailAddress": user,
                        "messagesTotal": len(self.sent(user)),
                        "threadsTotal": len(self.sent(user)),
                        "historyId": "1000",
                    }
                )
            if m[2] == "messages" and method == "GET":
                return self._gmail_list(user, query, scopes)
            if m[2] == "messages/send" and method == "POST":
                if not isinstance(body, dict) or not isinstance(body.get("raw"), str):
                    raise GoogleError(
                        400,
                        "invalidArgument",
                        "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
                    )
                return web.json_response(self._gmail_store(user, _b64url_decode(body["raw"])))
        if path == "/upload/gmail/v1/users/me/messages/send" and method == "POST":
            self._need(scopes, SEND_SCOPES)
            if query.get("uploadType") != "resumable":
                return self._unexpected(method, path, f"uploadType={query.get('uploadType')}")
            return self._start_upload("gmail", principal, headers, {}, query)
        if path == "/drive/v3/files" and method == "GET":
            self._need(scopes, DRIVE_SCOPES)
            return self._drive_list(principal, query)
        if path == "/drive/v3/files" and method == "POST":
            self._need(scopes, DRIVE_SCOPES)
            meta = body if isinstance(body, dict) else {}
            return web.json_response(
                _fields(query.get("fields"), self._create(principal, meta, None, query).resource(), DEFAULT_FIELDS)
            )
        m = re.fullmatch(r"/drive/v3/files/([^/]+)", path)
        if m and method in ("GET", "PATCH"):
            self._need(scopes, DRIVE_SCOPES)
            f = self._visible(principal, m[1], query)
            if method == "PATCH":
                self._need_write(principal, f)
                meta = body if isinstance(body, dict) else {}
                if set(meta) - {"appProperties", "name"}:
                    return self._unexpected(method, path, f"metadata {sorted(meta)}")
                f.app_properties.update(meta.get("appProperties", {}))
                f.name = meta.get("name", f.name)
            resource = {**f.resource(), "capabilities": {"canAddChildren": self._role(principal, f) == "writer"}}
            return web.json_response(_fields(query.get("fields"), resource, DEFAULT_FIELDS))
        m = re.fullmatch(r"/drive/v3/drives/([^/]+)", path)
        if m and method == "GET":
            self._need(scopes, DRIVE_SCOPES)
            if m[1] not in self.shared_drives or m[1] not in self.access.get(principal, {}):
                raise GoogleError(404, "notFound", f"Shared drive not found: {m[1]}")
            writer = self.access[principal][m[1]] == "writer"
            return web.json_response(
                _fields(
                    query.get("fields"),
                    {
                        "kind": "drive#drive",
                        "id": m[1],
                        "name": self.shared_drives[m[1]],
                        "capabilities": {"canAddChildren": writer},
                    },
                    ("kind", "id", "name"),
                )
            )
        if path == "/upload/drive/v3/files" and method == "POST":
            self._need(scopes, DRIVE_SCOPES)
            return self._drive_upload(principal, None, query, raw, headers)
        m = re.fullmatch(r"/upload/drive/v3/files/([^/]+)", path)
        if m and method == "PATCH":
            self._need(scopes, DRIVE_SCOPES)
            return self._drive_upload(principal, m[1], query, raw, headers)
        return self._unexpected(method, path)

    # -- Gmail ----------------------------------------------------------------------------------
    def _gmail_user(self, user_id: str, principal: str) -> str:
        if user_id != "me" and user_id.lower() != principal:
            raise GoogleError(403, "forbidden", "Delegation denied for " + principal)
        if principal not in self.mailboxes:
            raise GoogleError(400, "failedPrecondition", "Mail service not enabled")
        return principal

    def _gmail_store(self, user: str, raw: bytes) -> dict[str, Any]:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if not msg["To"]:
            raise GoogleError(400, "invalidArgument", "Recipient address required")
        msg_id = self._id("18c0")
        stored = {
            "id": msg_id,
            "threadId": msg_id,
            "labelIds": ["SENT"],
            "raw": raw,
            "message_id": str(msg["Message-ID"] or "").strip(),
        }
        self.mailboxes[user][msg_id] = stored
        return {"id": msg_id, "threadId": msg_id, "labelIds": ["SENT"]}

    def _gmail_list(self, user: str, query: dict[str, str], scopes: frozenset[str]) -> web.Response:
        q = query.get("q")
        if q is not None and not scopes & (READ_SCOPES - {SCOPE_GMAIL_METADATA}):
            raise GoogleError(403, "forbidden", "Metadata scope does not support 'q' parameter")
        m = re.fullmatch(r"rfc822msgid:(\S+)", q or "")
        if not m or set(query) - {"q", "includeSpamTrash", "maxResults"}:
            return self._unexpected("GET", f"/gmail/v1/users/{user}/messages", f"query {query}")
        wanted = m[1].strip("<>")
        hits = [
            {"id": s["id"], "threadId": s["threadId"]}
            for s in self.mailboxes[user].values()
            if s["message_id"].strip("<>") == wanted
        ]
        out: dict[str, Any] = {"resultSizeEstimate": len(hits)}
        if hits:
            out["messages"] = hits
        return web.json_response(out)

    # -- Drive ----------------------------------------------------------------------------------
    def _root_of(self, f: DFile) -> list[str]:
        """``f``'s id and its ancestors' (and its shared drive's), nearest first."""
        chain, cur = [], f
        for _ in range(64):
            chain.append(cur.id)
            if not cur.parents:
                break
            parent = cur.parents[0]
            if parent not in self.files:
                chain.append(parent)
                break
            cur = self.files[parent]
        if f.drive_id:
            chain.append(f.drive_id)
        return chain

    def _role(self, principal: str, f: DFile) -> str | None:
        grants = self.access.get(principal, {})
        for item in self._root_of(f):
            if item in grants:
                return grants[item]
        return None

    def _visible(self, principal: str, file_id: str, query: dict[str, str]) -> DFile:
        f = self.files.get(file_id)
        if f is not None and f.drive_id and query.get("supportsAllDrives") != "true":
            f = None  # items in shared drives are invisible without supportsAllDrives
        if f is None or self._role(principal, f) is None:
            raise GoogleError(404, "notFound", f"File not found: {file_id}.", "global")
        return f

    def _need_write(self, principal: str, f: DFile) -> None:
        if self._role(principal, f) != "writer":
            raise GoogleError(
                403, "insufficientFilePermissions", f"The user does not have sufficient permissions for file {f.id}."
            )

    def _drive_list(self, principal: str, query: dict[str, str]) -> web.Response:
        known = {
            "q",
            "fields",
            "pageSize",
            "pageToken",
            "supportsAllDrives",
            "includeItemsFromAllDrives",
            "corpora",
            "driveId",
            "orderBy",
            "spaces",
        }
        if set(query) - known:
            return self._unexpected("GET", "/drive/v3/files", f"parameters {sorted(set(query) - known)}")
        try:
            clauses = parse_drive_query(query.get("q", ""))
        except ValueError as err:
            self.unexpected.append(f"GET /drive/v3/files: q={query.get('q')!r}")
            raise GoogleError(400, "invalid", str(err)) from None
        all_drives = query.get("includeItemsFromAllDrives") == "true"
        if all_drives and query.get("supportsAllDrives") != "true":
            raise GoogleError(
                403,
                "teamDrivesParameterNotSupported",
                "The includeItemsFromAllDrives parameter can "
                "only be set to true when supportsAllDrives is also set to true.",
            )
        drive_id = query.get("driveId")
        if query.get("corpora") == "drive" and (not drive_id or not all_drives):
            raise GoogleError(
                403,
                "teamDrivesParameterNotSupported",
                "The driveId parameter is required and includeItemsFromAllDrives must be true for corpora=drive.",
            )
        hits = []
        for f in sorted(self.files.values(), key=lambda f: (f.created, f.id)):
            if (f.drive_id and not all_drives) or (drive_id and f.drive_id != drive_id):
                continue
            if self._role(principal, f) is None:
                continue
            if all(self._match(f, kind, groups) for kind, groups in clauses):
                hits.append(f)
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("pageSize") or 100), self.page_size_cap)
        page = hits[start : start + size]
        fields = query.get("fields") or "kind,files(kind,id,name,mimeType)"
        m = re.fullmatch(
            r"(?:(?:kind|nextPageToken|incompleteSearch),)*files\(([^)]*)\)(?:,(?:kind|nextPageToken))*",
            fields.replace(" ", ""),
        )
        if m is None:
            return self._unexpected("GET", "/drive/v3/files", f"fields={fields}")
        inner = tuple(m[1].split(","))
        out: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [_fields(",".join(inner), f.resource(), inner) for f in page],
        }
        if start + size < len(hits) and "nextPageToken" in fields:
            out["nextPageToken"] = str(start + size)
        return web.json_response(out)

    @staticmethod
    def _match(f: DFile, kind: str, groups: tuple[str, ...]) -> bool:
        if kind == "parent":
            return groups[0] in f.parents
        if kind == "name":
            return f.name == groups[0]
        if kind == "mime":
            return f.mime_type == groups[0]
        if kind == "not_mime":
            return f.mime_type != groups[0]
        if kind == "trashed":
            return f.trashed == (groups[0] == "true")
        return f.app_properties.get(groups[0]) == groups[1]  # app

    def _create(self, principal: str, meta: dict[str, Any], content: bytes | None, query: dict[str, str]) -> DFile:
        drive = self._check_parent(principal, meta, query)
        mime = meta.get("mimeType") or "application/octet-stream"
        f = DFile(
            self._id("file" if mime != FOLDER else "fold"),
            meta.get("name") or "Untitled",
            mime,
            list(meta["parents"]),
            drive,
            dict(meta.get("appProperties") or {}),
            created=next(self._ids),
        )
        if content is not None:
            f.revisions.append(content)
        self.files[f.id] = f
        return f

    def _check_parent(self, principal: str, meta: dict[str, Any], query: dict[str, str]) -> str | None:
        """The new item's shared drive (None: My Drive), after the parent and permission checks."""
        if set(meta) - {"name", "mimeType", "parents", "appProperties"}:
            raise GoogleError(400, "invalid", f"unknown metadata {sorted(meta)}")
        parents = meta.get("parents") or []
        if len(parents) != 1:
            raise GoogleError(400, "invalid", "exactly one parent is expected here")
        parent_id = parents[0]
        if parent_id in self.shared_drives:
            if query.get("supportsAllDrives") != "true" or self.access.get(principal, {}).get(parent_id) is None:
                raise GoogleError(404, "notFound", f"File not found: {parent_id}.")
            if self.access[principal][parent_id] != "writer":
                raise GoogleError(
                    403,
                    "insufficientFilePermissions",
                    f"The user does not have sufficient permissions for file {parent_id}.",
                )
            drive = parent_id
        else:
            parent = self._visible(principal, parent_id, query)
            if parent.mime_type != FOLDER:
                raise GoogleError(400, "invalid", f"The parent {parent_id} is not a folder")
            self._need_write(principal, parent)
            drive = parent.drive_id
        return drive

    def _drive_upload(
        self, principal: str, file_id: str | None, query: dict[str, str], raw: bytes, headers: Any
    ) -> web.StreamResponse:
        kind = query.get("uploadType")
        target = self._visible(principal, file_id, query) if file_id else None
        if target is not None:
            self._need_write(principal, target)
        if kind == "media" and target is not None:
            target.revisions.append(raw)
            return web.json_response(_fields(query.get("fields"), target.resource(), DEFAULT_FIELDS))
        if kind == "multipart" and target is None:
            meta, content = self._multipart(raw, headers.get("Content-Type", ""))
            f = self._create(principal, meta, content, query)
            return web.json_response(_fields(query.get("fields"), f.resource(), DEFAULT_FIELDS))
        if kind == "resumable":
            meta = json.loads(raw) if raw else {}
            if target is None:
                self._check_parent(principal, meta, query)  # the file itself exists once the upload is complete
            return self._start_upload(
                "drive-update" if target else "drive-create",
                principal,
                headers,
                {**meta, **({"id": target.id} if target else {})},
                query,
            )
        return self._unexpected("POST" if file_id is None else "PATCH", f"/upload/drive/v3/files ({kind})")

    @staticmethod
    def _multipart(raw: bytes, content_type: str) -> tuple[dict[str, Any], bytes]:
        m = re.match(r'multipart/related;\s*boundary="?([^";]+)"?', content_type)
        if m is None:
            raise GoogleError(400, "badContent", f"Unsupported content with type: {content_type}")
        boundary = m[1].encode()
        parts = raw.split(b"--" + boundary)
        body = [p for p in parts[1:] if not p.startswith(b"--")]
        if len(body) != 2 or not parts[-1].startswith(b"--"):
            raise GoogleError(400, "badContent", "Multipart body must have exactly a metadata and a media part")
        out = []
        for part in body:
            head, _, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
            out.append((head.decode().lower(), content.removesuffix(b"\r\n")))
        if "application/json" not in out[0][0]:
            raise GoogleError(400, "badContent", "The first part must be the JSON metadata")
        return json.loads(out[0][1]), out[1][1]

    # -- resumable sessions ---------------------------------------------------------------------
    def _start_upload(
        self, kind: str, principal: str, headers: Any, meta: dict[str, Any], query: dict[str, str]
    ) -> web.Response:
        length = headers.get("X-Upload-Content-Length")
        ctype = headers.get("X-Upload-Content-Type", "")
        if length is None or not length.isdigit():
            raise GoogleError(400, "badRequest", "X-Upload-Content-Length is required here")
        if kind == "gmail" and ctype != "message/rfc822":
            raise GoogleError(
                400, "badContent", f"Media type '{ctype}' is not supported. Valid media types: [message/*]"
            )
        upload_id = "ADPycdv" + self._id("u")
        self.uploads[upload_id] = Upload(kind, principal, int(length), ctype, meta, dict(query))
        path = "/upload/gmail/v1/users/me/messages/send" if kind == "gmail" else "/upload/drive/v3/files"
        if kind == "drive-update":
            path += f"/{meta['id']}"
        location = f"{self.origin}{path}?uploadType=resumable&upload_id={upload_id}"
        return web.Response(status=200, headers={"Location": location, "X-GUploader-UploadID": upload_id})

    def _chunk(self, upload_id: str, raw: bytes, headers: Any) -> web.Response:
        up = self.uploads.get(upload_id)
        if up is None:
            raise GoogleError(404, "notFound", "No such upload session")
        rng = headers.get("Content-Range", "")
        status_query = re.fullmatch(r"bytes \*/(\d+|\*)", rng)
        if status_query:
            if up.result is not None:
                return web.json_response(up.result)
            return self._incomplete(up)
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", rng)
        if m is None or int(m[2]) - int(m[1]) + 1 != len(raw):
            raise GoogleError(400, "badRequest", f"Invalid Content-Range {rng!r} for {len(raw)} bytes")
        start, end = int(m[1]), int(m[2])
        if m[3] != "*" and int(m[3]) != up.total:
            raise GoogleError(400, "badRequest", f"The total {m[3]} is not the session's {up.total}")
        if up.result is not None:
            return web.json_response(up.result)
        if start != len(up.data):
            raise GoogleError(400, "badRequest", f"Chunk starts at {start}, expected {len(up.data)}")
        last = end + 1 == up.total
        if not last and len(raw) % CHUNK_UNIT:
            raise GoogleError(400, "badRequest", "Chunk size must be a multiple of 256 KiB, except the last")
        self._chunks += 1
        for number, keep in self.cuts:
            if number == self._chunks:
                up.data += raw[:keep]
                raise GoogleError(503, "backendError", "Backend Error")
        up.data += raw
        if not last:
            return self._incomplete(up)
        up.result = self._finish(up)
        return web.json_response(up.result)

    @staticmethod
    def _incomplete(up: Upload) -> web.Response:
        headers = {"Range": f"bytes=0-{len(up.data) - 1}"} if up.data else {}
        return web.Response(status=308, headers={**headers, "X-Http-Status-Code-Override": "308"})

    def _finish(self, up: Upload) -> dict[str, Any]:
        data = bytes(up.data)
        if up.kind == "gmail":
            return self._gmail_store(up.principal, data)
        if up.kind == "drive-update":
            f = self.files[up.meta["id"]]
            f.revisions.append(data)
        else:
            f = self._create(up.principal, up.meta, data, up.query)
        return _fields(up.query.get("fields"), f.resource(), DEFAULT_FIELDS)


class FakeGoogleThread:
    """A :class:`FakeGoogle` served from its own event loop in a thread, for tests that run a
    synchronous command (``reportbot demo``, ``config check``) which starts its own loop. Inspect
    ``.google`` once the command has returned."""

    def __init__(self) -> None:
        import asyncio
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-google", daemon=True)
        self.google = FakeGoogle()

    def __enter__(self) -> FakeGoogle:
        import asyncio

        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.google.start(), self._loop).result(timeout=30)
        return self.google

    def __exit__(self, *exc: object) -> None:
        import asyncio

        try:
            asyncio.run_coroutine_threadsafe(self.google.close(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
