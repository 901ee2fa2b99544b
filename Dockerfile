# syntax=docker/dockerfile:1
# The control plane's image: `controlplane` as the entrypoint, run as user 10001, on a
# filesystem it never writes to (the chart mounts /tmp and, for SQLite, /var/lib/controlplane).
#
#   docker build -t controlplane:0.1.0 .
#   docker run --rm -p 8000:8000 -e CONTROLPLANE_ADMIN_TOKEN=$(openssl rand -hex 32) \
#       controlplane:0.1.0 serve --host 0.0.0.0
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the locked dependencies and the package, into /opt/venv ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1
RUN pip install "uv>=0.5,<1"
WORKDIR /src
# Dependencies first: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY controlplane ./controlplane
# The wheel carries alembic/ as controlplane/migrations (pyproject.toml force-include), so
# `controlplane db upgrade` works without a checkout.
COPY alembic ./alembic
RUN uv sync --frozen --no-dev --no-editable \
    && cd / \
    && /opt/venv/bin/python -c "from controlplane.db import migrations_dir; p = migrations_dir(); assert (p / 'env.py').is_file() and 'site-packages' in str(p), p" \
    && /opt/venv/bin/controlplane --help >/dev/null

# --- runtime ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 controlplane \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin controlplane \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/controlplane
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    CONTROLPLANE_DATABASE_URL=sqlite:////var/lib/controlplane/controlplane.db
WORKDIR /var/lib/controlplane
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["controlplane"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
