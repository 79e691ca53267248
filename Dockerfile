# syntax=docker/dockerfile:1
#
# Heron server image: one image, five commands (heron-ingest, heron-detector, heron-notifier,
# heron-prober, heron-migrate). The default command is heron-ingest; pick another with the
# container's command (docker compose `command:`, Kubernetes `args:`).
#
#   docker build -t heron-server .
#   docker run --rm -e HERON_DATABASE_URL=... heron-server heron-migrate
#
# Two stages: the builder installs the project into a virtualenv at /opt/venv; the final stage
# copies only that virtualenv, so no source tree, pip cache or compiler ends up in the image.
# Every dependency ships manylinux wheels for CPython 3.11 (amd64 and arm64), so nothing is
# compiled; if one ever needs to be, add `apt-get install build-essential` to the builder only.

# The base is pinned to an exact Python patch release and Debian release, so a rebuild gets the
# same interpreter and OS (tests/unit/test_deploy_image.py keeps it pinned, on the Python minor
# version the lock files are compiled for). Pinning the digest too (`python:3.11.14-slim-bookworm@sha256:…`)
# makes it immutable: do that in your build pipeline. It is not written here because no image
# registry is reachable from where this repository is developed and tested, so a digest could
# not be looked up or checked. Move to a newer patch release deliberately, for its fixes.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, exactly as pinned in requirements/runtime.lock (`make lock` writes it from
# pyproject.toml; the tests run the same versions), so editing the code does not reinstall them.
# --no-deps: the lock names every package, direct and indirect, so nothing unpinned can come in;
# `pip check` then proves the pinned set is complete and consistent.
COPY requirements/runtime.lock ./requirements/runtime.lock
RUN pip install --no-deps -r requirements/runtime.lock \
    && pip check

# Then the project itself, with --no-deps: its dependencies are the pinned ones above. A
# non-editable install, so the packages and the SQL migrations are copied into site-packages.
# If pyproject.toml starts naming other files (a readme, a new package dir), COPY them here.
COPY pyproject.toml ./
COPY libs ./libs
COPY services ./services
RUN pip install --no-deps . \
    && python -c "from heron_common.db import _migration_files; assert _migration_files(), 'migrations missing from the install'" \
    && pip check \
    && python -c "from heron_ingest.dashboard import STATIC, TEMPLATES; assert (TEMPLATES / 'base.html').exists() and (STATIC / 'dashboard.css').exists(), 'dashboard templates missing from the install'"


FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="heron-server" \
      org.opencontainers.image.description="Heron: know when your business silently breaks"

# A fixed numeric UID/GID so Kubernetes `runAsNonRoot` can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 heron \
    && useradd --system --uid 10001 --gid heron --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin heron

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/heron-healthcheck

# Byte code was compiled at install time; the root filesystem may be read-only at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /tmp

# ingest, detector, notifier, prober; each serves /healthz, /readyz and /metrics on its port.
# Ingest's port also serves the API (/v1/...) and the operators' dashboard (/dashboard; sign in at /dashboard/signin).
EXPOSE 8080 8081 8082 8083

# Liveness of whichever service this container runs (the script finds its port; see
# deploy/docker/healthcheck.py). Kubernetes ignores this and uses the probes in the manifests.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["heron-healthcheck", "/healthz"]

# Exec form: the Python process is PID 1 and gets SIGTERM directly; the services drain on it.
STOPSIGNAL SIGTERM
CMD ["heron-ingest"]
