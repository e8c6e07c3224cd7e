"""Renamed-field drift, checked the same way for every connector (issue 13, must-show 1).

A connector test gives ``run(patch)``: it serves its vendor fixtures through the real client
(``httpx.MockTransport``), passing every JSON body through ``patch(label, body)`` first, and
returns every section the connector computes from them. ``records`` says where the records sit
in each labelled body. For each field path present in those records (``priority.name``, ``_info``,
...) the field is renamed in every record of that body in turn — what an API version that renames
a field does — and the outcome must be one of:

- a ``SourceDataError`` whose message names the field: the section is unavailable (the collector
  turns it into ``status = "unavailable"`` with that reason), never numbers; or
- exactly the numbers of the untouched fixtures: the connector does not read that field.

Anything else — other numbers, another exception — fails. And every field the connector
documents as read (``documented``) must give the error.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from connectors.base import SourceDataError

Patch = Callable[[str, Any], Any]
Run = Callable[[Patch], Awaitable[Any]]
SUFFIX = "_v2"


def field_paths(records: Iterable[Any], prefix: str = "") -> set[str]:
    """Every dotted key path in the records (into nested objects and lists of objects)."""
    out: set[str] = set()
    for r in records:
        if isinstance(r, list):
            out |= field_paths(r, prefix)
        if not isinstance(r, dict):
            continue
        for k, v in r.items():
            path = f"{prefix}{k}"
            out.add(path)
            if isinstance(v, dict):
                out |= field_paths([v], path + ".")
            elif isinstance(v, list):
                out |= field_paths(v, path + ".")
    return out


def rename(records: Iterable[Any], path: str) -> None:
    """Rename the last key of ``path`` to ``<key>_v2`` in every record that has it, in place."""
    head, _, rest = path.partition(".")
    for r in records:
        if isinstance(r, list):
            rename(r, path)
        if not isinstance(r, dict) or head not in r:
            continue
        if rest:
            v = r[head]
            rename(v if isinstance(v, list) else [v], rest)
        else:
            r[head + SUFFIX] = r.pop(head)


async def check_renamed_fields(
    run: Run,
    records: dict[str, Callable[[Any], list[Any]]],
    documented: dict[str, Iterable[str]],
    ignore: Iterable[str] = (),
) -> dict[str, str]:
    """Rename every field of every labelled body in turn; returns ``{"label field": outcome}``
    with outcome "unavailable" or "not read". ``ignore`` lists "label field" pairs that need not
    be checked (record ids that only key the fixture's own routes, say)."""
    bodies: dict[str, Any] = {}

    def capture(label: str, body: Any) -> Any:
        bodies.setdefault(label, copy.deepcopy(body))
        return body

    baseline = await run(capture)
    missing = set(records) - set(bodies)
    assert not missing, f"the run never served {sorted(missing)}"
    outcomes: dict[str, str] = {}
    skip = set(ignore)
    for label, pick in records.items():
        paths = field_paths(pick(bodies[label]))
        assert paths, f"{label}: no records in the fixture"
        for path in sorted(paths):
            key = f"{label} {path}"
            if key in skip:
                continue

            def patch(
                lbl: str, body: Any, label: str = label, path: str = path, pick: Callable[[Any], list[Any]] = pick
            ) -> Any:
                if lbl != label:
                    return body
                body = copy.deepcopy(body)
                rename(pick(body), path)
                return body

            try:
                got = await run(patch)
            except SourceDataError as err:
                leaf = path.rsplit(".", 1)[-1]
                assert leaf in str(err) or path in str(err), f"{key}: the error does not name the field: {err}"
                outcomes[key] = "unavailable"
                continue
            assert got == baseline, f"{key} renamed gave other numbers:\n{got}\n!=\n{baseline}"
            outcomes[key] = "not read"
    for label, fields in documented.items():
        for f in fields:
            got = outcomes.get(f"{label} {f}", "no outcome (not in the fixture)")
            assert got == "unavailable", f"{label} {f}: documented as read, but renaming it gave {got}"
    return outcomes
