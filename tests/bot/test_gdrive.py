"""The Google Drive archive step against the loopback Google (``tests.bot.fake_google``)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.delivery import PermanentError
from bot.google.backend import GoogleDelivery
from bot.google.drive import DELIVERY_PROPERTY, FOLDER, MULTIPART_MAX, q_string
from reporting.config import Config
from tests.bot.doubles import FakeClock, pdf_of
from tests.bot.fake_google import FakeGoogle, parse_drive_query
from tests.bot.google_setup import ARCHIVIST, MB, key_file, make_config, parcel, setup_google

KEY = "reportbot:d1:archive"
NAME = "ACME-weekly-2026-11-16.pdf"


@pytest.fixture
def root(google: FakeGoogle) -> str:
    return setup_google(google)["root"]


@pytest.fixture
def config(google: FakeGoogle, tmp_path: Path, root: str) -> Config:
    return make_config(google, key_file(google, tmp_path), root=root)


@pytest.fixture
async def delivery(config: Config, clock: FakeClock) -> AsyncIterator[GoogleDelivery]:
    d = GoogleDelivery(config, clock=clock, sleep=clock.sleep, chunk=2 * MB)
    yield d
    await d.aclose()


def api(google: FakeGoogle) -> list[str]:
    return [
        f"{r.method} {r.path} {r.query.get('uploadType', '')}".strip() for r in google.requests if r.path != "/token"
    ]


def queries(google: FakeGoogle) -> list[str]:
    return [r.query["q"] for r in google.requests if r.method == "GET" and r.path == "/drive/v3/files"]


async def test_the_pdf_is_filed_in_dated_folders_created_as_needed(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config, root: str
) -> None:
    p = parcel(config)
    result = await delivery.archive(p, KEY)
    assert list(google.stored()) == [f"Report archive/Clients/Acme/2026/{NAME}"]
    f = google.stored()[f"Report archive/Clients/Acme/2026/{NAME}"]
    assert f.content == p.pdf and f.content.startswith(b"%PDF") and f.mime_type == "application/pdf"
    assert f.app_properties == {DELIVERY_PROPERTY: KEY} and len(f.revisions) == 1
    assert api(google) == [
        "GET /drive/v3/files",
        "POST /drive/v3/files",  # Clients: looked up, created
        "GET /drive/v3/files",
        "POST /drive/v3/files",  # Acme
        "GET /drive/v3/files",
        "POST /drive/v3/files",  # 2026
        "GET /drive/v3/files",
        "GET /drive/v3/files",  # the file: by its delivery id, then by name
        "POST /upload/drive/v3/files multipart",
    ]
    q = queries(google)
    assert q[0] == f"'{root}' in parents and name = 'Clients' and mimeType = '{FOLDER}' and trashed = false"
    assert q[3] == f"appProperties has {{ key='{DELIVERY_PROPERTY}' and value='{KEY}' }} and trashed = false"
    assert all(r.query.get("supportsAllDrives") == "true" for r in google.requests if r.path != "/token")
    assert result.detail == f"archived to Drive Clients/Acme/2026/{NAME}"
    assert result.url == f"https://drive.google.com/file/d/{f.id}/view?usp=drivesdk"
    assert {c["sub"] for c in google.token_requests} == {ARCHIVIST} and len(google.token_requests) == 1

    # the same step again (a restart): found by its delivery id, same bytes: nothing written
    google.requests.clear()
    again = await delivery.archive(p, KEY)
    assert api(google) == ["GET /drive/v3/files"] and again.detail.endswith("(already archived)")
    assert len(f.revisions) == 1

    # a re-delivery of the week (another draft, a corrected PDF): a new revision of the same file
    google.requests.clear()
    fixed = parcel(config, pdf=pdf_of(60_000, b"fixed"), draft="d2")
    redo = await delivery.archive(fixed, "reportbot:d2:archive")
    assert api(google) == [
        "GET /drive/v3/files",
        "GET /drive/v3/files",
        f"PATCH /upload/drive/v3/files/{f.id} media",
        f"PATCH /drive/v3/files/{f.id}",
    ]
    assert list(google.stored()) == [f"Report archive/Clients/Acme/2026/{NAME}"]  # never a second file
    assert [len(r) for r in f.revisions] == [50_000, 60_000] and f.content == fixed.pdf
    assert f.app_properties == {DELIVERY_PROPERTY: "reportbot:d2:archive"}
    assert redo.detail.endswith("(a new revision of the same file)")


async def test_a_shared_drive_is_searched_as_a_drive_corpus(
    google: FakeGoogle, tmp_path: Path, clock: FakeClock
) -> None:
    drive = setup_google(google, shared_drive=True)["root"]
    config = make_config(google, key_file(google, tmp_path), root=drive, shared_drive=True)
    d = GoogleDelivery(config, clock=clock, sleep=clock.sleep)
    try:
        await d.archive(parcel(config, "GLOBEX"), "reportbot:g1:archive")
    finally:
        await d.aclose()
    [(path, f)] = google.stored().items()
    assert path == "Customer reports/Clients/Globex/2026/GLOBEX-weekly-2026-11-16.pdf" and f.drive_id == drive
    lists = [r for r in google.requests if r.method == "GET" and r.path == "/drive/v3/files"]
    assert all(
        r.query["corpora"] == "drive" and r.query["driveId"] == drive and r.query["includeItemsFromAllDrives"] == "true"
        for r in lists
    )


async def test_every_page_is_read_and_the_oldest_of_two_same_named_folders_is_used(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config, root: str
) -> None:
    google.page_size_cap = 1
    first = google.add_folder("Clients", root)
    google.add_folder("Clients", root)  # someone made a second one meanwhile
    acme = google.add_folder("Acme", first)
    await delivery.archive(parcel(config), KEY)
    [f] = google.stored().values()
    assert google.files[google.files[f.parents[0]].parents[0]].id == acme
    pages = [r.query.get("pageToken") for r in google.requests if r.method == "GET" and "'Clients'" in r.query["q"]]
    assert pages == [None, "1"]


async def test_503_after_the_file_was_created_does_not_create_a_second(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    google.fail("POST", r"^/upload/drive/v3/files$", 503, after=True)
    await delivery.archive(parcel(config), KEY)
    assert len(google.stored()) == 1
    assert api(google)[-2:] == ["POST /upload/drive/v3/files multipart", "GET /drive/v3/files"]  # found by its id


async def test_a_large_pdf_goes_resumable_with_a_cut_chunk_for_create_and_update(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    big = pdf_of(MULTIPART_MAX + 2 * MB)  # 2 MB over the multipart limit
    google.cut_chunk(2, keep=512 * 1024)
    await delivery.archive(parcel(config, pdf=big), KEY)
    [f] = google.stored().values()
    assert f.content == big and f.app_properties == {DELIVERY_PROPERTY: KEY}
    ranges = [r.headers["content-range"] for r in google.requests if r.method == "PUT"]
    total = len(big)
    assert ranges[:4] == [
        f"bytes 0-{2 * MB - 1}/{total}",
        f"bytes {2 * MB}-{4 * MB - 1}/{total}",
        f"bytes */{total}",
        f"bytes {2 * MB + 512 * 1024}-{4 * MB + 512 * 1024 - 1}/{total}",
    ]
    assert "POST /upload/drive/v3/files resumable" in api(google)
    # a corrected large PDF: a resumable update of the same file
    google.requests.clear()
    bigger = pdf_of(MULTIPART_MAX + 2 * MB, b"v2")
    await delivery.archive(parcel(config, pdf=bigger, draft="d2"), "reportbot:d2:archive")
    assert f"PATCH /upload/drive/v3/files/{f.id} resumable" in api(google)
    assert len(google.stored()) == 1 and [hashlib.md5(r).hexdigest() for r in f.revisions] == [  # noqa: S324
        hashlib.md5(big).hexdigest(),
        hashlib.md5(bigger).hexdigest(),
    ]  # noqa: S324


async def test_a_root_folder_not_shared_is_one_actionable_line(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config, root: str
) -> None:
    google.access.clear()
    with pytest.raises(PermanentError) as err:
        await delivery.archive(parcel(config), KEY)
    text = str(err.value)
    assert "\n" not in text and len(text) < 300
    assert f"{ARCHIVIST} cannot see the folder {root} (gdrive.root_folder_id)" in text
    assert f"share it with {ARCHIVIST} as Editor" in text
    assert google.stored() == {}


async def test_read_only_access_says_to_make_it_editor(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config, root: str
) -> None:
    google.share(ARCHIVIST, root, "reader")
    with pytest.raises(
        PermanentError, match=f"{ARCHIVIST} may not write in the folder {root}.*give {ARCHIVIST} Editor access there"
    ):
        await delivery.archive(parcel(config), KEY)


async def test_an_invalid_drive_folder_is_a_configuration_error(
    google: FakeGoogle, tmp_path: Path, root: str, clock: FakeClock
) -> None:
    config = make_config(google, key_file(google, tmp_path), root=root, customers=("ACME",))
    bad = config.model_copy(
        update={"customers": (config.customer("ACME").model_copy(update={"drive_folder": "Clients/../Other"}),)}
    )
    d = GoogleDelivery(bad, clock=clock, sleep=clock.sleep)
    try:
        with pytest.raises(PermanentError, match=r"customers\[ACME\]\.drive_folder: '\.\.' is not a valid"):
            await d.archive(parcel(bad), KEY)
    finally:
        await d.aclose()
    assert google.requests == []


def test_query_strings_are_escaped_as_drive_parses_them() -> None:
    name = "O'Brien \\ Sons"
    q = f"name = {q_string(name)} and trashed = false"
    assert parse_drive_query(q) == [("name", (name,)), ("trashed", ("false",))]


async def test_a_lost_answer_to_the_last_chunk_leaves_one_file(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    big = pdf_of(MULTIPART_MAX + 2 * MB)
    google.fail("PUT", r"^/upload/drive/", 503, after=True, skip=3)
    await delivery.archive(parcel(config, pdf=big), KEY)
    [f] = google.stored().values()
    assert f.content == big
    ranges = [r.headers["content-range"] for r in google.requests if r.method == "PUT"]
    assert len(ranges) == 5 and ranges[-1] == f"bytes */{len(big)}"
