#!/usr/bin/env bash
# A real Zabbix 6.0 API on 127.0.0.1 for the Zabbix contract test (tests/connectors/test_zabbix_real.py).
#
#   eval "$(bash .ci/zabbix-real.sh)"        # install, (re)create, start, seed; prints the export lines
#   bash .ci/zabbix-real.sh stop             # stop the PHP server this script started
#
# Debian's zabbix-server-pgsql (schema) and zabbix-frontend-php (the API), served by PHP's built-in
# web server; the zabbix_server daemon is not needed for the API. Each run drops and recreates the
# `zabbix` database in the local PostgreSQL (127.0.0.1:5432, user postgres, trust auth), so every
# run starts from the same seeded data. Only 127.0.0.1 is touched (apt downloads aside).
# stdout carries only the `export` lines; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${ZABBIX_PORT:-8089}"
STATE="${ZABBIX_STATE_DIR:-/tmp/reportbot-zabbix-real}"
PG="psql -h 127.0.0.1 -p 5432 -X -q -v ON_ERROR_STOP=1"
PACKAGES=(zabbix-server-pgsql zabbix-frontend-php php8.2-cli php8.2-cgi php8.2-pgsql)
SCHEMA_DIR=/usr/share/zabbix-server-pgsql
URL="http://127.0.0.1:${PORT}/api_jsonrpc.php"
T0=$SECONDS

log() { echo "zabbix-real: $*" >&2; }
die() { echo "zabbix-real: ERROR: $*" >&2; exit 1; }

stop_server() {
  if [[ -f "$STATE/php.pid" ]]; then
    local pgid pids
    pgid=$(cat "$STATE/php.pid")
    # php -S was started with setsid, so it leads its own process group, and its workers
    # (PHP_CLI_SERVER_WORKERS) are in that group: end exactly those php -S processes.
    pids=$(ps -eo pid=,pgid=,args= | awk -v g="$pgid" '$2 == g && /php .*-S 127\.0\.0\.1:/ {print $1}')
    if [[ -n $pids ]]; then
      # shellcheck disable=SC2086
      kill $pids 2>/dev/null || true
      for _ in $(seq 50); do
        # shellcheck disable=SC2086
        kill -0 $pids 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -f "$STATE/php.pid"
  fi
}

if [[ "${1:-}" == "stop" ]]; then
  stop_server
  exit 0
fi

mkdir -p "$STATE"

# 1. Packages (skipped when already installed).
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v psql >/dev/null || missing+=(postgresql-client)
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "apt-get is not available; cannot install ${missing[*]}"
  [[ $(id -u) == 0 ]] || die "must run as root to apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Lists missing or stale (a package no longer on the mirror): update once, then install.
  if ! apt-cache show zabbix-server-pgsql >/dev/null 2>&1; then
    log "apt-get update"
    apt-get update -qq >"$STATE/apt.log" 2>&1 || { tail -20 "$STATE/apt.log" >&2; die "apt-get update failed"; }
  fi
  log "installing ${missing[*]}"
  # policy-rc.d 101: no package may start a daemon (zabbix-server must not run; the API is all we need).
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1; fi
  rc=0
  apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1; }
  if ! apt_install; then
    log "install failed; apt-get update and one more try"
    { apt-get update -qq >>"$STATE/apt.log" 2>&1 && apt_install; } || rc=$?
  fi
  [[ -n $own_policy ]] && rm -f "$policy"
  ((rc == 0)) || { tail -20 "$STATE/apt.log" >&2; die "apt-get install ${missing[*]} failed (exit $rc)"; }
fi
for f in schema images data; do [[ -f $SCHEMA_DIR/$f.sql.gz ]] || die "$SCHEMA_DIR/$f.sql.gz is missing"; done
command -v php >/dev/null || die "php is not on PATH after the install"

# 2. PostgreSQL: a fresh `zabbix` database each run.
pg_isready -h 127.0.0.1 -p 5432 -q || die "PostgreSQL is not answering on 127.0.0.1:5432"
stop_server
log "recreating database zabbix"
$PG -U postgres -d postgres \
  -c "DROP DATABASE IF EXISTS zabbix WITH (FORCE)" \
  -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='zabbix') THEN CREATE ROLE zabbix LOGIN PASSWORD 'zabbix'; END IF; END\$\$" \
  -c "CREATE DATABASE zabbix OWNER zabbix ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >&2
log "importing $SCHEMA_DIR/{schema,images,data}.sql.gz"
for f in schema images data; do
  zcat "$SCHEMA_DIR/$f.sql.gz" | PGOPTIONS='-c synchronous_commit=off' $PG -U zabbix -d zabbix >/dev/null ||
    die "importing $f.sql.gz failed"
done

# 3. Frontend configuration (the Debian frontend reads /etc/zabbix/zabbix.conf.php).
mkdir -p /etc/zabbix
cat >/etc/zabbix/zabbix.conf.php <<'EOF'
<?php
// Written by reportbot .ci/zabbix-real.sh: a throwaway API for the Zabbix contract test.
$DB['TYPE']            = 'POSTGRESQL';
$DB['SERVER']          = '127.0.0.1';
$DB['PORT']            = '5432';
$DB['DATABASE']        = 'zabbix';
$DB['USER']            = 'zabbix';
$DB['PASSWORD']        = 'zabbix';
$DB['SCHEMA']          = '';
$DB['ENCRYPTION']      = false;
$DB['KEY_FILE']        = '';
$DB['CERT_FILE']       = '';
$DB['CA_FILE']         = '';
$DB['VERIFY_HOST']     = false;
$DB['CIPHER_LIST']     = '';
$DB['VAULT_URL']       = '';
$DB['VAULT_DB_PATH']   = '';
$DB['VAULT_TOKEN']     = '';
$DB['DOUBLE_IEEE754']  = true;
$ZBX_SERVER_NAME       = 'reportbot-ci';
$IMAGE_FORMAT_DEFAULT  = IMAGE_FORMAT_PNG;
EOF

# 4. The API, served by PHP's built-in server in the background.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "something else is already listening on 127.0.0.1:$PORT (set ZABBIX_PORT)"
fi
log "starting php -S 127.0.0.1:$PORT (log $STATE/php.log)"
PHP_CLI_SERVER_WORKERS=4 setsid nohup php -d memory_limit=512M -d date.timezone=UTC \
  -S "127.0.0.1:$PORT" -t /usr/share/zabbix >"$STATE/php.log" 2>&1 </dev/null &
echo $! >"$STATE/php.pid"
version=""
for _ in $(seq 100); do
  version=$(python3 - "$URL" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], json.dumps({"jsonrpc": "2.0", "method": "apiinfo.version", "params": {}, "id": 1}).encode(),
                             {"Content-Type": "application/json-rpc"})
print(json.load(urllib.request.urlopen(req, timeout=2))["result"])
PY
)
  [[ -n $version ]] && break
  kill -0 "$(cat "$STATE/php.pid")" 2>/dev/null || { cat "$STATE/php.log" >&2; die "php -S exited"; }
  sleep 0.2
done
[[ -n $version ]] || { tail -20 "$STATE/php.log" >&2; die "apiinfo.version did not answer on $URL"; }
[[ $version == 6.0.* ]] || die "expected a Zabbix 6.0 API, got $version"
log "Zabbix API $version answers at $URL"

# 5. Seed the contract-test data (through the API, history by SQL) and get an API token.
token=$(python3 tests/connectors/zabbix_real_seed.py --url "$URL") || die "seeding failed"
[[ -n $token ]] || die "seeding printed no API token"

cat >"$STATE/env.sh" <<EOF
export REPORTBOT_ZABBIX_REAL_URL=$URL
export REPORTBOT_ZABBIX_REAL_TOKEN=$token
EOF
log "ready in $((SECONDS - T0)) s; exports also in $STATE/env.sh; stop with: bash .ci/zabbix-real.sh stop"
cat "$STATE/env.sh"
