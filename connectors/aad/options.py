"""The keys of a source that signs in to Microsoft Entra ID (Defender, Sentinel)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from connectors.http import HttpOptions


class EntraOptions(HttpOptions):
    url_required = False  # Graph / ARM by default
    client_id: str | None = None  # the app registration; missing credentials: sections unavailable
    client_secret: SecretStr | None = None
    certificate_path: str | None = None
    certificate_password: SecretStr | None = None
    authority: str | None = None
    token_timeout_seconds: float | None = Field(default=None, gt=0)
    resource: str | None = None
