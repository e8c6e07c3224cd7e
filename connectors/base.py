"""The connector side of the source protocol: the context connectors are built with, the
registry's factory type, and (re-exported from ``reporting.sources``, where the engine consumes
them) the protocol and the error tree every connector raises."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from reporting.config import SourceConfig
from reporting.sources import (
    Connector,
    ConnectorError,
    SourceAuthError,
    SourceDataError,
    SourceRecord,
    SourceUnavailable,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "Connector",
    "ConnectorContext",
    "ConnectorDefaults",
    "ConnectorError",
    "ConnectorFactory",
    "connector_shape",
    "SourceAuthError",
    "SourceDataError",
    "SourceRecord",
    "SourceUnavailable",
]


@dataclass
class ConnectorContext:
    """Shared resources handed to connector factories (one per batch).

    ``client_factory`` makes the ``httpx.AsyncClient`` of a source (tests inject a
    ``MockTransport`` here; default: ``connectors.http.new_client``). ``sleep`` is what retry
    back-off waits with (tests make it instant and record the waits).
    """

    sandbox: Any = None  # connectors.sandbox.dataset.SandboxDataset when the sandbox is configured
    client_factory: Callable[[SourceConfig], Any] | None = None
    sleep: Callable[[float], Awaitable[None]] | None = None
    # source name -> how many customers of the batch use it: a connector may then read for all of
    # them at once (one list query split by customer) instead of once per customer
    customers: Mapping[str, int] = field(default_factory=dict)

    @staticmethod
    def batch_sizes(customers: Iterable[Any]) -> dict[str, int]:
        """``customers`` (``CustomerConfig``s) -> source name -> customers using it."""
        out: dict[str, int] = {}
        for c in customers:
            for name in set(c.sources.values()):
                out[name] = out.get(name, 0) + 1
        return out


ConnectorFactory = Callable[[str, SourceConfig, ConnectorContext], Connector]


_SETUP_CALLS = ("fetch_section", "customer_records", "probe", "check_id")


class _HasRecords(Protocol):
    async def customer_records(self) -> list[SourceRecord]: ...


class ConnectorDefaults:
    """Base of every connector class: the protocol's two id look-ups for a connector that has
    nothing better. ``check_id`` looks the id up in ``customer_records``; ``accepts_id`` knows no
    other id form. A connector whose ``fetch_section`` accepts other forms (a name, a list of ids)
    overrides both, so that ``config check`` and the sweep agree with ``run``."""

    async def check_id(self: _HasRecords, cid: str) -> str | None:
        return next((r.name for r in await self.customer_records() if r.id == cid), None)

    def accepts_id(self, record: SourceRecord, cid: str) -> bool:
        return False


def connector_shape(cls: type[T]) -> type[T]:
    """The one connector shape, applied to every connector class (a ``ConnectorDefaults``):

    - the constructor never raises: a ``ConnectorError`` while setting up (a missing
      credential, an option that cannot work) is kept, and every call — ``fetch_section``,
      ``customer_records``, ``probe``, ``check_id`` — raises it again, so the sections are
      unavailable with that reason and ``serve`` still starts.

    The class must declare ``sections`` as a class attribute (known even when set-up failed).
    """
    assert isinstance(getattr(cls, "sections", None), frozenset), f"{cls.__name__}.sections must be a class attribute"
    assert issubclass(cls, ConnectorDefaults), f"{cls.__name__} must derive from connectors.base.ConnectorDefaults"
    init: Callable[..., None] = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, name: str, source: SourceConfig, ctx: ConnectorContext, *args: Any, **kw: Any) -> None:
        self._setup_error = None
        try:
            init(self, name, source, ctx, *args, **kw)
        except ConnectorError as err:
            self.name = name
            self._setup_error = err
            log.warning("sources.%s cannot be used: %s (its sections will be unavailable)", name, err)

    cls.__init__ = __init__  # type: ignore[method-assign, assignment]  # wrapping the constructor is the point

    for meth in _SETUP_CALLS:
        orig = getattr(cls, meth)

        async def guarded(self: Any, *args: Any, __orig: Any = orig, **kw: Any) -> Any:
            err = self._setup_error
            if err is not None:
                raise type(err)(err.system, str(err).removeprefix(f"{err.system}: "))
            return await __orig(self, *args, **kw)

        setattr(cls, meth, functools.wraps(orig)(guarded))

    close = cls.aclose  # type: ignore[attr-defined]  # any connector class: the Connector protocol has aclose

    async def aclose(self: Any) -> None:
        if self._setup_error is None:
            await close(self)

    cls.aclose = functools.wraps(close)(aclose)  # type: ignore[attr-defined]  # as above
    return cls
