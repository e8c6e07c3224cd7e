"""Test doubles shared by the delivery tests (Graph, Google, Teams pacing)."""

from __future__ import annotations


def pdf_of(size: int, seed: bytes = b"acme") -> bytes:
    """``size`` bytes that start like a PDF (``seed`` makes two of them differ)."""
    head = b"%PDF-1.7 " + seed + b"\n"
    return head + (bytes(range(251)) * (size // 251 + 1))[: size - len(head)]


class FakeClock:
    """A backend's monotonic clock and sleep: sleeping advances time, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds
