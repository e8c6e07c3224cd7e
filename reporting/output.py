"""Writing report files atomically: a temp file in the same folder, fsync, then rename.

An interrupted run leaves at most a ``.tmp`` file, never a truncated PDF under the final name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def report_paths(
    out: Path, code: str, period_end: str, word: str = "weekly", *, variant: str = "executive"
) -> dict[str, Path]:
    """``OUT/<CODE>/<CODE>-<word>-<period_end>.{md,pdf,json}``; ``word`` is the period's
    (:attr:`reporting.models.Period.file_word`: weekly, fortnightly, 30day, monthly); the
    technical variant adds ``-technical`` before the extension's dot (shared/design.md, "Output
    files")."""
    suffix = "" if variant == "executive" else f"-{variant}"
    base = out / code / f"{code}-{word}-{period_end}{suffix}"
    return {ext: base.with_suffix(f".{ext}") for ext in ("md", "pdf", "json")}
