#!/usr/bin/env bash
# Build the container image (Dockerfile) and smoke-test it: `reportbot --version`, then
# `reportbot serve --sandbox` answering /healthz and /metrics on 127.0.0.1, then `docker stop`
# (SIGTERM) ending it cleanly. Prints the image size. `make image` runs it; .ci/run runs it when a
# container engine answers. Without one it says so and exits 0: the test suite does not need it.
#   IMAGE=reportbot:smoke bash .ci/image-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
image=${IMAGE:-reportbot:smoke}

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
  echo "image: no container engine answers here (docker info failed); the image was not built"
  exit 0
fi

# A builder that understands RUN --mount (BuildKit): buildx if installed, else a client that has
# BuildKit built in (the Docker 20.10-23 clients, e.g. Debian 12's docker.io at /usr/bin/docker).
build=()
if docker buildx version >/dev/null 2>&1; then
  build=(docker buildx build --load)
else
  for client in docker /usr/bin/docker; do
    major=$("$client" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)
    if [[ -n "$major" && "$major" -lt 23 ]]; then build=(env DOCKER_BUILDKIT=1 "$client" build); break; fi
  done
fi
if [[ ${#build[@]} -eq 0 ]]; then
  echo "image: no BuildKit builder (install docker-buildx); the image was not built" >&2
  exit 1
fi

# The base: the official python image, or where no registry answers, one from Debian's packages.
base=python:3.11-slim-bookworm
if ! docker image inspect "$base" >/dev/null 2>&1 && ! timeout 60 docker pull -q "$base" >/dev/null 2>&1; then
  echo "image: $base cannot be pulled here; building the base from Debian's packages (.ci/debian-base.sh)"
  base=$(bash .ci/debian-base.sh)
fi
args=(--network host --build-arg "BASE=$base" --build-arg "VERSION=$(grep -m1 '^version' pyproject.toml | cut -d'"' -f2)")
# A network that inspects TLS: its CA bundle as a build secret (never kept in a layer).
for ca in "${PIP_CERT:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [[ -n "$ca" && -s "$ca" ]]; then args+=(--secret "id=pip_cert,src=$ca"); break; fi
done
t0=$(date +%s)
"${build[@]}" "${args[@]}" -t "$image" . >/tmp/reportbot-image-build.log 2>&1 || {
  tail -40 /tmp/reportbot-image-build.log >&2
  echo "image: docker build failed (log above)" >&2
  exit 1
}
echo "image: built $image from $base in $(( $(date +%s) - t0 )) s; size $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
echo "image: user $(docker image inspect -f '{{.Config.User}}' "$image"), healthcheck: $(docker image inspect -f '{{join .Config.Healthcheck.Test " "}}' "$image" | cut -c1-60)..."

echo "image: docker run $image --version -> $(docker run --rm "$image" --version)"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
name=reportbot-smoke-$$
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
docker run -d --name "$name" --network host -e REPORTBOT_CONFIG= "$image" serve --sandbox --now --port "$port" >/dev/null
for _ in $(seq 1 120); do
  if body=$(curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null); then break; fi
  if [[ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]]; then
    docker logs "$name" >&2; echo "image: the container exited before answering /healthz" >&2; exit 1
  fi
  sleep 0.5
done
if [[ -z "${body:-}" ]]; then docker logs "$name" >&2; echo "image: /healthz did not answer within 60 s" >&2; exit 1; fi
echo "image: GET /healthz -> $body"
# --now ran the sandbox's weekly batch at start: once it is done, its counters are on /metrics
for _ in $(seq 1 240); do
  metrics=$(curl -fsS "http://127.0.0.1:$port/metrics" || true)
  if grep -q '^reportbot_batch_duration_seconds_count 1.0' <<<"$metrics"; then break; fi
  sleep 0.5
done
echo "image: GET /metrics after the batch -> $(grep -c '^reportbot_' <<<"$metrics") reportbot_ samples, e.g."
grep -E '^reportbot_(batch_duration_seconds_(count|sum)|drafts_total|sections_total\{[^}]*section="uptime"|vendor_requests_total\{source="(zabbix|connectwise)")' <<<"$metrics" | head -12 | sed 's/^/    /'
grep -q '^reportbot_batch_duration_seconds_count 1.0' <<<"$metrics" || { echo "image: the batch did not finish within 120 s" >&2; exit 1; }
t0=$(date +%s%N)
docker stop -t 30 "$name" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
echo "image: docker stop (SIGTERM) -> exit code $code after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
if [[ "$code" != 0 ]]; then docker logs "$name" 2>&1 | tail -20 >&2; exit 1; fi
docker logs "$name" 2>&1 | tail -3
