"""A loopback Microsoft Graph for the delivery tests: exactly the calls ``bot.graph``
makes, behaving the way the real service does where it matters (research
teams-graph-contract.md §4-§8), and nothing else.

What it is strict about, because real Graph is:

- every ``/v1.0`` request needs ``Authorization: Bearer <token>`` with a token in
  :attr:`FakeGraph.tokens` (:data:`TOKEN`, or what a linked ``FakeEntra`` issued); an upload URL
  (the ``uploadUrl`` of an upload session) must NOT carry one (401 if it does);
- the sendMail / createUploadSession action bodies are matched case-insensitively: msgraph-sdk
  sends ``{"Message": ..., "SaveToSentItems": ...}`` and ``{"AttachmentItem": ...}``;
- paths are URL-decoded before routing, so the SDK's percent-encoded forms
  (``users/reports%40x``, ``items/root%3A%2FA%2Fb.pdf%3A``) and raw ones mean the same item;
- a message listing accepts only the extended-property ``$filter``
  (``singleValueExtendedProperties/any(ep: ep/id eq '...' and ep/value eq '...')``); a
  ``$filter`` on ``internetMessageHeaders`` is a 400, as on real Graph; ``$select`` projects;
- a folder POST with ``conflictBehavior: fail`` on an existing name is 409
  ``nameAlreadyExists``; a content PUT follows ``@microsoft.graph.conflictBehavior``
  (``replace`` by default, ``rename`` makes ``name 1.pdf``); a drive upload session defaults
  to ``fail`` here (stricter than needed, so a forgotten conflict behaviour shows up);
- upload sessions answer with ``nextExpectedRanges``, insist on the next expected byte,
  limit attachment chunks to 4 MiB and drive chunks to multiples of 320 KiB (but the last);
- a tab's ``teamsApp`` cannot be changed by PATCH (400);
- ``DELETE /drives/{d}/items/{id}`` removes the item (and a folder's contents): 204;
- a channel's messages come newest first, ``$top`` at most 50, no other query option but
  ``$expand`` (400), paged by ``@odata.nextLink``; a bot's card is ``attachments[].content``
  as a JSON string, its sender ``from.application`` (:meth:`FakeGraph.add_channel_message`).

Every request is recorded in :attr:`FakeGraph.requests` (decoded path, query, body), so tests
assert on the exact requests. A request the fake does not implement is answered 501 and listed
in :attr:`FakeGraph.unexpected` (tests assert it is empty). :meth:`FakeGraph.fail` injects
faults: 429/503 with ``Retry-After``, a 503 *after* the request took effect (sendMail accepted,
then the gateway times out), 403.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = "fake-graph-token"
ATTACHMENT_CHUNK_MAX = 4 * 1024 * 1024
DRIVE_CHUNK_UNIT = 320 * 1024
WEBSITE_TAB_APP = "com.microsoft.teamspace.tab.web"
PDF_TAB_APP = "com.microsoft.teamspace.tab.file.staticviewer.pdf"

_FILTER = re.compile(
    r"^singleValueExtendedProperties/any\((\w+): \1/id eq '((?:[^']|'')*)' and \1/value eq '((?:[^']|'')*)'\)$"
)
_ITEM_REF = re.compile(r"^(?P<base>[^:]+)(?::(?P<rel>/.*?):?)?$")


@dataclass
class Request:
    method: str
    path: str  # URL-decoded, without the /v1.0 prefix (upload URLs: /upload/<token>)
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, or the number of bytes for a binary body, or None
    raw_path: str

    def __repr__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.method} {self.path}{'?' + q if q else ''}"


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: str | None
    after: bool  # do the work first, then answer the error (e.g. sendMail accepted, then 503)
    code: str
    message: str


@dataclass
class Item:
    id: str
    name: str
    parent: str | None
    folder: bool
    web_url: str
    content: bytes = b""
    version: int = 1

    def json(self, drive_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "webUrl": self.web_url,
            "parentReference": {"driveId": drive_id, "id": self.parent},
        }
        if self.folder:
            out["folder"] = {"childCount": 0}
        else:
            out["file"] = {"mimeType": "application/pdf"}
            out["size"] = len(self.content)
        return out


@dataclass
class Drive:
    id: str
    name: str
    web_url: str
    items: dict[str, Item] = field(default_factory=dict)

    def child(self, parent: str, name: str) -> Item | None:
        for item in self.items.values():
            if item.parent == parent and item.name.lower() == name.lower():
                return item
        return None

    def path_of(self, item: Item) -> str:
        parts: list[str] = []
        cur: Item | None = item
        while cur is not None and cur.parent is not None:
            parts.append(cur.name)
            cur = self.items.get(cur.parent)
        return "/".join(reversed(parts))


@dataclass
class Channel:
    team: str
    channel: str
    drive: str
    folder: str  # item id of the channel's folder in that drive
    tabs: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)  # root messages, oldest first


@dataclass
class Session:
    kind: str  # "attachment" | "drive"
    total: int
    data: bytearray
    target: dict[str, Any]
    done: bool = False


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class FakeGraph:
    """``await FakeGraph().start()``; ``base_url`` is what the backend's ``base_url`` takes."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.tokens: Container[str] = {TOKEN}  # the bearer tokens accepted (e.g. a FakeEntra's ``issued``)
        self.unexpected: list[str] = []
        self.faults: list[Fault] = []
        self.mailboxes: dict[str, dict[str, dict[str, Any]]] = {}  # upn (lower) -> id -> message
        self.sites: dict[str, dict[str, Any]] = {}  # "host:/path" (lower) -> site
        self.drives: dict[str, Drive] = {}
        self.channels: dict[tuple[str, str], Channel] = {}
        self.sessions: dict[str, Session] = {}
        self._ids = itertools.count(1)
        self._server: TestServer | None = None
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> FakeGraph:
        self._server = TestServer(self.app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    @property
    def origin(self) -> str:
        assert self._server is not None, "FakeGraph not started"
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1.0"

    # -- set-up ---------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"

    def add_mailbox(self, upn: str) -> None:
        self.mailboxes.setdefault(upn.lower(), {})

    def add_site(self, hostname: str, path: str, libraries: tuple[str, ...] = ("Documents",)) -> dict[str, Any]:
        site_id = f"{hostname},{self._id('site')},{self._id('web')}"
        site = {"id": site_id, "webUrl": f"https://{hostname}{path}", "drives": []}
        for lib in libraries:
            drive = self.add_drive(lib, f"https://{hostname}{path}/{lib.replace(' ', '%20')}")
            site["drives"].append(drive.id)
        self.sites[f"{hostname}:{path}".lower()] = site
        return site

    def add_drive(self, name: str, web_url: str) -> Drive:
        drive = Drive(self._id("b!drive"), name, web_url)
        drive.items["root"] = Item("root", "root", None, True, web_url)
        self.drives[drive.id] = drive
        return drive

    def add_channel(self, team: str, channel: str, folder_name: str, drive: Drive | None = None) -> Channel:
        """A channel whose files live in ``drive`` (the team site's Documents; a shared channel
        gets a drive of its own) under ``folder_name``."""
        drive = drive or self.add_drive("Documents", f"https://teams.example/sites/{team}/Shared%20Documents")
        folder = self._new_item(drive, "root", folder_name, folder=True)
        ch = Channel(team, channel, drive.id, folder.id)
        self.channels[(team, channel)] = ch
        return ch

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        after: bool = False,
        code: str = "",
        message: str = "",
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and the regex ``path`` (on the
        decoded path) with ``status``; ``after``: perform the request first (it takes effect)."""
        default_code = {
            429: "TooManyRequests",
            503: "ServiceUnavailable",
            504: "GatewayTimeout",
            403: "ErrorAccessDenied",
            404: "ErrorItemNotFound",
        }.get(status, "Error")
        self.faults.append(
            Fault(
                method.upper(),
                re.compile(path),
                status,
                times,
                retry_after,
                after,
                code or default_code,
                message or f"Injected {status}",
            )
        )

    def add_channel_message(
        self,
        team: str,
        channel: str,
        message_id: str,
        *,
        activity: dict[str, Any] | None = None,
        app_id: str = "",
        text: str = "",
        user: str = "",
    ) -> dict[str, Any]:
        """A root message in the channel, shaped as ``GET .../messages`` returns it: a bot's
        ``activity`` (its card attachments become ``attachments[].content``, the card JSON as a
        string, and ``from.application``), or a person's ``text``."""
        ch = self._channel(team, channel)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        attachments = [
            {
                "id": f"{message_id}-{i}",
                "contentType": a.get("contentType"),
                "contentUrl": None,
                "content": json.dumps(a.get("content"), separators=(",", ":")),
                "name": None,
                "thumbnailUrl": None,
            }
            for i, a in enumerate((activity or {}).get("attachments") or [])
        ]
        sender: dict[str, Any] = {"application": None, "device": None, "user": None}
        if activity is not None:
            sender["application"] = {
                "@odata.type": "#microsoft.graph.teamworkApplicationIdentity",
                "id": app_id,
                "displayName": "reportbot",
                "applicationIdentityType": "bot",
            }
        else:
            sender["user"] = {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": user or "u-1",
                "displayName": "Someone",
                "userIdentityType": "aadUser",
            }
        body = "".join(f'<attachment id="{a["id"]}"></attachment>' for a in attachments) or text
        message = {
            "id": message_id,
            "replyToId": None,
            "etag": message_id,
            "messageType": "message",
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "deletedDateTime": None,
            "subject": None,
            "importance": "normal",
            "webUrl": f"https://teams.example/l/message/{channel}/{message_id}",
            "from": sender,
            "body": {"contentType": "html", "content": body},
            "attachments": attachments,
            "mentions": [],
            "reactions": [],
            "channelIdentity": {"teamId": team, "channelId": channel},
        }
        ch.messages.append(message)
        return message

    # -- what tests look at ---------------------------------------------------------------
    def sent(self, upn: str) -> list[dict[str, Any]]:
        """The mailbox's Sent Items, oldest first."""
        return [m for m in self.mailboxes[upn.lower()].values() if m["_folder"] == "sentitems"]

    def drafts(self, upn: str) -> list[dict[str, Any]]:
        return [m for m in self.mailboxes[upn.lower()].values() if m["_folder"] == "drafts"]

    def files(self, drive_id: str) -> dict[str, bytes]:
        """``path -> content`` of every file in the drive."""
        drive = self.drives[drive_id]
        return {drive.path_of(i): i.content for i in drive.items.values() if not i.folder}

    def folders(self, drive_id: str) -> list[str]:
        drive = self.drives[drive_id]
        return sorted(drive.path_of(i) for i in drive.items.values() if i.folder and i.parent is not None)

    def calls(self) -> list[str]:
        """``"METHOD /path?query"`` of every request, in order."""
        return [repr(r) for r in self.requests]

    # -- dispatch --------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        path = unquote(request.rel_url.raw_path)
        query = {k: v for k, v in request.query.items()}
        ctype = request.headers.get("Content-Type", "")
        body: Any = None
        if raw and "json" in ctype:
            body = json.loads(raw)
        elif raw:
            body = len(raw)
        headers = {
            k.lower(): v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-range", "content-type", "content-length", "prefer")
        }
        upload = path.startswith("/upload/")
        rel = path if upload else path.removeprefix("/v1.0")
        self.requests.append(Request(request.method, rel, query, headers, body, request.rel_url.raw_path))
        try:
            if upload:
                if "authorization" in headers:
                    raise GraphError(
                        401, "InvalidAuthenticationToken", "An upload URL must not be sent an Authorization header"
                    )
            elif not path.startswith("/v1.0/"):
                raise _Unexpected()
            elif headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
                raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty or invalid")
            fault = self._fault(request.method, rel)
            if fault is not None and not fault.after:
                raise GraphError(fault.status, fault.code, fault.message, _retry(fault))
            response = self._route(request.method, rel, query, body, raw, request.headers)
            if fault is not None:
                raise GraphError(fault.status, fault.code, fault.message, _retry(fault))
            return response
        except _Unexpected:
            self.unexpected.append(
                f"{request.method} {path}{'?' + request.query_string if request.query_string else ''}"
            )
            return web.json_response(
                {"error": {"code": "NotImplemented", "message": "not implemented by the fake"}}, status=501
            )
        except GraphError as err:
            return web.json_response(
                {"error": {"code": err.code, "message": err.message}}, status=err.status, headers=err.headers
            )

    def _fault(self, method: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.times > 0 and f.method == method and f.path.search(path):
                f.times -= 1
                return f
        return None

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, raw: bytes, headers: Any
    ) -> web.Response:
        if m := re.fullmatch(r"/upload/([^/]+)", path):
            return self._upload(method, m[1], raw, headers)
        if m := re.fullmatch(r"/users/([^/]+)/sendMail", path):
            _only(method, "POST")
            return self._send_mail(m[1], body)
        if m := re.fullmatch(r"/users/([^/]+)/messages", path):
            if method == "GET":
                return self._list_messages(m[1], query)
            _only(method, "POST")
            return self._create_draft(m[1], body)
        if m := re.fullmatch(r"/users/([^/]+)/messages/([^/]+)/attachments", path):
            _only(method, "GET")
            msg = self._message(m[1], m[2])
            return _json({"value": [_project(a, query) for a in msg["_attachments"]]})
        if m := re.fullmatch(r"/users/([^/]+)/messages/([^/]+)/attachments/createUploadSession", path):
            _only(method, "POST")
            return self._attachment_session(m[1], m[2], body)
        if m := re.fullmatch(r"/users/([^/]+)/messages/([^/]+)/send", path):
            _only(method, "POST")
            msg = self._message(m[1], m[2])
            if msg["_folder"] != "drafts":
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            msg["_folder"], msg["isDraft"] = "sentitems", False
            return web.Response(status=202)
        if m := re.fullmatch(r"/sites/([^/:,]+):(/[^:]*)", path):
            _only(method, "GET")
            return self._site(m[1], m[2])
        if m := re.fullmatch(r"/sites/([^/]+)/drives", path):
            _only(method, "GET")
            site = next((s for s in self.sites.values() if s["id"] == m[1]), None)
            if site is None:
                raise GraphError(404, "itemNotFound", "Requested site could not be found")
            drives = [
                {"id": d, "name": self.drives[d].name, "webUrl": self.drives[d].web_url, "driveType": "documentLibrary"}
                for d in site["drives"]
            ]
            return _json({"value": [_project(d, query) for d in drives]})
        if m := re.fullmatch(r"/drives/([^/]+)/items/(.+)/children", path):
            _only(method, "POST")
            return self._create_folder(m[1], m[2], body)
        if m := re.fullmatch(r"/drives/([^/]+)/items/(.+)/content", path):
            _only(method, "PUT")
            return self._put_content(m[1], m[2], raw, query)
        if m := re.fullmatch(r"/drives/([^/]+)/items/(.+)/createUploadSession", path):
            _only(method, "POST")
            return self._drive_session(m[1], m[2], body)
        if m := re.fullmatch(r"/drives/([^/]+)/items/([^/]+|[^:/]+:/.+)", path):
            if method == "DELETE":
                return self._delete_item(m[1], m[2])
            _only(method, "GET")
            drive, item = self._resolve(m[1], m[2])
            return _json(_project(item.json(drive.id), query))
        if m := re.fullmatch(r"/teams/([^/]+)/channels/([^/]+)/filesFolder", path):
            _only(method, "GET")
            ch = self._channel(m[1], m[2])
            drive = self.drives[ch.drive]
            return _json(drive.items[ch.folder].json(drive.id))
        if m := re.fullmatch(r"/teams/([^/]+)/channels/([^/]+)/messages", path):
            _only(method, "GET")
            return self._list_channel_messages(self._channel(m[1], m[2]), query)
        if m := re.fullmatch(r"/teams/([^/]+)/channels/([^/]+)/tabs", path):
            ch = self._channel(m[1], m[2])
            if method == "GET":
                expand = query.get("$expand", "")
                return _json({"value": [_tab_json(t, expand == "teamsApp") for t in ch.tabs.values()]})
            _only(method, "POST")
            return self._create_tab(ch, body)
        if m := re.fullmatch(r"/teams/([^/]+)/channels/([^/]+)/tabs/([^/]+)", path):
            _only(method, "PATCH")
            ch = self._channel(m[1], m[2])
            tab = ch.tabs.get(m[3])
            if tab is None:
                raise GraphError(404, "NotFound", "Tab not found")
            if any(k.lower().startswith("teamsapp") for k in body):
                raise GraphError(400, "BadRequest", "teamsApp cannot be changed after the tab is created")
            tab["displayName"] = body.get("displayName", tab["displayName"])
            if "configuration" in body:
                tab["configuration"] = {k: v for k, v in body["configuration"].items() if k != "@odata.type"}
            return _json(_tab_json(tab, False))
        raise _Unexpected()

    # -- mail --------------------------------------------------------------------------------
    def _mailbox(self, upn: str) -> dict[str, dict[str, Any]]:
        box = self.mailboxes.get(upn.lower())
        if box is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{upn}' is invalid.")
        return box

    def _message(self, upn: str, msg_id: str) -> dict[str, Any]:
        msg = self._mailbox(upn).get(msg_id)
        if msg is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return msg

    def _store(self, upn: str, message: dict[str, Any], folder: str) -> dict[str, Any]:
        msg_id = self._id("AAMk")
        attachments = []
        for a in message.get("attachments") or []:
            if a.get("@odata.type") != "#microsoft.graph.fileAttachment":
                raise GraphError(400, "ErrorInvalidRequest", "only file attachments are supported by the fake")
            content = base64.b64decode(a["contentBytes"])
            if len(content) >= 3 * 1024 * 1024:
                raise GraphError(413, "ErrorRequestEntityTooLarge", "An inline attachment must be under 3 MB")
            attachments.append(
                {
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "id": self._id("att"),
                    "name": a["name"],
                    "contentType": a.get("contentType"),
                    "size": len(content),
                    "_content": content,
                }
            )
        for r in (message.get("toRecipients") or []) + (message.get("ccRecipients") or []):
            address = r.get("emailAddress", {}).get("address", "")
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
                raise GraphError(400, "ErrorInvalidRecipients", f"At least one recipient is not valid: {address!r}")
        msg = {k: v for k, v in message.items() if k not in ("attachments", "@odata.type")}
        msg.update(
            id=msg_id,
            isDraft=folder == "drafts",
            webLink=f"https://outlook.office365.com/owa/?ItemID={msg_id}",
            _folder=folder,
            _attachments=attachments,
        )
        self._mailbox(upn)[msg_id] = msg
        return msg

    def _send_mail(self, upn: str, body: Any) -> web.Response:
        keys = {k.lower(): k for k in body or {}}
        if "message" not in keys:
            raise GraphError(400, "ErrorInvalidRequest", "sendMail needs a message")
        message = body[keys["message"]]
        if not message.get("toRecipients"):
            raise GraphError(400, "ErrorInvalidRecipientsNoRecipients", "The message has no recipients")
        save = body.get(keys.get("savetosentitems", ""), True)
        msg = self._store(upn, message, "sentitems" if save else "nowhere")
        msg["isDraft"] = False
        return web.Response(status=202)

    def _create_draft(self, upn: str, body: Any) -> web.Response:
        msg = self._store(upn, body, "drafts")
        return _json(_public(msg), status=201)

    def _list_messages(self, upn: str, query: dict[str, str]) -> web.Response:
        box = self._mailbox(upn)
        flt = query.get("$filter")
        if flt is None:
            raise _Unexpected()  # the backend never lists a whole mailbox
        if "internetmessageheaders" in flt.lower():
            raise GraphError(
                400, "ErrorInvalidProperty", "The property 'InternetMessageHeaders' does not support filtering."
            )
        m = _FILTER.fullmatch(flt)
        if m is None:
            raise _Unexpected()
        prop_id, value = m[2].replace("''", "'"), m[3].replace("''", "'")
        found = [
            msg
            for msg in box.values()
            if msg["_folder"] != "nowhere"
            and any(
                ep.get("id", "").lower() == prop_id.lower() and ep.get("value") == value
                for ep in msg.get("singleValueExtendedProperties") or []
            )
        ]
        top = int(query.get("$top", "10"))
        return _json({"value": [_project(_public(msg), query) for msg in found[:top]]})

    def _attachment_session(self, upn: str, msg_id: str, body: Any) -> web.Response:
        msg = self._message(upn, msg_id)
        if msg["_folder"] != "drafts":
            raise GraphError(400, "ErrorInvalidOperation", "attachments can be added to a draft only")
        keys = {k.lower(): k for k in body or {}}
        item = body.get(keys.get("attachmentitem", ""), None)
        if not item or item.get("attachmentType") != "file" or not item.get("name") or not item.get("size"):
            raise GraphError(400, "ErrorInvalidRequest", "AttachmentItem needs attachmentType file, name and size")
        token = self._id("att-session-")
        self.sessions[token] = Session(
            "attachment",
            int(item["size"]),
            bytearray(),
            {"upn": upn, "msg": msg_id, "name": item["name"], "contentType": item.get("contentType")},
        )
        return _json(
            {
                "uploadUrl": f"{self.origin}/upload/{token}",
                "expirationDateTime": "2030-01-01T00:00:00Z",
                "nextExpectedRanges": ["0-"],
            },
            status=201,
        )

    # -- drives --------------------------------------------------------------------------------
    def _site(self, hostname: str, path: str) -> web.Response:
        site = self.sites.get(f"{hostname}:{path.rstrip('/')}".lower())
        if site is None:
            raise GraphError(404, "itemNotFound", "Requested site could not be found")
        return _json({"id": site["id"], "webUrl": site["webUrl"]})

    def _channel(self, team: str, channel: str) -> Channel:
        ch = self.channels.get((team, channel))
        if ch is None:
            raise GraphError(404, "NotFound", f"Channel {channel} of team {team} not found")
        return ch

    def _resolve(self, drive_id: str, ref: str) -> tuple[Drive, Item]:
        drive = self.drives.get(drive_id)
        if drive is None:
            raise GraphError(404, "itemNotFound", "The drive does not exist")
        m = _ITEM_REF.fullmatch(ref)
        if m is None:
            raise GraphError(400, "invalidRequest", f"bad item reference {ref!r}")
        item = drive.items.get(m["base"])
        if item is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        for part in (m["rel"] or "").strip("/").split("/"):
            if not part:
                continue
            child = drive.child(item.id, part)
            if child is None:
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            item = child
        return drive, item

    def _split(self, drive_id: str, ref: str) -> tuple[Drive, Item, str]:
        """``{parent}:/{name}:`` -> (drive, parent folder, name); the parent path must exist."""
        m = _ITEM_REF.fullmatch(ref)
        if m is None or not m["rel"]:
            raise _Unexpected()
        parent_path, _, name = m["rel"].rpartition("/")
        drive, parent = self._resolve(drive_id, f"{m['base']}:{parent_path}:" if parent_path else m["base"])
        if not parent.folder:
            raise GraphError(400, "invalidRequest", "the parent is not a folder")
        return drive, parent, name

    def _new_item(self, drive: Drive, parent: str, name: str, *, folder: bool, content: bytes = b"") -> Item:
        parent_item = drive.items[parent]
        item = Item(
            self._id("01ITEM"), name, parent, folder, f"{parent_item.web_url}/{name.replace(' ', '%20')}", content
        )
        drive.items[item.id] = item
        return item

    def _write(self, drive: Drive, parent: Item, name: str, content: bytes, behaviour: str) -> tuple[Item, int]:
        if re.search(r'[\\/:*?"<>|#%]', name) or name != name.strip() or name.endswith("."):
            raise GraphError(400, "invalidRequest", f"Invalid file name {name!r}")
        existing = drive.child(parent.id, name)
        if existing is None:
            return self._new_item(drive, parent.id, name, folder=False, content=content), 201
        if behaviour == "fail":
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
        if behaviour == "rename":
            stem, dot, ext = name.rpartition(".")
            n = 1
            while drive.child(parent.id, f"{stem} {n}{dot}{ext}") is not None:
                n += 1
            return self._new_item(drive, parent.id, f"{stem} {n}{dot}{ext}", folder=False, content=content), 201
        if existing.folder:
            raise GraphError(409, "nameAlreadyExists", "A folder with that name exists")
        existing.content, existing.version = content, existing.version + 1
        return existing, 200

    def _create_folder(self, drive_id: str, ref: str, body: Any) -> web.Response:
        drive, parent = self._resolve(drive_id, ref)
        name = (body or {}).get("name", "")
        if not name or "folder" not in body or re.search(r'[\\/:*?"<>|#%]', name):
            raise GraphError(400, "invalidRequest", f"Invalid folder request {body!r}")
        behaviour = body.get("@microsoft.graph.conflictBehavior", "rename")
        existing = drive.child(parent.id, name)
        if existing is not None:
            if behaviour == "fail":
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            if behaviour == "replace":
                raise _Unexpected()  # replacing a folder deletes its contents: never wanted here
            name = f"{name} 1"
        item = self._new_item(drive, parent.id, name, folder=True)
        return _json(item.json(drive.id), status=201)

    def _put_content(self, drive_id: str, ref: str, raw: bytes, query: dict[str, str]) -> web.Response:
        behaviour = query.get("@microsoft.graph.conflictBehavior", "replace")
        if ":" in ref:
            drive, parent, name = self._split(drive_id, ref)
            item, status = self._write(drive, parent, name, raw, behaviour)
        else:
            drive, item = self._resolve(drive_id, ref)
            if item.folder:
                raise GraphError(400, "invalidRequest", "cannot PUT content to a folder")
            item.content, item.version, status = raw, item.version + 1, 200
        return _json(item.json(drive.id), status=status)

    def _delete_item(self, drive_id: str, ref: str) -> web.Response:
        """``DELETE /drives/{d}/items/{id}``: 204; a folder goes with everything in it; the root
        cannot be deleted (403, as on SharePoint)."""
        drive, item = self._resolve(drive_id, ref)
        if item.parent is None:
            raise GraphError(403, "accessDenied", "The root of a drive cannot be deleted")
        doomed = {item.id}
        while True:
            more = {i.id for i in drive.items.values() if i.parent in doomed} - doomed
            if not more:
                break
            doomed |= more
        for item_id in doomed:
            del drive.items[item_id]
        return web.Response(status=204)

    def _drive_session(self, drive_id: str, ref: str, body: Any) -> web.Response:
        drive, parent, name = self._split(drive_id, ref)
        item = (body or {}).get("item") or {}
        behaviour = item.get("@microsoft.graph.conflictBehavior", "fail")
        if behaviour == "fail" and drive.child(parent.id, name) is not None:
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
        token = self._id("drive-session-")
        self.sessions[token] = Session(
            "drive", -1, bytearray(), {"drive": drive.id, "parent": parent.id, "name": name, "behaviour": behaviour}
        )
        return _json(
            {
                "uploadUrl": f"{self.origin}/upload/{token}",
                "expirationDateTime": "2030-01-01T00:00:00Z",
                "nextExpectedRanges": ["0-"],
            }
        )

    def _upload(self, method: str, token: str, raw: bytes, headers: Any) -> web.Response:
        session = self.sessions.get(token)
        if session is None or session.done:
            raise GraphError(404, "itemNotFound", "The upload session was not found")
        if method == "GET":
            return _json(
                {"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": [f"{len(session.data)}-"]}
            )
        if method == "DELETE":
            session.done = True
            return web.Response(status=204)
        _only(method, "PUT")
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers.get("Content-Range", ""))
        if m is None:
            raise GraphError(400, "invalidRange", "Content-Range is required")
        start, end, total = int(m[1]), int(m[2]), int(m[3])
        if session.total == -1:
            session.total = total
        if total != session.total or end - start + 1 != len(raw) or int(headers.get("Content-Length", -1)) != len(raw):
            raise GraphError(400, "invalidRange", "Content-Range does not match the body or the session")
        if start != len(session.data):
            raise GraphError(416, "invalidRange", f"expected the range starting at {len(session.data)}")
        last = end + 1 == total
        if session.kind == "attachment" and len(raw) > ATTACHMENT_CHUNK_MAX:
            raise GraphError(400, "ErrorInvalidRequest", "An attachment upload chunk must be at most 4 MB")
        if session.kind == "drive" and not last and len(raw) % DRIVE_CHUNK_UNIT:
            raise GraphError(400, "invalidRange", "A fragment must be a multiple of 320 KiB")
        session.data += raw
        if not last:
            return _json(
                {"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": [f"{len(session.data)}-"]},
                status=200 if session.kind == "attachment" else 202,
            )
        session.done = True
        t = session.target
        if session.kind == "attachment":
            msg = self._message(t["upn"], t["msg"])
            msg["_attachments"].append(
                {
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "id": self._id("att"),
                    "name": t["name"],
                    "contentType": t["contentType"],
                    "size": len(session.data),
                    "_content": bytes(session.data),
                }
            )
            return web.Response(status=201, headers={"Location": f"{self.origin}/attachments/{token}"})
        drive = self.drives[t["drive"]]
        item, status = self._write(drive, drive.items[t["parent"]], t["name"], bytes(session.data), t["behaviour"])
        return _json(item.json(drive.id), status=status)

    # -- tabs ---------------------------------------------------------------------------------
    def _list_channel_messages(self, ch: Channel, query: dict[str, str]) -> web.Response:
        """Newest first; ``$top`` 1-50 (default 20) and ``$expand`` are the only options the real
        call takes (anything else is a 400 here); ``@odata.nextLink`` carries a ``$skiptoken``."""
        unsupported = sorted(set(query) - {"$top", "$expand", "$skiptoken"})
        if unsupported:
            raise GraphError(400, "BadRequest", f"Query option(s) {', '.join(unsupported)} not supported")
        top = int(query.get("$top", "20"))
        if not 1 <= top <= 50:
            raise GraphError(400, "BadRequest", "$top must be between 1 and 50")
        start = int(query.get("$skiptoken", "0"))
        newest_first = list(reversed(ch.messages))
        page = newest_first[start : start + top]
        out: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/$metadata#teams('{ch.team}')/channels('{ch.channel}')/messages",
            "value": page,
        }
        if start + top < len(newest_first):
            out["@odata.nextLink"] = (
                f"{self.base_url}/teams/{ch.team}/channels/{quote(ch.channel)}/messages"
                f"?$top={top}&$skiptoken={start + top}"
            )
        return _json(out)

    def _create_tab(self, ch: Channel, body: Any) -> web.Response:
        bind = (body or {}).get("teamsApp@odata.bind", "")
        app = bind.rpartition("/appCatalogs/teamsApps/")[2] if "/appCatalogs/teamsApps/" in bind else ""
        if app not in (WEBSITE_TAB_APP, PDF_TAB_APP) or not body.get("displayName"):
            raise GraphError(
                400, "BadRequest", f"a tab needs displayName and a known teamsApp@odata.bind, not {bind!r}"
            )
        config = {k: v for k, v in (body.get("configuration") or {}).items() if k != "@odata.type"}
        if app == WEBSITE_TAB_APP and not (config.get("contentUrl") and config.get("websiteUrl")):
            raise GraphError(400, "BadRequest", "a website tab needs contentUrl and websiteUrl")
        tab = {
            "id": self._id("tab-"),
            "displayName": body["displayName"],
            "teamsApp": app,
            "configuration": config,
            "webUrl": f"https://teams.microsoft.com/l/channel/{ch.channel}/tab",
        }
        ch.tabs[tab["id"]] = tab
        return _json(_tab_json(tab, False), status=201)


class _Unexpected(Exception):
    """A request the fake does not implement (answered 501, listed in ``unexpected``)."""


def _only(method: str, allowed: str) -> None:
    if method != allowed:
        raise _Unexpected()


def _retry(fault: Fault) -> dict[str, str]:
    return {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _public(msg: dict[str, Any]) -> dict[str, Any]:
    """What Graph returns for a message: no extended properties unless expanded."""
    return {k: v for k, v in msg.items() if not k.startswith("_") and k != "singleValueExtendedProperties"}


def _project(obj: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if not k.startswith("_")}
    if "$select" in query:
        wanted = {s.strip() for s in query["$select"].split(",")} | {"id", "@odata.type"}
        out = {k: v for k, v in out.items() if k in wanted}
    return out


def _tab_json(tab: dict[str, Any], expand: bool) -> dict[str, Any]:
    out = {k: v for k, v in tab.items() if k != "teamsApp"}
    if expand:
        out["teamsApp"] = {
            "id": tab["teamsApp"],
            "displayName": "Website" if tab["teamsApp"] == WEBSITE_TAB_APP else "PDF",
        }
    return out
