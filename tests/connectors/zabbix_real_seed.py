"""Seed a freshly imported Zabbix 6.0 database for the real-API contract test.

Run by ``.ci/zabbix-real.sh`` (system ``python3``, standard library only, because the project's
virtual environment may not exist yet): ``python3 tests/connectors/zabbix_real_seed.py --url
http://127.0.0.1:8089/api_jsonrpc.php``. Prints the API token it generated (one line) on stdout.

What goes through the real API (login Admin/zabbix): host groups, hosts with ``site``/``class``/
``customer`` tags, an ICMP item and an "Unavailable by ICMP ping" trigger per host, one service
per host (tags ``customer``/``site``/``class``, problem tag ``host``), one daily SLA per customer
in Europe/London matching the services by the ``customer`` tag (Acme's with one excluded
downtime), and an API token for Admin.

What the API cannot write goes in by SQL (``psql`` on 127.0.0.1, database ``zabbix``): history.
``services.created_at`` is set back (the SLA counts a service only from its creation), and each
outage becomes a ``service_alarms`` pair (value 4 = the problem severity, -1 = OK) plus the
matching trigger problem/recovery events (``events``, ``event_recovery``, ``event_tag``,
``problem``, ``problem_tag``) for an event-based host-availability fallback.

The outage pattern is in ``OUTAGES`` below; the test computes its expectations from those
intervals by hand.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from datetime import datetime

TZ = "Europe/London"
SEVERITY = 4  # "High": the trigger's priority, the service status while it is down

# Services (and so SLA history) exist from here; well before both test weeks.
CREATED_AT = "2026-09-01T00:00:00+01:00"


@dataclass(frozen=True)
class Customer:
    code: str  # value of the `customer` tag on hosts, services and the SLA's service tag
    group: str  # host group
    sla: str  # SLA name
    slo: str


@dataclass(frozen=True)
class Host:
    host: str
    customer: str
    site: str
    klass: str


ACME = Customer("ACME", "Customers/Acme Manufacturing", "Acme Manufacturing daily", "99.5")
GLOBEX = Customer("GLOBEX", "Customers/Globex", "Globex daily", "99.9")
CUSTOMERS = (ACME, GLOBEX)

HOSTS = (
    Host("acme-lon-fw01", "ACME", "London", "firewall"),
    Host("acme-lon-sw01", "ACME", "London", "switch"),
    Host("acme-lds-fw01", "ACME", "Leeds", "firewall"),
    Host("acme-lds-sw01", "ACME", "Leeds", "switch"),
    Host("acme-lds-sw02", "ACME", "Leeds", "switch"),
    Host("globex-lon-fw01", "GLOBEX", "London", "firewall"),
)

# (host, down from, back up at) with explicit UTC offsets: Europe/London wall time.
# Week A: Mon 2026-11-09 00:00 GMT .. Mon 2026-11-16 00:00 GMT (168 h, GMT = UTC all week).
# Week B: Mon 2026-10-19 00:00 BST .. Mon 2026-10-26 00:00 GMT (169 h: clocks go back at
#         02:00 BST on Sun 2026-10-25, so that Sunday is 25 h long).
OUTAGES = (
    # --- week A
    # crosses the week start: 45 min inside (00:00-00:45 Mon 9 Nov)
    ("acme-lds-fw01", "2026-11-08T22:30+00:00", "2026-11-09T00:45+00:00"),
    # 90 min on Tuesday
    ("acme-lon-fw01", "2026-11-10T10:00+00:00", "2026-11-10T11:30+00:00"),
    # Wednesday: 10 min counted, the rest falls in the SLA's excluded downtime 02:00-04:00
    ("acme-lds-fw01", "2026-11-11T01:50+00:00", "2026-11-11T03:00+00:00"),
    # Thursday: 20 min, then 20 min across midnight into Friday (10 + 10)
    ("acme-lon-sw01", "2026-11-12T14:00+00:00", "2026-11-12T14:20+00:00"),
    ("acme-lon-sw01", "2026-11-12T23:50+00:00", "2026-11-13T00:10+00:00"),
    # crosses the week end: 60 min inside (23:00-24:00 Sun 15 Nov), 60 min after
    ("acme-lds-sw01", "2026-11-15T23:00+00:00", "2026-11-16T01:00+00:00"),
    # another customer's outage in the same week: must not show up for Acme
    ("globex-lon-fw01", "2026-11-11T08:00+00:00", "2026-11-11T12:00+00:00"),
    # the week before week A: must not count
    ("acme-lds-sw02", "2026-11-03T09:00+00:00", "2026-11-03T14:00+00:00"),
    # --- week B (DST)
    # crosses the week start: 30 min inside (00:00-00:30 BST Mon 19 Oct)
    ("acme-lon-fw01", "2026-10-18T23:00+01:00", "2026-10-19T00:30+01:00"),
    # across the clock change: 00:30 BST to the second 01:30 (GMT) = 2 h elapsed, not 1 h
    ("acme-lds-sw02", "2026-10-25T00:30+01:00", "2026-10-25T01:30+00:00"),
)

# Planned work on all of Acme's hosts (name, from, to): a Zabbix maintenance on Acme's host group
# (with data collection) and the same window as an excluded downtime of Acme's SLA. A problem
# open during it is suppressed, as the server would record it (event_suppress).
EXCLUDED = (("Firmware upgrade", "2026-11-11T02:00+00:00", "2026-11-11T04:00+00:00"),)


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


class Api:
    def __init__(self, url: str):
        self.url = url
        self.auth: str | None = None
        self._id = 0

    def __call__(self, method: str, params: object) -> object:
        self._id += 1
        body: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params, "id": self._id}
        if self.auth is not None and method not in ("apiinfo.version", "user.login"):
            body["auth"] = self.auth  # 6.0: auth in the body
        headers = {"Content-Type": "application/json-rpc"}
        req = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (main() accepts only loopback http)
            answer = json.load(resp)
        if "error" in answer:
            raise SystemExit(f"{method} failed: {answer['error']}")
        return answer["result"]


def seed_api(api: Api) -> dict[str, dict[str, str]]:
    """Create the configuration objects; returns ids: hosts, triggers, services, slas."""
    api.auth = api("user.login", {"username": "Admin", "password": "zabbix"})  # type: ignore[assignment]
    ids: dict[str, dict[str, str]] = {"groups": {}, "hosts": {}, "triggers": {}, "services": {}, "slas": {}}
    for c in CUSTOMERS:
        ids["groups"][c.code] = api("hostgroup.create", {"name": c.group})["groupids"][0]  # type: ignore[index]
    for h in HOSTS:
        customer = next(c for c in CUSTOMERS if c.code == h.customer)
        created = api(
            "host.create",
            {
                "host": h.host,
                "name": h.host,
                "groups": [{"groupid": ids["groups"][customer.code]}],
                "tags": [
                    {"tag": "customer", "value": h.customer},
                    {"tag": "site", "value": h.site},
                    {"tag": "class", "value": h.klass},
                ],
                "interfaces": [{"type": 1, "main": 1, "useip": 1, "ip": "127.0.0.1", "dns": "", "port": "10050"}],
            },
        )
        hostid = created["hostids"][0]  # type: ignore[index]
        ids["hosts"][h.host] = hostid
        interfaceid = api("hostinterface.get", {"hostids": hostid, "output": ["interfaceid"]})[0]["interfaceid"]  # type: ignore[index]
        api(
            "item.create",
            {
                "hostid": hostid,
                "interfaceid": interfaceid,
                "name": "ICMP ping",
                "key_": "icmpping",
                "type": 3,  # simple check
                "value_type": 3,  # unsigned
                "delay": "1m",
            },
        )
        trig = api(
            "trigger.create",
            {
                "description": "Unavailable by ICMP ping",
                "expression": f"max(/{h.host}/icmpping,#3)=0",
                "priority": SEVERITY,
                "tags": [{"tag": "host", "value": "{HOST.HOST}"}, {"tag": "scope", "value": "availability"}],
            },
        )
        ids["triggers"][h.host] = trig["triggerids"][0]  # type: ignore[index]
        svc = api(
            "service.create",
            {
                "name": f"{h.host} availability",
                "algorithm": 1,  # most critical if all children have problems (no children: problems decide)
                "sortorder": 0,
                "tags": [
                    {"tag": "customer", "value": h.customer},
                    {"tag": "site", "value": h.site},
                    {"tag": "class", "value": h.klass},
                ],
                "problem_tags": [{"tag": "host", "operator": 0, "value": h.host}],
            },
        )
        ids["services"][h.host] = svc["serviceids"][0]  # type: ignore[index]
    for c in CUSTOMERS:
        sla = api(
            "sla.create",
            {
                "name": c.sla,
                "period": 0,  # daily
                "slo": c.slo,
                "effective_date": epoch(CREATED_AT),
                "timezone": TZ,
                "status": 1,
                "service_tags": [{"tag": "customer", "operator": 0, "value": c.code}],
                "excluded_downtimes": [
                    {"name": n, "period_from": epoch(a), "period_to": epoch(b)} for n, a, b in EXCLUDED
                ]
                if c is ACME
                else [],
            },
        )
        ids["slas"][c.code] = sla["slaids"][0]  # type: ignore[index]
    ids["maintenances"] = {}
    for name, a, b in EXCLUDED:
        m = api(
            "maintenance.create",
            {
                "name": name,
                "maintenance_type": 0,  # with data collection
                "active_since": epoch(a),
                "active_till": epoch(b),
                "groups": [{"groupid": ids["groups"][ACME.code]}],
                "timeperiods": [{"timeperiod_type": 0, "start_date": epoch(a), "period": epoch(b) - epoch(a)}],
            },
        )
        ids["maintenances"][name] = m["maintenanceids"][0]  # type: ignore[index]
    return ids


def make_token(api: Api) -> str:
    tokenid = api("token.create", {"name": "reportbot contract test", "userid": "1"})["tokenids"][0]  # type: ignore[index]
    return api("token.generate", [tokenid])[0]["token"]  # type: ignore[index]


# The history tables, filled with COPY (rows as data, no SQL built from strings).
COPY_COLUMNS = {
    "service_alarms": "servicealarmid, serviceid, clock, value",
    "events": "eventid, source, object, objectid, clock, ns, value, name, severity",
    "event_recovery": "eventid, r_eventid",
    "problem": "eventid, source, object, objectid, clock, ns, r_eventid, r_clock, r_ns, name, severity",
    "event_tag": "eventtagid, eventid, tag, value",
    "problem_tag": "problemtagid, eventid, tag, value",
    "event_suppress": "event_suppressid, eventid, maintenanceid, suppress_until",
}
PROBLEM_NAME = "Unavailable by ICMP ping"


def history_rows(ids: dict[str, dict[str, str]]) -> dict[str, list[tuple[object, ...]]]:
    """The history the API cannot write: SLA status changes and trigger problem/recovery events."""
    hosts = {h.host: h for h in HOSTS}
    rows: dict[str, list[tuple[object, ...]]] = {table: [] for table in COPY_COLUMNS}
    event = tag = 0
    for host, down, up in sorted(OUTAGES, key=lambda o: epoch(o[1])):
        h, t0, t1 = hosts[host], epoch(down), epoch(up)
        serviceid, triggerid = ids["services"][host], ids["triggers"][host]
        alarms = rows["service_alarms"]
        alarms.append((len(alarms) + 1, serviceid, t0, SEVERITY))  # outage starts: the problem's severity
        alarms.append((len(alarms) + 1, serviceid, t1, -1))  # back to OK
        problem, recovery = event + 1, event + 2
        event += 2
        rows["events"].append((problem, 0, 0, triggerid, t0, 0, 1, PROBLEM_NAME, SEVERITY))
        rows["events"].append((recovery, 0, 0, triggerid, t1, 0, 0, PROBLEM_NAME, 0))
        rows["event_recovery"].append((problem, recovery))
        rows["problem"].append((problem, 0, 0, triggerid, t0, 0, recovery, t1, 0, PROBLEM_NAME, SEVERITY))
        tags = [
            ("host", host),
            ("scope", "availability"),
            ("customer", h.customer),
            ("site", h.site),
            ("class", h.klass),
        ]
        for k, v in tags:
            tag += 1
            rows["event_tag"].append((tag, problem, k, v))
            rows["problem_tag"].append((tag, problem, k, v))
        if h.customer == ACME.code:
            for name, a, b in EXCLUDED:
                if t0 < epoch(b) and t1 > epoch(a):  # open during the maintenance: suppressed until its end
                    suppress = rows["event_suppress"]
                    suppress.append((len(suppress) + 1, problem, ids["maintenances"][name], epoch(b)))
    return rows


def history_script(ids: dict[str, dict[str, str]]) -> str:
    """A psql script: set the services' creation time back, then COPY the history rows."""
    out = ["BEGIN;", "UPDATE services SET created_at = :created_at;"]  # every service in this database is ours
    for table, rows in history_rows(ids).items():
        out.append(f"COPY {table} ({COPY_COLUMNS[table]}) FROM STDIN;")
        out.extend("\t".join(str(v) for v in row) for row in rows)
        out.append("\\.")
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


def run_psql(script: str) -> None:
    cmd = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "zabbix", "-d", "zabbix", "-X", "-q"]
    cmd += ["-v", "ON_ERROR_STOP=1", "-v", f"created_at={epoch(CREATED_AT)}"]
    done = subprocess.run(cmd, input=script, text=True, capture_output=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"psql failed: {done.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/api_jsonrpc.php")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise SystemExit("refusing to seed anything but a loopback Zabbix")
    api = Api(args.url)
    ids = seed_api(api)
    run_psql(history_script(ids))
    token = make_token(api)
    print(f"seeded: {len(HOSTS)} hosts, {len(OUTAGES)} outages, SLAs {ids['slas']}", file=sys.stderr)
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
