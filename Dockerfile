# reportbot: the Teams bot and its scheduler, `reportbot serve`, as a non-root container.
#
#   docker build -t reportbot .
#   docker run -p 3978:3978 -v ./reportbot.toml:/config/reportbot.toml:ro --env-file reportbot.env reportbot
#
# The configuration file is mounted at /config/reportbot.toml (REPORTBOT_CONFIG); secrets come from
# the environment (${VAR} references in the file) or files mounted beside it, never from the image.
# Drafts and, with the default SQLite store, the database are written under /data (a volume).
# BASE: any Debian-based image with python3 (3.11+) and its venv module. Where no registry is
# reachable, `bash .ci/debian-base.sh` builds one from Debian's packages.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/reportbot
WORKDIR /src
# The runtime dependencies first, pinned by the runtime lock, so a code change does not reinstall them.
# A network that inspects TLS needs its CA: `docker build --secret id=pip_cert,src=<CA bundle>` (never
# stored in a layer).
COPY requirements.lock ./
RUN --mount=type=secret,id=pip_cert,required=false \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && /opt/reportbot/bin/pip install --quiet --upgrade pip \
 && /opt/reportbot/bin/pip install --quiet -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY bot bot
COPY cards cards
COPY connectors connectors
COPY reporting reporting
COPY scheduler scheduler
COPY manifest manifest
RUN --mount=type=secret,id=pip_cert,required=false \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && /opt/reportbot/bin/pip install --quiet --no-deps . \
 && /opt/reportbot/bin/pip check \
 && /opt/reportbot/bin/python -m compileall -q /opt/reportbot

FROM ${BASE}
ARG VERSION=0
LABEL org.opencontainers.image.title="reportbot" \
      org.opencontainers.image.description="Weekly MSP customer reports, reviewed in Microsoft Teams" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home --shell /usr/sbin/nologin reportbot \
 && mkdir -p /config && chown reportbot:reportbot /data
COPY --from=build /opt/reportbot /opt/reportbot
ENV PATH=/opt/reportbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REPORTBOT_CONFIG=/config/reportbot.toml \
    REPORTBOT_LOG_FORMAT=json \
    REPORTBOT_LOG_LEVEL=info
USER reportbot
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3978
# /healthz answers 200 while the store answers; 503 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3978/healthz', timeout=4).status != 200)"]
# SIGTERM (docker stop) lets the bot finish in order: no new batch, deliveries in flight complete.
STOPSIGNAL SIGTERM
ENTRYPOINT ["reportbot"]
CMD ["serve", "--out", "/data/reports"]
