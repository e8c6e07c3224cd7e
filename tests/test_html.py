"""The report as a web page (``reporting.html``), opened in a real browser.

Debian's Chromium, headless, loads ACME's page from a loopback server with its network log on:
the page makes no request beyond itself (no font, no script, no image from anywhere), its text
says what the PDF says (the summary, every finding, every outage, the figures), its charts are
there as SVG, and hostile vendor text stays text. ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from reporting import fmt, snapshot
from reporting.html import CSP, render_html
from reporting.models import Branding, Report
from reporting.pdf import render_pdf
from tests.conftest import load_json
from tests.test_pdf_scripts import _pdftotext

BRANDING = Branding("Northwind Managed Services", "#1F4E79")
HOSTILE = '<img src="https://tracker.example/x.png"><script>fetch("https://evil.example")</script> [x](javascript:1)'


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is needed (apt-get install chromium); .ci/run installs it"
    return exe


class Pages(ThreadingHTTPServer):
    """A loopback server of fixed pages that records every path asked for."""

    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages
        self.asked: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.asked.append(self.path)
                page = server.pages.get(self.path)
                body = (page or "not found").encode()
                self.send_response(200 if page else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                if self.path != "/leaky.html":  # the control page goes without our policy
                    self.send_header("Content-Security-Policy", CSP)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Quiet: the test reads ``Pages.asked`` instead of http.server's stderr lines."""

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def pages() -> Iterator[Pages]:
    server = Pages({})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def browse(url: str, tmp: Path, *extra: str) -> tuple[str, list[str]]:
    """(the DOM after load, every URL the page asked for), Chromium headless.

    The page's own requests are the network log's URL requests whose initiator is the page's
    origin (Chromium's background requests have none). No host name resolves but 127.0.0.1, so
    nothing of the browser's own leaves the machine either."""
    netlog = tmp / "net.json"
    profile = tmp / "profile"
    done = subprocess.run(  # noqa: S603 - our fixed arguments
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--metrics-recording-only",
            "--disable-features=NetworkTimeServiceQuerying,Translate,OptimizationHints,MediaRouter",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}",
            f"--log-net-log={netlog}",
            "--net-log-capture-mode=Default",
            *extra,
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=90,
        check=True,
    )
    log = json.loads(netlog.read_text(errors="replace"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    origin = "/".join(url.split("/")[:3])
    asked = {
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and e.get("params", {}).get("initiator") == origin
    }
    return done.stdout.decode("utf-8"), sorted(asked)


def text_of(dom: str) -> str:
    body = re.sub(r"<(style|svg)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def acme(demo_out: Path) -> Report:
    return snapshot.from_dict(load_json(demo_out, "ACME"))


def test_the_page_loads_nothing_and_says_what_the_pdf_says(acme: Report, pages: Pages, tmp_path: Path) -> None:
    page = render_html(acme, BRANDING)
    pages.pages["/acme.html"] = page
    dom, urls = browse(f"{pages.base}/acme.html", tmp_path)
    assert set(urls) <= {f"{pages.base}/favicon.ico"}, urls  # the page asked for nothing (the browser's icon aside)
    assert set(pages.asked) <= {"/acme.html", "/favicon.ico"}, pages.asked
    assert dom.count("<svg") == 4  # uptime trend and per site, ticket trend, Secure Score trend

    shown = text_of(dom)
    pdf = flat(_pdftotext(render_pdf(acme, BRANDING)))
    expected = [
        *acme.summary,
        *(f.message for f in acme.flags if f.severity in ("high", "medium")),
        fmt.pct(acme.sections["uptime"].data.overall_pct),  # type: ignore[union-attr]
        "Week of Mon 9 Nov – Sun 15 Nov 2026",
        "Acme Manufacturing",
    ]
    for o in acme.sections["uptime"].data.outages:  # type: ignore[union-attr]
        expected.append(o.site)
    for words in expected:
        assert flat(words) in shown, words
        assert flat(words) in pdf, words  # the same words in the PDF


def test_hostile_vendor_text_is_text(acme: Report, pages: Pages, tmp_path: Path) -> None:
    up = acme.sections["uptime"]
    groups = up.data.by_site  # type: ignore[union-attr]
    evil = replace(groups[0], name=HOSTILE)
    report = replace(
        acme, sections={**acme.sections, "uptime": replace(up, data=replace(up.data, by_site=(evil, *groups[1:])))}
    )
    page = render_html(report, BRANDING)
    assert "<script" not in page and "<img src=" not in page and 'href="javascript' not in page
    assert f'content="{markupsafe.escape(CSP)}"' in page
    pages.pages["/evil.html"] = page
    dom, urls = browse(f"{pages.base}/evil.html", tmp_path)
    assert set(urls) <= {f"{pages.base}/favicon.ico"}, urls
    assert "fetch(" in text_of(dom)  # shown as the text it is


def test_the_network_log_would_show_a_page_fetching(pages: Pages, tmp_path: Path) -> None:
    """The control: a page (without our policy) that loads an image from elsewhere is caught."""
    pages.pages["/leaky.html"] = '<html><body><img src="http://tracker.example/x.png">hi</body></html>'
    _, urls = browse(f"{pages.base}/leaky.html", tmp_path)
    assert "http://tracker.example/x.png" in urls


def test_the_page_is_one_file(acme: Report) -> None:
    page = render_html(acme, BRANDING)
    assert not re.search(r'(src|href)="(?!data:|#)', page), "every reference is inline"
    assert "@@chart" not in page and page.startswith("<!DOCTYPE html>")
