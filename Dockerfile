# syntax=docker/dockerfile:1
# The fleetwatch image: one image for `fleetwatch migrate`, `ingest`, `dashboard` and
# `simulate`; compose.yaml picks the subcommand per service. Needs BuildKit (the default
# builder of current Docker engines and of `docker compose build`).
#
#   docker build -t fleetwatch:0.1.0 .
#   docker run --rm fleetwatch:0.1.0 config

# An exact patch release, so a rebuild gets the same interpreter; bump it deliberately.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: wheels for fleetwatch and every dependency ----------------------------------
FROM ${PYTHON_IMAGE} AS build

# A compiler for any dependency that has no wheel for the target platform. It stays in this
# stage: the runtime stage below installs wheels only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src

# Dependencies first, from pyproject.toml alone: a code change does not rebuild them.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && pip wheel --wheel-dir /wheels --requirement requirements.txt

# Then fleetwatch itself (.dockerignore keeps tests, caches, .venv, .git and .env out).
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels .

# --- runtime: the installed wheels, nothing else ----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="fleetwatch" \
      org.opencontainers.image.description="Ingest, store and report on fleets of MQTT field devices"

# A fixed uid/gid, so volume and file permissions are predictable on every host.
RUN groupadd --system --gid 10001 fleetwatch \
 && useradd --system --uid 10001 --gid fleetwatch --create-home --home-dir /home/fleetwatch \
        --shell /usr/sbin/nologin fleetwatch \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/fleetwatch
# /var/lib/fleetwatch: where migrate writes the dashboard's read token. A named volume mounted
# there starts with this owner, so the non-root user can write it.

# The wheels are bind-mounted from the build stage, so they never become a layer of this
# image; nothing is downloaded and pip keeps no cache.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels fleetwatch

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
USER 10001:10001

# 9108: ingest's /healthz, /readyz and /metrics (FLEETWATCH_HEALTH_PORT); 8501: the dashboard.
EXPOSE 9108 8501

# No HEALTHCHECK here: the image runs four different commands. compose.yaml gives each
# service its own: ingest GET /readyz on FLEETWATCH_HEALTH_PORT (default 9108), the
# dashboard Streamlit's /_stcore/health, the simulator a broker login.
ENTRYPOINT ["fleetwatch"]
CMD ["ingest"]
