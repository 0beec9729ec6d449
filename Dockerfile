# fullon_ticker_service: the supervisor (`tickerctl up`) in the foreground as the container's PID 1.
#
#   docker build -t fullon-ticker .          (BuildKit, the default builder since Docker 23: RUN --mount)
#   podman build --format docker -t fullon-ticker .   (the OCI format would drop HEALTHCHECK)
#   docker run --rm --stop-timeout 20 -e REDIS_HOST=... -e DATABASE_URL=postgresql://... fullon-ticker
#
# No `# syntax=` line on purpose: it makes BuildKit fetch a frontend image from a registry first,
# which fails on an offline builder. `make container-test` builds and runs this image for real.
#
# Configuration: environment variables (REDIS_*, DATABASE_URL or DB_*, ADMIN_MAIL, LOG_*, TICKER_*;
# see README "Configuration"), plus the TOML file at $TICKER_CONFIG. The image ships a small one
# (below); mount your own over it (or point TICKER_CONFIG elsewhere) for [exchanges], [supervisor]...
#
# Stopping: `docker stop` sends SIGTERM; the supervisor SIGTERMs its workers (each flushes, writes
# its `stopped` health record, exits) and SIGKILLs any still running after supervisor.stop_timeout.
# Docker SIGKILLs the whole container after its own stop timeout (10 s unless --stop-timeout /
# compose stop_grace_period), so the image sets TICKER_STOP_TIMEOUT=7 to finish inside those 10 s
# (the environment wins over any config file you mount; give both more time together: -e and --stop-timeout).

# --- build: wheels of the package and all its dependencies (no compiler needed: all ship wheels) ---
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# --- runtime ---
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TICKER_CONFIG=/etc/tickerctl/tickerctl.toml \
    TICKER_STOP_TIMEOUT=7 \
    LOG_FORMAT=json
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels fullon_ticker_service \
 && groupadd --system --gid 10001 ticker \
 && useradd --system --uid 10001 --gid ticker --home-dir /home/ticker --create-home --shell /usr/sbin/nologin ticker \
 && mkdir -p /etc/tickerctl \
 && printf '%s\n' \
      '# Image defaults; mount your own file here (or set TICKER_CONFIG) to replace them.' \
      '# Without DATABASE_URL or DB_* the catalog is the [exchanges] tables of this file (none here).' \
      '# supervisor.stop_timeout comes from TICKER_STOP_TIMEOUT (7 s), which wins over this file.' \
      > /etc/tickerctl/tickerctl.toml
COPY --chmod=0755 scripts/check_health /usr/local/bin/check_health

USER 10001:10001
WORKDIR /home/ticker
STOPSIGNAL SIGTERM
# `tickerctl health` exits 0 healthy, 1 problems, 2 Redis unreachable, 3 config error; Docker
# reserves exit 2 and treats any non-zero as a failed probe, so fold everything into 1.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["sh", "-c", "tickerctl health --max-age 60 || exit 1"]
ENTRYPOINT ["tickerctl", "up"]
