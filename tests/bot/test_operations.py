"""What an operator scrapes and reads: ``GET /metrics`` and ``GET /healthz`` after a weekly loop,
and the JSON log lines of ``reportbot run``.

The loop is the real service wiring (``open_service`` + ``start_serving``, as ``reportbot serve``
runs it) against the vendor simulators, the loopback Microsoft Graph and Bot Connector, with
Teams-shaped activities: the app is installed, the batch drafts ACME and GLOBEX and posts their
cards (Teams answers the first post 429), the approver approves ACME, and its delivery runs
through Graph. Then /metrics is scraped as Prometheus would and parsed with prometheus-client's
own parser.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot.cli import main
from bot.settings import BotSettings
from reporting.telemetry import setup_logging
from tests.bot import test_resume
from tests.bot.harness import installation_update
from tests.bot.test_resume import WEEK_DAY, Setup, approve, serving, sql, state_is, until

setup = test_resume.setup  # the fixture: simulators, loopback Graph, ACME and GLOBEX


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for (n, ls), v in values.items() if n == name and set(labels.items()) <= set(ls))


async def test_metrics_and_health_after_a_weekly_loop(setup: Setup) -> None:
    setup.connector.fail_sends(429)  # Teams throttles the first post once
    async with serving(setup) as sv:
        before = samples((await sv.client.get("/metrics")).text)
        r = await sv.client.post(installation_update(service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        result = await sv.service.batch.run(WEEK_DAY)
        assert sorted(result.drafted) == ["ACME", "GLOBEX"]
        [(draft_id, version, card_id)] = await sql(
            sv.service, "select id, version, card_activity_id from drafts where customer_code = 'ACME'"
        )
        await approve(sv.client, setup, draft_id, version, card_id)
        await until(lambda: state_is(sv.service, draft_id, "delivered"), 60, "ACME's delivery")

        # as Prometheus 2 asks (Prometheus 3 and OpenMetrics scrapers get their formats)
        scrape = await sv.client.http.get("/metrics", headers={"Accept": "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"})
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        after = samples(scrape.text)

        def grew(name: str, **labels: str) -> float:
            return total(after, name, **labels) - total(before, name, **labels)

        assert grew("reportbot_batch_duration_seconds_count") == 1
        assert grew("reportbot_batch_duration_seconds_sum") > 0
        # the batch drafts ACME and GLOBEX; the approval renders ACME's final report from its draft
        assert grew("reportbot_drafts_total", outcome="ok") >= 2
        # both customers: zabbix, connectwise (tickets, changes), datto, defender, cloudflare
        assert grew("reportbot_sections_total", source="zabbix", section="uptime", outcome="ok") >= 2
        assert grew("reportbot_sections_total", outcome="ok") >= 12
        assert grew("reportbot_vendor_requests_total", source="zabbix", status="200") > 0
        assert grew("reportbot_vendor_requests_total", source="connectwise", status="200") > 0
        assert grew("reportbot_vendor_request_seconds_count", source="zabbix") == grew(
            "reportbot_vendor_requests_total", source="zabbix"
        )
        for step in ("email", "channel", "archive"):
            assert grew("reportbot_deliveries_total", step=step, outcome="done") == 1, step
        assert grew("reportbot_teams_posts_total", kind="send", outcome="ok") >= 3  # two cards, the roll-up
        assert grew("reportbot_teams_posts_total", kind="update", outcome="ok") >= 1  # the card, approved
        assert grew("reportbot_teams_throttled_total") == 1
        assert grew("reportbot_approve_latency_seconds_count") == 1

        health = await sv.client.get("/healthz")
        body = health.json()
        assert health.status_code == 200 and body["status"] == "ok" and body["store"] == "ok", body
        assert body["next_batch"] and body["next_batch"] >= WEEK_DAY.isoformat(), body  # the cron's next Monday
        assert body["undelivered_cards"] == 0 and body["stuck_deliveries"] == 0, body


async def test_health_names_a_stuck_delivery(setup: Setup) -> None:
    """An approved draft nobody delivers (its process died between approval and hand-off, and no
    instance resumes it yet) shows on /healthz once it is older than the stall limit."""
    async with serving(setup, stalled_after=3600) as sv:
        await sv.client.post(installation_update(service_url=setup.connector.service_url))
        await sv.service.batch.run(WEEK_DAY)
        [(draft_id,)] = await sql(sv.service, "select id from drafts where customer_code = 'GLOBEX'")
        async with sv.service.store.engine.begin() as conn:
            await conn.execute(
                text("update drafts set state = 'approved', updated_at = '2026-11-16 07:00:00' where id = :d"),
                {"d": draft_id},
            )
        sv.service.resumer.stalled_after = 60
        body = (await sv.client.get("/healthz")).json()
    assert body["stuck_deliveries"] == 1, body
    assert body["stuck"][0].startswith(f"GLOBEX ({draft_id}): approved since 2026-11-16T07:00:00"), body


async def test_metrics_can_require_a_token(setup: Setup, monkeypatch: Any) -> None:
    monkeypatch.setenv("REPORTBOT_METRICS_TOKEN", "scrape-secret-123")
    assert BotSettings.from_config(setup.config, sandbox=True).metrics_token == "scrape-secret-123"
    async with serving(setup, metrics_token="scrape-secret-123") as sv:
        assert (await sv.client.get("/metrics")).status_code == 401
        ok = await sv.client.http.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
    assert ok.status_code == 200 and "reportbot_drafts_total" in ok.text


def test_json_log_lines_carry_customer_period_and_step(capsys: Any, tmp_path: Any) -> None:
    code = main(["run", "ACME", "--out", str(tmp_path), "--week", "2026-11-10", "--log-format", "json", "-v"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    made = [e for e in lines if e["message"] == "draft for ACME made"]
    assert made, lines
    assert made[0]["customer"] == "ACME" and made[0]["period"] == "2026-11-16" and made[0]["step"] == "draft"
    assert made[0]["level"] == "INFO" and made[0]["logger"] == "reporting.engine"
    assert isinstance(made[0]["duration_ms"], int) and made[0]["unavailable"] == []
    assert not [e for e in lines if e["logger"].split(".")[0] in ("httpx", "httpcore", "azure", "msal")]


def test_a_hostile_message_stays_one_json_line() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    try:
        logging.getLogger("reporting.collect").warning(
            "section %s unavailable: %s",
            "uptime",
            'HTTP 500 "x"\r\n{"level": "INFO", "forged": true}\x00\u202e',
            extra={"customer": "ACME", "source": "zabbix"},
        )
    finally:
        setup_logging("error", "text")
    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["customer"] == "ACME" and event["source"] == "zabbix" and "forged" not in event
    assert event["message"].endswith('{"level": "INFO", "forged": true}\x00\u202e')


def test_log_options_work_anywhere_on_the_line(capsys: Any) -> None:
    assert main(["--log-level", "warning", "config", "check", "--config", "/nonexistent.toml"]) == 2
    assert main(["config", "check", "--config", "/nonexistent.toml", "--log-level", "debug", "-v"]) == 2
    with pytest.raises(SystemExit) as usage:  # argparse's usage error
        main(["config", "check", "--config", "/nonexistent.toml", "--log-format", "xml"])
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'xml'" in err and err.count("file not found") == 2
    setup_logging("error", "text")


def test_a_renamed_vendor_field_is_one_logged_and_counted_unavailable_section(capsys: Any, tmp_path: Any) -> None:
    """Datto's backup assets answer with ``status`` renamed ``state`` (the simulator's drift fault;
    the vendor's documented payload otherwise): the backups section is unavailable, its JSON log
    line names the customer, period, section, source, reason and the missing field, and the
    counter by source and reason grows by one."""
    labels = {"source": "datto", "reason": "data"}
    before = REGISTRY.get_sample_value("reportbot_sections_unavailable_total", labels) or 0.0
    argv = ["run", "ACME", "--out", str(tmp_path), "--week", "2026-11-10", "--backfill", "0"]
    assert main([*argv, "--log-format", "json", "--log-level", "info", "--sim-faults", "datto:drift=status>state"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [event] = [e for e in lines if e.get("section") == "backups" and e.get("reason")]
    assert event["level"] == "WARNING" and event["customer"] == "ACME" and event["period"] == "2026-11-16"
    assert event["source"] == "datto" and event["reason"] == "data" and "status" in event["message"]
    assert REGISTRY.get_sample_value("reportbot_sections_unavailable_total", labels) == before + 1
    setup_logging("error", "text")
