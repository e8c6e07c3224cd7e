"""Run a section's independent reads concurrently, all or nothing.

``asyncio.gather`` leaves the other reads running when one fails: they would go on using a
connector that the collector is already closing (and a token source would open a new
credential after ``aclose``). :func:`all_or_nothing` cancels and awaits the rest, then raises
the first failure as it was (not wrapped in an ExceptionGroup, as ``TaskGroup`` would).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def all_or_nothing(*coros: Coroutine[Any, Any, Any]) -> list[Any]:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
