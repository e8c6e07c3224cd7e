"""The app icons, drawn in pure Python (zlib + struct PNG writer; no Pillow).

Teams wants ``color.png`` 192×192 in full colour and ``outline.png`` 32×32, white on a
transparent background. Both are generated from geometry, so they are deterministic (same bytes
every run) and follow the configured brand colour. The glyph is a report page with a rising
bar chart.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from functools import lru_cache

COLOR_SIZE = 192
OUTLINE_SIZE = 32
_SAMPLES = 4  # supersampling per axis, for anti-aliased edges

Shape = Callable[[float, float], bool]


def png_rgba(width: int, height: int, rgba: bytes) -> bytes:
    """Encode 8-bit RGBA pixels (row-major, ``width*height*4`` bytes) as a PNG."""
    if len(rgba) != width * height * 4:
        raise ValueError("pixel buffer does not match the size")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    stride = width * 4
    raw = b"".join(b"\x00" + rgba[y * stride : (y + 1) * stride] for y in range(height))  # filter 0 per row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit, colour type 6 = RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _rect(x0: float, y0: float, x1: float, y1: float, r: float = 0.0) -> Shape:
    """A (rounded) rectangle [x0, x1) × [y0, y1) in pixel units."""

    def inside(x: float, y: float) -> bool:
        if not (x0 <= x < x1 and y0 <= y < y1):
            return False
        cx = min(max(x, x0 + r), x1 - r)
        cy = min(max(y, y0 + r), y1 - r)
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r if r else True

    return inside


def _coverage(shapes: list[Shape], px: int, py: int) -> float:
    """Share of pixel (px, py) covered by any shape: exact 0/1 when the corners and the centre
    agree (the interior, most pixels), supersampled on edges."""
    probes = [
        any(s(x, y) for s in shapes)
        for x, y in ((px, py), (px + 0.999, py), (px, py + 0.999), (px + 0.999, py + 0.999), (px + 0.5, py + 0.5))
    ]
    if all(probes) or not any(probes):
        return 1.0 if probes[0] else 0.0
    n = _SAMPLES
    hits = sum(1 for i in range(n) for j in range(n) if any(s(px + (i + 0.5) / n, py + (j + 0.5) / n) for s in shapes))
    return hits / (n * n)


def _hex(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected a colour like #1F4E79, got {color!r}")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _bars(left: float, base: float, width: float, gap: float, heights: tuple[float, ...]) -> list[Shape]:
    return [
        _rect(left + i * (width + gap), base - h, left + i * (width + gap) + width, base) for i, h in enumerate(heights)
    ]


@lru_cache(maxsize=4)
def color_icon(brand_color: str = "#1F4E79") -> bytes:
    """192×192: brand-colour square, a white page, the bar chart and heading lines in the brand
    colour on the page."""
    s = COLOR_SIZE
    brand = _hex(brand_color)
    page = [_rect(48, 30, 144, 162, 10)]
    ink = _bars(64, 146, 18, 6, (28, 48, 72)) + [_rect(64, 48, 128, 56, 3), _rect(64, 62, 110, 70, 3)]
    out = bytearray()
    for y in range(s):
        for x in range(s):
            on_page = _coverage(page, x, y)
            on_ink = _coverage(ink, x, y)
            white = on_page * (1 - on_ink)
            out += bytes(round(c * (1 - white) + 255 * white) for c in brand) + b"\xff"
    return png_rgba(s, s, bytes(out))


@lru_cache(maxsize=1)
def outline_icon() -> bytes:
    """32×32: white page outline and bars on a fully transparent background."""
    s = OUTLINE_SIZE
    frame = [_rect(6, 3, 26, 5), _rect(6, 27, 26, 29), _rect(6, 3, 8, 29), _rect(24, 3, 26, 29)]
    shapes = frame + _bars(10, 24, 3, 2, (5, 9, 13))
    out = bytearray()
    for y in range(s):
        for x in range(s):
            out += b"\xff\xff\xff" + bytes([round(255 * _coverage(shapes, x, y))])
    return png_rgba(s, s, bytes(out))
