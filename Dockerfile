# The one image recipe for all five services. It sits at the repository root, where you look
# first, and where it must be built from anyway: the uv workspace (pyproject.toml + uv.lock) lives
# here. The services differ only in their name and port, so those are build arguments, not five
# copies of this file that could drift apart:
#   docker build --build-arg SERVICE=orders --build-arg PORT=8002 -t relayshop-orders .
# docker-compose.yml passes the same two arguments for each service, and tools/compose_check.py
# checks that each service's SERVICE and PORT match its name and port.

# No `# syntax=` line: the builder's built-in Dockerfile frontend (BuildKit) understands everything
# below, `RUN --mount` included, and needs no frontend image from a registry.

# The base images. Pinned tags (not "3.12-slim", never "latest") so a rebuild next month gives the
# same image; bump them on purpose (Dependabot or Renovate can open the pull requests). They are
# build arguments only so that a machine without a registry can bring its own: CI's compose smoke
# test (tools/compose_smoke.py) passes locally built stand-ins. Everyone else gets these defaults.
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

# `COPY --from` takes no build arguments, so the uv image gets a stage name of its own.
FROM ${UV_IMAGE} AS uv

# ---------- build stage: the locked dependencies, installed by uv into /app/.venv ----------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv

# Which service this image runs: auth, gateway, orders, payments or inventory. No default: an
# image built without it would be no service at all, so the next step stops the build instead.
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<name>" >&2; exit 1; }

# Compile bytecode now (the runtime filesystem is read-only), copy instead of hard-linking from the
# cache mount, and use the image's Python rather than letting uv download one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Third-party dependencies first, from the lockfile alone: this slow layer is rebuilt only when
# uv.lock changes, not on every code change. --frozen installs exactly what uv.lock says (and
# fails rather than re-resolve); --no-dev leaves pytest, ruff and friends out of the image.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-workspace --package "relayshop-${SERVICE}"

# Then our own code: the platform library and this one service (no other service's code). They are
# installed as wheels (--no-editable), so the runtime stage needs the virtualenv and nothing else.
COPY pyproject.toml uv.lock ./
COPY shared/ shared/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "relayshop-${SERVICE}"

# ---------- runtime stage: Python, the virtualenv, an unprivileged user; no uv, no sources ----------
FROM ${PYTHON_IMAGE} AS runtime

# Build arguments end at the stage they are declared in: declare them again here. PORT is the
# service's own port (gateway 8000, auth 8001, orders 8002, payments 8003, inventory 8004).
ARG SERVICE
ARG PORT
RUN test -n "${PORT}" || { echo "build with --build-arg PORT=<the service's port>" >&2; exit 1; }

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and volumes can be chowned.
# /data is the data_dir (signing keys, or a SQLite file without DATABASE_URL): the one writable path.
RUN groupadd --system --gid 10001 relayshop \
    && useradd --system --uid 10001 --gid relayshop --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin relayshop \
    && mkdir /data \
    && chown relayshop:relayshop /data

COPY --from=build /app/.venv /app/.venv
# SERVICE and PORT stay in the environment for the CMD and the HEALTHCHECK below, which run when
# the container starts, long after the build arguments are gone.
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RELAYSHOP_DATA_DIR=/data \
    SERVICE=${SERVICE} \
    PORT=${PORT}
WORKDIR /app
USER 10001:10001

EXPOSE ${PORT}
# Liveness only (is the process answering?). Compose and Kubernetes add their own readiness check
# on /readyz, which also waits for the database, Redis and the token signing keys. No curl in a slim image:
# Python's standard library is already here.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['PORT'] + '/healthz', timeout=2)"]

# sh only to put SERVICE and PORT into the command line; `exec` then replaces it with uvicorn,
# so uvicorn is PID 1 and gets SIGTERM directly, and drains requests on shutdown.
# --forwarded-allow-ips: whose X-Forwarded-For uvicorn believes; set FORWARDED_ALLOW_IPS to the
# same networks as RELAYSHOP_TRUSTED_PROXIES (the Kubernetes config does, as a pod range).
CMD ["sh", "-c", "exec uvicorn \"${SERVICE}_service.main:create_app\" --factory --host 0.0.0.0 --port \"${PORT}\" --forwarded-allow-ips \"${FORWARDED_ALLOW_IPS:-127.0.0.1,::1}\""]
