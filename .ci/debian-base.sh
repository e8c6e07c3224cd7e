#!/usr/bin/env bash
# A python:3.11-slim-like base image built from Debian's own packages, for machines that reach
# deb.debian.org but not a container registry (CI here). Prints the image name.
#   bash .ci/debian-base.sh            -> reportbot-base:bookworm (built once, then reused)
set -euo pipefail
name=${REPORTBOT_BASE_IMAGE:-reportbot-base:bookworm}
if docker image inspect "$name" >/dev/null 2>&1; then echo "$name"; exit 0; fi
command -v mmdebstrap >/dev/null || { apt-get update -qq >&2 && apt-get install -y -qq mmdebstrap >&2; }
# Debian 12's python3 is 3.11, as the image needs; tini is PID 1 (signals, reaping).
mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tzdata,tini \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  bookworm - http://deb.debian.org/debian 2>/dev/null \
  | docker import - "$name" >/dev/null
echo "$name"
