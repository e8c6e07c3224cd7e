"""SharePoint/OneDrive files over Graph: the archive site's document library, folders created
as needed, and files written with ``conflictBehavior=replace`` (one PUT up to
:data:`SIMPLE_UPLOAD_MAX`, else an upload session) — a repeated step replaces its own file,
never adds ``name 1.pdf``. Used for the archive and for the files of a customer channel."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from kiota_abstractions.api_error import APIError
from msgraph import GraphServiceClient
from msgraph.generated.drives.item.items.item.create_upload_session.create_upload_session_post_request_body import (
    CreateUploadSessionPostRequestBody as DriveUploadSessionBody,
)
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.drive_item_uploadable_properties import DriveItemUploadableProperties
from msgraph.generated.models.folder import Folder

from bot.delivery import PermanentError
from bot.graph.client import GraphCalls, GraphUnavailable
from bot.graph.upload_session import UploadSessions

SIMPLE_UPLOAD_MAX = 4 * 1024 * 1024  # drive files up to this are one PUT; larger ones an upload session


class Drives:
    """Drive items through ``client``: ``site`` (``host:/sites/path`` or a site id) and
    ``library`` name the archive's document library; ``base_url`` is the client's base URL
    (the by-name addresses are built from it). Folder ids and the library's drive id are
    remembered for the backend's lifetime."""

    def __init__(
        self,
        client: GraphServiceClient,
        calls: GraphCalls,
        uploads: UploadSessions,
        *,
        base_url: str,
        site: str | None,
        library: str,
    ) -> None:
        self.client, self.calls, self.uploads = client, calls, uploads
        self.base_url, self.site, self.library = base_url, site, library
        self._drive_id: str | None = None
        self._folders: dict[tuple[str, str], str] = {}  # (drive, "a/b/2026") -> item id

    async def archive_drive(self) -> str:
        """The drive id of the archive library (``site``'s library named ``library``)."""
        if self._drive_id is not None:
            return self._drive_id
        if not self.site:
            raise PermanentError("[graph] sharepoint_site is not configured")
        call = self.calls.call
        if ":/" in self.site or "," not in self.site:  # "host:/sites/path" (or a bare host name)
            host, _, path = self.site.partition(":")
            url = f"{self.base_url}/sites/{quote(host, safe='')}"
            if path.strip("/"):
                url += f":{quote(path, safe='/')}"
            site = await call(f"site {self.site}", self.client.sites.by_site_id(host).with_url(url).get)
        else:  # a site id ("host,siteCollectionId,webId")
            site = await call(f"site {self.site}", self.client.sites.by_site_id(self.site).get)
        if site is None or not site.id:
            raise PermanentError(f"site {self.site} was not found")
        page = await call(f"libraries of {self.site}", self.client.sites.by_site_id(site.id).drives.get)
        while page is not None:
            for d in page.value or []:
                if d.id and (d.name or "").casefold() == self.library.casefold():
                    self._drive_id = d.id
                    return d.id
            link = page.odata_next_link
            if not link:
                break
            page = await call("libraries (next page)", self.client.sites.by_site_id(site.id).drives.with_url(link).get)
        raise PermanentError(f"site {self.site} has no document library named {self.library!r}")

    async def ensure_path(self, drive: str, parts: list[str]) -> str:
        """The id of folder ``parts`` (from the drive's root), each level created as needed."""
        parent = "root"
        for depth in range(len(parts)):
            parent = await self.ensure_folder(drive, parent, parts[: depth + 1])
        return parent

    def _item(self, drive: str, parent: str) -> Any:
        return self.client.drives.by_drive_id(drive).items.by_drive_item_id(parent)

    def _by_path(self, drive: str, parent: str, name: str, suffix: str = "") -> str:
        """``/drives/{d}/items/{parent-id}:/{name}:{suffix}`` — a child addressed by its parent's
        id and its own (quoted) name, never a path from the root (research §7/§8)."""
        return (
            f"{self.base_url}/drives/{quote(drive, safe='!')}/items/{quote(parent, safe='')}"
            f":/{quote(name, safe='')}:{suffix}"
        )

    async def ensure_folder(self, drive: str, parent: str, parts: list[str]) -> str:
        """The id of folder ``parts`` (``parent`` holds ``parts[:-1]``), created when missing:
        a GET by name first (the usual case: it exists), else a POST with conflictBehavior
        ``fail``, where 409 means someone made it meanwhile."""
        path = "/".join(parts)
        if (drive, path) in self._folders:
            return self._folders[(drive, path)]
        name, api = parts[-1], self._item(drive, parent)

        async def lookup() -> str | None:
            return await self.find_folder(drive, parent, parts)

        async def create() -> str | None:
            new = DriveItem(name=name, folder=Folder(), additional_data={"@microsoft.graph.conflictBehavior": "fail"})
            try:
                created = await api.children.post(new)
            except APIError as err:
                if err.response_status_code == 409:  # nameAlreadyExists
                    return await lookup()
                raise
            return created.id if created else None

        folder_id = await lookup() or await self.calls.call(f"create folder {path}", create, recheck=lookup)
        if not folder_id:
            raise GraphUnavailable(f"the folder {path} could not be created or found")
        self._folders[(drive, path)] = folder_id
        return str(folder_id)

    async def find_folder(self, drive: str, parent: str, parts: list[str]) -> str | None:
        """The id of folder ``parts`` (``parent`` holds ``parts[:-1]``), or None when it does not
        exist: ``GET /drives/{d}/items/{parent-id}:/{name}:``."""
        path, name = "/".join(parts), parts[-1]
        api = self._item(drive, parent)

        async def get() -> DriveItem | None:
            try:
                return await api.with_url(self._by_path(drive, parent, name)).get()
            except APIError as err:
                if err.response_status_code == 404:
                    return None
                raise

        item = await self.calls.call(f"folder {path}", get)
        if item is None:
            return None
        if not item.id or item.folder is None:
            raise PermanentError(f"{self.library}/{path} exists and is not a folder")
        return str(item.id)

    async def delete(self, drive: str, item_id: str, what: str) -> None:
        """``DELETE /drives/{d}/items/{id}`` (the item goes to the site's recycle bin)."""
        api = self._item(drive, item_id)
        await self.calls.call(f"delete of {what}", api.delete)

    async def upload(self, drive: str, parent: str, name: str, data: bytes) -> dict[str, Any]:
        """Write ``parent/name`` (replacing a previous version: never ``name 1.pdf``)."""
        if len(data) <= SIMPLE_UPLOAD_MAX:
            url = self._by_path(drive, parent, name, "/content?@microsoft.graph.conflictBehavior=replace")
            content = self._item(drive, parent).content.with_url(url)
            item = await self.calls.call(f"upload of {name}", lambda: content.put(data))
            return {"id": item.id, "webUrl": item.web_url} if item else {}
        body = DriveUploadSessionBody(
            item=DriveItemUploadableProperties(additional_data={"@microsoft.graph.conflictBehavior": "replace"})
        )
        url = self._by_path(drive, parent, name, "/createUploadSession")
        item = self._item
        session = await self.calls.call(
            f"upload session for {name}", lambda: item(drive, parent).create_upload_session.with_url(url).post(body)
        )
        if session is None or not session.upload_url:
            raise GraphUnavailable(f"the upload session for {name} has no uploadUrl")
        return await self.uploads.put_ranges(session.upload_url, data, what=f"upload of {name}", limiter=None)


_BAD_SEGMENT = re.compile(r'[\\:*?"<>|#%\x00-\x1f]')


def folder_parts(folder: str, key: str) -> list[str]:
    """``"Customers/ACME"`` -> ``["Customers", "ACME"]``; a segment SharePoint would refuse (or
    ``..``) is a configuration error, not something to rewrite silently."""
    parts = [p for p in folder.split("/") if p]
    for p in parts:
        if p in (".", "..") or _BAD_SEGMENT.search(p) or p != p.strip() or p.endswith("."):
            raise PermanentError(f"{key}: {p!r} is not a valid SharePoint folder name")
    return parts
