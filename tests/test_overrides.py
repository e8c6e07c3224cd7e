"""The admins' report settings as data: every address checked (no display name, no header
injection), at most 50 per list, a form parsed onto the current settings, and the change log's diff."""

from __future__ import annotations

import pytest

from reporting.overrides import (
    MAX_RECIPIENTS,
    CustomerSettings,
    ReportSettings,
    SettingsInvalid,
    check_address,
    diff,
    parse_addresses,
    parse_form,
)

CODES = ["ACME", "GLOBEX"]


@pytest.mark.parametrize(
    "value",
    [
        "ceo@acme.example",
        "first.last+reports@sub.acme.example",
        "o'brien@acme.co.uk",
    ],
)
def test_plain_addresses_are_accepted(value: str) -> None:
    assert check_address(value, "customers.ACME.recipients.executive") == value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("Evil <evil@attacker.example>", "not a plain email address"),
        ('"Boss" evil@attacker.example', "not a plain email address"),
        ("ceo@acme.example\r\nBcc: all@attacker.example", "control or invisible character"),
        ("ceo@acme.example\nBcc:x@y.example", "control or invisible character"),
        ("ceo\u202e@acme.example", "control or invisible character"),
        ("bad@@acme.example", "not a plain email address"),
        ("no-at-sign.example", "not a plain email address"),
        ("a@localhost", "not a plain email address"),
        ("a@[127.0.0.1]", "not a plain email address"),
        (".dot@acme.example", "not a plain email address"),
        ("a..b@acme.example", "not a plain email address"),
        ("(comment)a@acme.example", "not a plain email address"),
        ("x" * 65 + "@acme.example", "local part longer than 64"),
    ],
)
def test_bad_addresses_are_refused_naming_the_field_and_the_value(value: str, why: str) -> None:
    with pytest.raises(SettingsInvalid) as err:
        check_address(value, "customers.ACME.recipients.executive")
    [problem] = err.value.problems
    assert problem.startswith("customers.ACME.recipients.executive: ") and why in problem
    assert "\r" not in problem and "\n" not in problem and "\u202e" not in problem  # neutralised


def test_lists_split_on_commas_semicolons_and_lines_dedupe_and_stop_at_fifty() -> None:
    got = parse_addresses("a@x.example, b@x.example;\nA@X.example\n\n c@x.example", "owners")
    assert got == ("a@x.example", "b@x.example", "c@x.example")
    fifty = "\n".join(f"u{i}@x.example" for i in range(MAX_RECIPIENTS))
    assert len(parse_addresses(fifty, "owners")) == MAX_RECIPIENTS
    with pytest.raises(SettingsInvalid) as err:
        parse_addresses(fifty + "\nu50@x.example", "internal_reports.owners")
    assert err.value.problems == ["internal_reports.owners: 51 addresses; at most 50"]


def test_a_display_name_split_by_spaces_is_refused_piece_by_piece() -> None:
    with pytest.raises(SettingsInvalid) as err:
        parse_addresses("Evil Boss <boss@acme.example>", "customers.ACME.recipients.executive")
    assert any("'Evil'" in p for p in err.value.problems)
    assert any("'<boss@acme.example>'" in p for p in err.value.problems)


def test_the_form_replaces_only_what_it_carries() -> None:
    current = ReportSettings(version=2, msp_name="Old", customers={"GLOBEX": CustomerSettings(enabled=False)})
    form = {
        "msp_name": "  Contoso Managed  ",
        "customers.ACME.enabled": "true",
        "customers.ACME.period": "month",
        "customers.ACME.executive": "ceo@acme.example\nit@acme.example",
        "customers.ACME.technical": "",
        "internal_reports.owners": "owner@msp.example",
        "customers.NOPE.enabled": "false",  # not configured: ignored
    }
    new = parse_form(form, current, CODES)
    assert new.msp_name == "Contoso Managed"
    assert new.customer("ACME") == CustomerSettings(True, ("ceo@acme.example", "it@acme.example"), (), "month")
    assert new.customer("GLOBEX").enabled is False  # not on the form: kept
    assert new.owners == ("owner@msp.example",) and new.managers == ()
    assert "NOPE" not in new.customers
    changes = diff(current, new)
    assert changes["msp_name"] == {"from": "Old", "to": "Contoso Managed"}
    assert changes["customers.ACME.period"] == {"from": "", "to": "month"}  # "": the file's
    assert changes["customers.ACME.recipients.executive"]["to"] == ["ceo@acme.example", "it@acme.example"]
    assert "customers.GLOBEX.enabled" not in changes
    assert ReportSettings.from_json(new.to_json(), 3) == ReportSettings(
        3, new.msp_name, new.customers, new.owners, new.managers
    )


def test_every_problem_of_a_form_is_reported_and_nothing_is_taken() -> None:
    form = {
        "msp_name": "Name\u202e",
        "customers.ACME.period": "yearly",
        "customers.ACME.executive": "\n".join(f"u{i}@x.example" for i in range(51)),
        "customers.GLOBEX.technical": "ok@x.example, bad@",
    }
    with pytest.raises(SettingsInvalid) as err:
        parse_form(form, ReportSettings(), CODES)
    text = "\n".join(err.value.problems)
    assert "msp_name: " in text and "control or invisible" in text
    assert "customers.ACME.period: 'yearly' is not one of week, fortnight, 30d, month" in text
    assert "customers.ACME.recipients.executive: 51 addresses; at most 50" in text
    assert "customers.GLOBEX.recipients.technical: 'bad@' is not a plain email address" in text


def test_an_empty_period_keeps_the_files_and_round_trips() -> None:
    saved = parse_form({"customers.ACME.period": "month"}, ReportSettings(), CODES)
    assert saved.customer("ACME").period == "month"
    back = ReportSettings.from_json(saved.to_json(), 1)
    assert back.customer("ACME").period == "month"
    cleared = parse_form({"customers.ACME.period": "file"}, back, CODES)  # the card's "As in the file"
    assert cleared.customer("ACME").period == ""
    assert parse_form({"customers.ACME.period": ""}, back, CODES).customer("ACME").period == ""
    assert "ACME" not in cleared.customers  # nothing left to override: the file's values hold
