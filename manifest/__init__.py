"""The Teams app package: manifest (schema 1.25+), icons, zip builder."""

from manifest.builder import (
    PLACEHOLDER_APP_ID,
    RSC_PERMISSIONS,
    build_manifest,
    build_package,
    sandbox_manifest,
)

__all__ = ["PLACEHOLDER_APP_ID", "RSC_PERMISSIONS", "build_manifest", "build_package", "sandbox_manifest"]
