"""Microsoft's own JavaScript validators, run with node in a subprocess.

The npm packages are installed once, at pinned versions, into a cache directory outside the
repository (``$REPORTBOT_NPM_DIR``, default ``~/.cache/reportbot-npm``) when they are missing;
that takes a few seconds and needs only the npm registry. Without node/npm the tests that need
them skip on a developer machine and fail under ``CI=true`` — a check CI skips protects nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import processes

# Pinned: a new validator release must not change a test's verdict silently.
NPM_PACKAGES: dict[str, str] = {
    "adaptivecards": "3.0.6",  # Microsoft's Adaptive Cards parser/renderer
    "@microsoft/app-manifest": "1.1.2",  # Teams app manifest schemas v1.0–v1.30 + validator
    "fs-extra": "11.4.1",  # required by @microsoft/app-manifest 1.1.2 but not declared by it
    "ajv": "8.20.0",  # JSON Schema validator, for the official Adaptive Card 1.5 schema
    "ajv-formats": "3.0.1",
    "markdown-it": "14.3.3",  # a CommonMark renderer, to check what card text would display
    "@microsoft/m365agentsplayground": "0.2.28",  # the Microsoft 365 Agents Playground (tests/bot/test_playground.py)
}

HERE = Path(__file__).resolve().parent


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: this check must run)")
    pytest.skip(reason)


def npm_dir() -> Path:
    if os.environ.get("REPORTBOT_NPM_DIR"):
        return Path(os.environ["REPORTBOT_NPM_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "reportbot-npm"


def _installed_version(modules: Path, name: str) -> str | None:
    try:
        return json.loads((modules / name / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_node_modules() -> Path:
    """The ``node_modules`` directory holding :data:`NPM_PACKAGES`, installing what is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are needed to run Microsoft's validators")
    root = npm_dir()
    root.mkdir(parents=True, exist_ok=True)
    modules = root / "node_modules"
    with open(root / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes install once
        missing = [f"{n}@{v}" for n, v in NPM_PACKAGES.items() if _installed_version(modules, n) != v]
        if missing:
            try:
                processes.run(
                    [
                        npm,
                        "install",
                        "--prefix",
                        str(root),
                        "--save-exact",
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                        *missing,
                    ],
                    text=True,
                    timeout=600,
                ).check_returncode()
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
                detail = getattr(err, "stderr", "") or ""
                unavailable(f"npm install {' '.join(missing)} failed: {detail.strip()[-500:]}")
    return modules


def run_node(script: str, payload: Any, modules: Path) -> Any:
    """Run ``tests/<...>/<script>`` with ``payload`` as JSON on stdin; return its JSON stdout."""
    node = shutil.which("node")
    assert node is not None
    proc = processes.run(
        [node, str(script)],
        input=json.dumps(payload),
        text=True,
        timeout=300,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    if proc.returncode != 0:
        raise AssertionError(f"node {Path(script).name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    return ensure_node_modules()
