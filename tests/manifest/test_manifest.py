"""The Teams app manifest and package, checked with Microsoft's validator and by reading the PNGs."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from manifest import PLACEHOLDER_APP_ID, RSC_PERMISSIONS, build_manifest, build_package, sandbox_manifest
from tests.cards.nodetools import run_node

VALIDATE = Path(__file__).with_name("validate_manifest.js")
APP_ID = "6f1c2b9e-3d4a-4e5f-8a7b-9c0d1e2f3a4b"


def configured(**kw: Any) -> dict[str, Any]:
    return build_manifest(APP_ID, "reportbot", "1.4.0", ["reportbot.northwind.example"], **kw)


# ---- Microsoft's validator ------------------------------------------------------------------


@pytest.fixture(scope="module")
def verdicts(node_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One validator run (node start-up and schema compilation are the slow part) over the
    manifests we build and over deliberately broken ones."""
    package = build_package(configured(), tmp_path_factory.mktemp("pkg") / "app.zip")
    with zipfile.ZipFile(package) as zf:
        packaged = json.loads(zf.read("manifest.json"))
    good = configured()
    manifests = {
        "good/sandbox": sandbox_manifest(),
        "good/packaged": packaged,
        "good/v1.30": configured(manifest_version="1.30"),
        "bad/channel-features": {**good, "supportsChannelFeatures": "tier2"},
        "bad/scope": {**good, "bots": [{**good["bots"][0], "scopes": ["team", "channel"]}]},
        "bad/missing-developer": {k: v for k, v in good.items() if k != "developer"},
        "bad/rsc-type": {
            **good,
            "authorization": {"permissions": {"resourceSpecific": [{"name": "X", "type": "App"}]}},
        },
    }
    result: dict[str, list[str]] = run_node(str(VALIDATE), manifests, node_modules)
    return result


def test_manifests_pass_the_official_schema(verdicts: dict[str, list[str]]) -> None:
    good = {name: errors for name, errors in verdicts.items() if name.startswith("good/")}
    assert good == {name: [] for name in good}


def test_validator_is_not_vacuous(verdicts: dict[str, list[str]]) -> None:
    """The same validator rejects what Teams would reject, so a pass above means something."""
    bad = {name: errors for name, errors in verdicts.items() if name.startswith("bad/")}
    assert len(bad) == 4 and all(bad.values()), bad


# ---- what the manifest says -----------------------------------------------------------------


def test_schema_url_matches_manifest_version() -> None:
    m = configured(manifest_version="1.30")
    assert m["manifestVersion"] == "1.30"
    assert m["$schema"] == "https://developer.microsoft.com/json-schemas/teams/v1.30/MicrosoftTeams.schema.json"
    assert sandbox_manifest()["manifestVersion"] == "1.25"


def test_bot_in_team_and_personal_scope_with_commands() -> None:
    (bot,) = configured()["bots"]
    assert bot["botId"] == APP_ID
    assert bot["scopes"] == ["team", "personal"]
    (commands,) = bot["commandLists"]
    assert commands["scopes"] == ["team", "personal"]
    assert [c["title"] for c in commands["commands"]] == ["run", "status", "help"]


def test_shared_channels_and_rsc() -> None:
    m = configured()
    assert m["supportsChannelFeatures"] == "tier1"
    assert m["webApplicationInfo"]["id"] == APP_ID
    rsc = m["authorization"]["permissions"]["resourceSpecific"]
    assert rsc == [
        {"name": "TeamsTab.Create.Group", "type": "Application"},
        {"name": "TeamsTab.ReadWrite.Group", "type": "Application"},
        {"name": "ChannelMessage.Read.Group", "type": "Application"},
        {"name": "File.Read.Group", "type": "Application"},
    ]
    assert all(len(why) > 40 for _, why in RSC_PERMISSIONS)  # each one justified


def test_sandbox_manifest_uses_placeholder_ids() -> None:
    m = sandbox_manifest()
    assert m["id"] == m["bots"][0]["botId"] == m["webApplicationInfo"]["id"] == PLACEHOLDER_APP_ID
    assert m["developer"]["websiteUrl"] == "https://reportbot.invalid/"


def test_configured_manifest_fills_ids_and_domains() -> None:
    m = build_manifest(
        APP_ID,
        "reportbot",
        "2.0.1",
        ["bot.example.com", "bot.example.com"],
        teams_app_id=PLACEHOLDER_APP_ID.replace("0", "a"),
    )
    assert m["id"] == "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
    assert m["bots"][0]["botId"] == APP_ID
    assert m["validDomains"] == ["bot.example.com"]
    assert m["developer"]["privacyUrl"] == "https://bot.example.com/privacy"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"app_id": "not-a-guid"}, "botId"),
        ({"version": "1.0"}, "version"),
        ({"valid_domains": ["https://bot.example.com/x"]}, "validDomains"),
        ({"manifest_version": "1.24"}, "manifestVersion"),
        ({"bot_name": "x" * 31}, "name.short"),
        ({"accent_color": "blue"}, "accentColor"),
        ({"website_url": "http://insecure.example"}, "websiteUrl"),
    ],
)
def test_refuses_what_teams_would_refuse(kw: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"app_id": APP_ID, "bot_name": "reportbot", "version": "1.0.0", "valid_domains": ()}
    args.update(kw)
    with pytest.raises(ValueError, match=field):
        build_manifest(**args)


# ---- the package ----------------------------------------------------------------------------


def read_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, colour type, rows of raw pixel bytes) — a minimal PNG decoder for 8-bit
    non-interlaced images: chunk walk with CRC check, IHDR, zlib, the five row filters."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert depth == 8 and interlace == 0
    bpp = {6: 4, 2: 3}[ctype]
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytes(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pred = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            line[i] = (line[i] + (0, a, b, (a + b) // 2, pred)[f]) & 0xFF
        rows.append(bytes(line))
        prev = bytes(line)
    return width, height, ctype, rows


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(configured(), tmp_path_factory.mktemp("pkg") / "reportbot.zip")


def test_package_holds_manifest_and_icons_at_the_root(package: Path) -> None:
    with zipfile.ZipFile(package) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        assert json.loads(zf.read("manifest.json")) == configured()


def test_color_icon_is_192_square_full_colour(package: Path) -> None:
    with zipfile.ZipFile(package) as zf:
        w, h, ctype, rows = read_png(zf.read("color.png"))
    assert (w, h) == (192, 192)
    pixels = {row[i : i + 4] for row in rows for i in range(0, len(row), 4)}
    assert len(pixels) > 2  # a picture, not a flat square
    assert (0x1F, 0x4E, 0x79, 255) in {tuple(p) for p in pixels}  # the accent colour


def test_outline_icon_is_32_square_white_on_transparent(package: Path) -> None:
    with zipfile.ZipFile(package) as zf:
        w, h, ctype, rows = read_png(zf.read("outline.png"))
    assert (w, h, ctype) == (32, 32, 6)  # RGBA: it has an alpha channel
    pixels = [row[i : i + 4] for row in rows for i in range(0, len(row), 4)]
    assert all(p[:3] == b"\xff\xff\xff" for p in pixels if p[3]), "every visible pixel is white"
    assert sum(1 for p in pixels if p[3] == 0) > 32 * 32 // 2, "mostly transparent"
    assert sum(1 for p in pixels if p[3] == 255) > 50, "a visible glyph"
    assert pixels[0][3] == 0  # corner: transparent background


def test_package_is_reproducible(package: Path, tmp_path: Path) -> None:
    again = build_package(configured(), tmp_path / "again.zip")
    assert again.read_bytes() == package.read_bytes()


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = {**configured(), "icons": {"color": "c.png", "outline": "o.png"}}
    with pytest.raises(ValueError, match="icons"):
        build_package(bad, tmp_path / "app.zip")
    assert list(tmp_path.iterdir()) == []
