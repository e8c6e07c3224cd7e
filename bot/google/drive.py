"""The Google Drive archive step: ``<root>/<customer folder>/<YYYY>/<CODE>-weekly-<YYYY-MM-DD>.pdf``.

The root is a folder (``[gdrive] root_folder_id``) or a shared drive (``shared_drive_id``; every
call then says ``supportsAllDrives=true``, and listings ``includeItemsFromAllDrives=true``,
``corpora=drive``, ``driveId``). The customer folder is the customer's ``drive_folder`` (else its
``sharepoint_folder``, else ``Customers/<CODE>``), one level per ``/``; each level is looked up
(``files.list``: parent, name, folder mimeType, not trashed) and created when missing.

Exactly once: the file carries the delivery key in ``appProperties`` (:data:`DELIVERY_PROPERTY`).
Before any upload the file is looked up by that property, then by name in the year folder; a file
found is updated in place (``files.update``, a new revision of the same file), or left alone when
it already holds these bytes (``md5Checksum``) under this key. A create whose answer was lost is
looked up before it is repeated. Up to :data:`MULTIPART_MAX` the upload is one multipart request
(metadata + media); above, a resumable session in chunks, resumed after a lost one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from typing import Any

from bot.delivery import Parcel, PermanentError, StepResult
from bot.google.auth import SCOPE_DRIVE
from bot.google.http import ApiError, GoogleHttp, ResumableUpload, check_own
from reporting.config import Config

log = logging.getLogger(__name__)

DRIVE_API = "https://www.googleapis.com"
FOLDER = "application/vnd.google-apps.folder"
PDF = "application/pdf"
MULTIPART_MAX = 5 * 1024 * 1024  # Drive: multipart "for files 5 MB or less"; larger ones resumable
DELIVERY_PROPERTY = "reportbotDeliveryId"
FILE_FIELDS = "id,name,parents,md5Checksum,size,webViewLink,appProperties"
_BAD_SEGMENT = re.compile(r"[\x00-\x1f]")


def q_string(value: str) -> str:
    """A string literal in a Drive query: ``'`` and ``\\`` escaped with a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def folder_parts(folder: str, key: str) -> list[str]:
    parts = [p.strip() for p in folder.split("/") if p.strip()]
    for p in parts:
        if p in (".", "..") or _BAD_SEGMENT.search(p):
            raise PermanentError(f"{key}: {p!r} is not a valid Drive folder name")
    return parts


class DriveArchiver:
    """The archive step over Drive v3. ``http`` signs as ``[gdrive] subject`` (or the service account)."""

    def __init__(
        self,
        config: Config,
        http: GoogleHttp,
        *,
        root_folder_id: str = "",
        shared_drive_id: str = "",
        base_url: str = DRIVE_API,
        upload_url: str | None = None,
        chunk: int | None = None,
        principal: str = "",
    ) -> None:
        if bool(root_folder_id) == bool(shared_drive_id):
            raise ValueError("give exactly one of root_folder_id and shared_drive_id")
        self.config, self.http = config, http
        self.root = shared_drive_id or root_folder_id
        self.shared_drive = shared_drive_id or None
        self.base = base_url.rstrip("/")
        self.upload_base = (upload_url or base_url).rstrip("/")
        self.principal = principal  # who Drive sees (for messages)
        self.uploads = ResumableUpload(http.client, sleep=http.sleep, **({"chunk": chunk} if chunk else {}))
        self._folders: dict[tuple[str, ...], str] = {}

    # -- the step -------------------------------------------------------------------------------
    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        check_own(self.config, parcel)
        folder = parcel.customer.drive_folder or parcel.archive_folder
        field = "drive_folder" if parcel.customer.drive_folder else "sharepoint_folder"
        parts = [*folder_parts(folder, f"customers[{parcel.code}].{field}"), str(parcel.period_end.year)]
        where = "/".join(parts) + "/" + parcel.file_name
        try:
            parent = self.root
            for depth in range(len(parts)):
                parent = await self._ensure_folder(parent, tuple(parts[: depth + 1]))
            item, how = await self._put_file(parent, parcel.file_name, parcel.pdf, key)
        except ApiError as err:
            raise PermanentError(self._explain(err, where)) from err
        return StepResult(f"archived to Drive {where}{how}", item.get("webViewLink"))

    async def check_root(self) -> str:
        """``config check``: the archive root exists, is a folder (or shared drive) and may be
        written in, and its children can be listed. Returns what was found."""
        try:
            if self.shared_drive:
                resp = await self.http.send(
                    "GET",
                    f"{self.base}/drive/v3/drives/{self.root}",
                    SCOPE_DRIVE,
                    what="the archive shared drive",
                    params={"fields": "id,name,capabilities"},
                )
                root = resp.json()
                kind = "shared drive"
            else:
                resp = await self.http.send(
                    "GET",
                    f"{self.base}/drive/v3/files/{self.root}",
                    SCOPE_DRIVE,
                    what="the archive folder",
                    params={"supportsAllDrives": "true", "fields": "id,name,mimeType,capabilities"},
                )
                root = resp.json()
                kind = "folder"
                if root.get("mimeType") != FOLDER:
                    raise PermanentError(f"gdrive.root_folder_id: {self.root} ({root.get('name')}) is not a folder")
            if not (root.get("capabilities") or {}).get("canAddChildren"):
                raise ApiError(403, "insufficientFilePermissions", "capabilities.canAddChildren is false")
            children = await self._list(
                f"{q_string(self.root)} in parents and trashed = false", "id", "the archive root"
            )
        except ApiError as err:
            raise PermanentError(self._explain(err, "the archive root")) from err
        return (
            f"{kind} {root.get('name')!r} ({self.root}) may be written by {self.principal}; {len(children)} items in it"
        )

    # -- look-ups -------------------------------------------------------------------------------
    def _drive_params(self) -> dict[str, str]:
        params = {"supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
        if self.shared_drive:
            params.update(corpora="drive", driveId=self.shared_drive)
        return params

    async def _list(self, q: str, fields: str, what: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(100):
            params = {
                **self._drive_params(),
                "q": q,
                "fields": f"nextPageToken,files({fields})",
                "pageSize": "100",
                "orderBy": "createdTime",
            }
            if token:
                params["pageToken"] = token
            resp = await self.http.send("GET", f"{self.base}/drive/v3/files", SCOPE_DRIVE, what=what, params=params)
            body = resp.json()
            out.extend(body.get("files") or [])
            token = body.get("nextPageToken")
            if not token:
                break
        return out

    async def _find_folder(self, parent: str, name: str) -> str | None:
        q = f"{q_string(parent)} in parents and name = {q_string(name)} and mimeType = '{FOLDER}' and trashed = false"
        found = await self._list(q, "id,name", f"folder {name}")
        return found[0]["id"] if found else None  # the oldest, should two have been made at once

    async def _ensure_folder(self, parent: str, path: tuple[str, ...]) -> str:
        if path in self._folders:
            return self._folders[path]
        name = path[-1]
        folder_id = await self._find_folder(parent, name)
        if folder_id is None:
            created = await self.http.send(
                "POST",
                f"{self.base}/drive/v3/files",
                SCOPE_DRIVE,
                what=f"create folder {'/'.join(path)}",
                params={"supportsAllDrives": "true", "fields": "id"},
                json={"name": name, "mimeType": FOLDER, "parents": [parent]},
                recheck=lambda: self._find_folder(parent, name),
            )
            folder_id = created if isinstance(created, str) else created.json()["id"]
        self._folders[path] = str(folder_id)
        return str(folder_id)

    async def find_by_key(self, key: str) -> dict[str, Any] | None:
        q = f"appProperties has {{ key='{DELIVERY_PROPERTY}' and value={q_string(key)} }} and trashed = false"
        found = await self._list(q, FILE_FIELDS, f"look-up of {key}")
        return found[0] if found else None

    async def _find_by_name(self, parent: str, name: str) -> dict[str, Any] | None:
        q = f"{q_string(parent)} in parents and name = {q_string(name)} and mimeType != '{FOLDER}' and trashed = false"
        found = await self._list(q, FILE_FIELDS, f"look-up of {name}")
        return found[0] if found else None

    # -- upload ---------------------------------------------------------------------------------
    async def _put_file(self, parent: str, name: str, data: bytes, key: str) -> tuple[dict[str, Any], str]:
        found = await self.find_by_key(key) or await self._find_by_name(parent, name)
        if found is None:
            return await self._create(parent, name, data, key), ""
        same_key = (found.get("appProperties") or {}).get(DELIVERY_PROPERTY) == key
        if same_key and found.get("md5Checksum") == hashlib.md5(data).hexdigest():  # noqa: S324 - Drive's checksum
            log.info("the archive of %s already holds this file (found by its delivery id)", key)
            return found, " (already archived)"
        item = await self._update(found["id"], data, key)
        if not same_key:
            meta = await self.http.send(
                "PATCH",
                f"{self.base}/drive/v3/files/{found['id']}",
                SCOPE_DRIVE,
                what=f"mark {name} with {key}",
                params={"supportsAllDrives": "true", "fields": FILE_FIELDS},
                json={"appProperties": {DELIVERY_PROPERTY: key}},
            )
            item = meta.json()
        return item, " (a new revision of the same file)"

    async def _create(self, parent: str, name: str, data: bytes, key: str) -> dict[str, Any]:
        meta = {"name": name, "mimeType": PDF, "parents": [parent], "appProperties": {DELIVERY_PROPERTY: key}}
        params = {"supportsAllDrives": "true", "fields": FILE_FIELDS}
        url = f"{self.upload_base}/upload/drive/v3/files"
        if len(data) <= MULTIPART_MAX:
            boundary = "reportbot-" + secrets.token_hex(12)
            body = (
                (
                    f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(meta)}\r\n"
                    f"--{boundary}\r\nContent-Type: {PDF}\r\n\r\n"
                ).encode()
                + data
                + f"\r\n--{boundary}--\r\n".encode()
            )
            result = await self.http.send(
                "POST",
                url,
                SCOPE_DRIVE,
                what=f"upload of {name}",
                params={**params, "uploadType": "multipart"},
                content=body,
                headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
                recheck=lambda: self.find_by_key(key),
            )
            return result if isinstance(result, dict) else result.json()
        started = await self.http.send(
            "POST",
            url,
            SCOPE_DRIVE,
            what=f"upload session for {name}",
            params={**params, "uploadType": "resumable"},
            json=meta,
            headers={"X-Upload-Content-Type": PDF, "X-Upload-Content-Length": str(len(data))},
        )
        return await self._upload(started, data, name)

    async def _update(self, file_id: str, data: bytes, key: str) -> dict[str, Any]:
        params = {"supportsAllDrives": "true", "fields": FILE_FIELDS}
        url = f"{self.upload_base}/upload/drive/v3/files/{file_id}"
        if len(data) <= MULTIPART_MAX:  # a media update is idempotent: the same bytes again are harmless
            resp = await self.http.send(
                "PATCH",
                url,
                SCOPE_DRIVE,
                what=f"update of {file_id}",
                params={**params, "uploadType": "media"},
                content=data,
                headers={"Content-Type": PDF},
            )
            return resp.json()
        started = await self.http.send(
            "PATCH",
            url,
            SCOPE_DRIVE,
            what=f"update session for {file_id}",
            params={**params, "uploadType": "resumable"},
            headers={"X-Upload-Content-Type": PDF, "X-Upload-Content-Length": str(len(data))},
        )
        return await self._upload(started, data, file_id)

    async def _upload(self, started: Any, data: bytes, what: str) -> dict[str, Any]:
        session = started.headers.get("Location") if not isinstance(started, dict) else None
        if not session:
            raise PermanentError(f"Drive's upload session for {what} came back without a Location")
        return await self.uploads.put(session, data, PDF, what=f"upload of {what}")

    # -- errors ---------------------------------------------------------------------------------
    def _explain(self, err: ApiError, where: str) -> str:
        who = self.principal or "the service account"
        root = (
            f"shared drive {self.root} (gdrive.shared_drive_id)"
            if self.shared_drive
            else f"folder {self.root} (gdrive.root_folder_id)"
        )
        if err.status == 404 and err.reason == "notFound":
            return (
                f"Drive, {where}: {who} cannot see the {root} ({err.message}): share it with {who} as "
                f"{'Content manager' if self.shared_drive else 'Editor'}, or correct the id"
            )
        if err.status == 403 and err.reason in ("insufficientFilePermissions", "forbidden", "cannotAddParent"):
            return (
                f"Drive, {where}: {who} may not write in the {root} ({err.message}): give {who} "
                f"{'Content manager' if self.shared_drive else 'Editor'} access there"
            )
        if err.status == 403 and err.reason == "insufficientPermissions":
            return (
                f"Drive, {where}: the token lacks the drive scope ({err.message}): grant "
                f"{SCOPE_DRIVE} to the service account's client ID in the Admin console (domain-wide delegation)"
            )
        if err.status == 403 and err.reason == "storageQuotaExceeded":
            return (
                f"Drive, {where}: {who} has no Drive storage ({err.message}): use a shared drive "
                "(gdrive.shared_drive_id) or a gdrive.subject with storage"
            )
        return f"Drive, {where}: {err}"
