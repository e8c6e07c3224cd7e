from __future__ import annotations

from pathlib import Path

import pytest

from reporting.config import ConfigError, load_config, parse_config

DOCS = Path(__file__).resolve().parent.parent / "docs" / "example-config.toml"
ENV = {
    "REPORTBOT_APP_PASSWORD": "app-secret-value",
    "REPORTBOT_LINK_SECRET": "link-secret-value-0123456789abcdef",
    "ZABBIX_API_TOKEN": "zbx-secret-value",
    "PGPASSWORD": "x",
    "CW_PUBLIC_KEY": "cw-public",
    "CW_PRIVATE_KEY": "cw-private-value",
    "CW_CLIENT_ID": "cw-client",
}


def base(**customer: object) -> dict:
    c = {"code": "ACME", "name": "Acme", "ids": {"zabbix": "1"}, "sources": {"uptime": "zabbix"}}
    c.update(customer)
    return {"msp": {"name": "MSP"}, "sources": {"zabbix": {"type": "sandbox"}}, "customers": [c]}


def problems(data: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.toml", env=env or {})
    return info.value.problems


def test_example_config_is_valid_and_secrets_stay_secret() -> None:
    cfg = load_config(DOCS, env=ENV)
    assert cfg.customer("ACME").uptime_target_pct == 99.9
    assert cfg.sources["zabbix"].secret("api_token") == "zbx-secret-value"
    assert cfg.sources["connectwise"].secret("private_key") == "cw-private-value"
    shown = repr(cfg) + str(cfg.model_dump())
    assert "zbx-secret-value" not in shown and "app-secret-value" not in shown and "cw-private-value" not in shown


def test_missing_env_var_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DOCS, env={})
    text = str(info.value)
    assert f"{DOCS}: teams.app_password: environment variable REPORTBOT_APP_PASSWORD is not set" in text
    assert "sources.zabbix.api_token: environment variable ZABBIX_API_TOKEN is not set" in text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"customers": []}, "msp: required key is missing"),
        ({**base(), "msp": {"name": "M", "timezone": "Mars/Olympus"}}, "msp.timezone: unknown timezone 'Mars/Olympus'"),
        (base(code="acme"), "customers[0].code: must be"),
        (base(cto_email="not-an-address"), "customers[0].cto_email: is not an email address"),
        (
            base(account_engineer={"name": "Sam", "email": "sam at msp"}),
            "customers[0].account_engineer.email: is not an",
        ),
        (base(account_engineer={"name": "Sam\u202e"}), "customers[0].account_engineer.name: contains a control"),
        (base(account_engineer={"name": "Sam"}), "customers[0].account_engineer.email: required key is missing"),
        (
            base(sources={"uptime": "librenms"}),
            "customers[0].sources.uptime: no [sources.librenms] table is configured",
        ),
        (base(ids={}), "customers[0].ids.zabbix: ACME uses zabbix for uptime but has no id there"),
        (base(sources={"weather": "zabbix"}), "customers[0].sources: unknown section(s) weather"),
        (base(colour="red"), "customers[0].colour: unknown key"),
        ({**base(), "store": {"url": "mysql://x"}}, "store.url: must be sqlite:///FILE or postgresql://"),
    ],
)
def test_each_error_names_its_key(data: dict, expected: str) -> None:
    assert any(expected in p for p in problems(data)), problems(data)


def test_duplicate_codes() -> None:
    data = base()
    data["customers"].append(dict(data["customers"][0]))
    assert any("customers[1].code: duplicate customer code 'ACME'" in p for p in problems(data))


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[msp\nname=1")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)


def test_postgres_url_is_normalised() -> None:
    cfg = parse_config({**base(), "store": {"url": "postgresql://u:p@127.0.0.1/db"}}, env={})
    assert cfg.store.url == "postgresql+asyncpg://u:p@127.0.0.1/db"


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    """Azure's connection string (``postgres://...?sslmode=require``) works as written."""
    url = "postgres://rb:p@x.postgres.database.azure.com:5432/reportbot?sslmode=require&application_name=rb"
    cfg = parse_config({**base(), "store": {"url": url}}, env={})
    assert cfg.store.url == (
        "postgresql+asyncpg://rb:p@x.postgres.database.azure.com:5432/reportbot?ssl=require&application_name=rb"
    )
    with pytest.raises(ConfigError, match=r"store.url: .*sslmode='on': one of disable, allow, prefer, require"):
        parse_config({**base(), "store": {"url": "postgresql://h/db?sslmode=on"}}, env={})


# ---- connector options validated at load (issue 13, must-show 4) ----------------------------


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = DOCS.read_text()
    assert old in text, old
    path = tmp_path / "reportbot.toml"
    path.write_text(text.replace(old, new, 1))
    return path


BROKEN = {
    "typo": (
        'api_token = "${ZABBIX_API_TOKEN}"',
        'api_tokn = "${ZABBIX_API_TOKEN}"',
        "sources.zabbix.api_tokn: unknown key (did you mean api_token?)",
    ),
    "missing url": (
        'url = "https://zabbix.northwind.example/zabbix"\n',
        "",
        "sources.zabbix.url: required key is missing",
    ),
    "wrong type": (
        "[sources.connectwise]\n",
        '[sources.connectwise]\npage_size = "three"\n',
        "sources.connectwise.page_size: Input should be a valid integer",
    ),
    "unknown type": (
        'type = "zabbix"',
        'type = "zabix"',
        "sources.zabbix.type: no connector named 'zabix' (did you mean 'zabbix'?",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_source_table_is_one_line_naming_file_and_key(case: str, tmp_path: Path) -> None:
    from connectors.registry import OPTIONS

    old, new, expected = BROKEN[case]
    path = _with(tmp_path, old, new)
    load_config(DOCS, env=ENV, source_types=OPTIONS)  # the example itself is fine
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV, source_types=OPTIONS)
    assert len(info.value.problems) == 1, info.value.problems
    line = str(info.value)
    assert line.startswith(f"{path}: ") and expected in line, line


def test_a_customer_name_with_a_line_break_is_refused_at_load() -> None:
    data = base(name="Acme\r\nBcc: everyone@example.com")
    assert problems(data) == [
        "customers[0].name: contains a control character ('\\r'); names and addresses are one plain line"
    ]
    data = base(teams_channel="19:abc\u202e@thread")  # a bidi override
    assert problems(data)[0].startswith("customers[0].teams_channel: contains a control character")


def test_recipients_per_audience_are_read_and_checked_like_the_settings_card() -> None:
    cfg = load_config(DOCS, env=ENV)
    acme = cfg.customer("ACME")
    assert acme.recipients.executive == ("cto@acme.example", "ceo@acme.example")
    assert acme.recipients.technical == ("it-manager@acme.example",)
    ok = parse_config(base(recipients={"technical": ["IT@acme.example", "it@acme.example", "ops@acme.example"]}), "t")
    assert ok.customers[0].recipients.technical == ("IT@acme.example", "ops@acme.example")  # one per address
    assert ok.customers[0].recipients.executive == ()  # empty: cto_email / account_owner_email, as before
    fifty = [f"it{i}@acme.example" for i in range(50)]
    assert len(parse_config(base(recipients={"technical": fifty}), "t").customers[0].recipients.technical) == 50


@pytest.mark.parametrize(
    ("technical", "expected"),
    [
        (
            [f"it{i}@acme.example" for i in range(51)],
            "customers[0].recipients.technical: 51 addresses; at most 50",
        ),
        (
            ["it@acme.example", "it@acme"],
            "customers[0].recipients.technical[1]: 'it@acme' is not a plain email address",
        ),
        (
            ["IT Manager <it@acme.example>"],
            "customers[0].recipients.technical[0]: 'IT Manager <it@acme.example>' is not a plain email address",
        ),
        (
            ["it@acme.example\r\nBcc: everyone@example.com"],
            "customers[0].recipients.technical[0]: 'it@acme.example Bcc: everyone@example.com' contains a control",
        ),
        ("it@acme.example", 'customers[0].recipients.technical: must be a list of addresses, e.g. ["it@example.com"]'),
    ],
)
def test_a_51st_or_malformed_technical_recipient_is_refused_naming_the_file_and_key(
    technical: object, expected: str, tmp_path: Path
) -> None:
    import json

    example = (
        'recipients = { executive = ["cto@acme.example", "ceo@acme.example"], technical = ["it-manager@acme.example"] }'
    )
    path = _with(tmp_path, example, f"recipients = {{ technical = {json.dumps(technical)} }}")  # JSON lists are TOML
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert len(info.value.problems) == 1, info.value.problems
    assert str(info.value).startswith(f"{path}: {expected}"), str(info.value)
