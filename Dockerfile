# firehook: one image for every role (serve, api, worker, consumer, scheduler)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 firehook \
    && useradd --system --uid 10001 --gid firehook --home-dir /srv/firehook --create-home firehook

WORKDIR /opt/firehook
COPY pyproject.toml README.md ./
COPY config ./config
COPY invoker ./invoker
COPY triggers ./triggers
COPY scheduler ./scheduler
# firehook/config, firehook/invoker, ... are symlinks to the folders above: everything
# installs under the one `firehook` package (docs/decisions.md D11)
COPY MANIFEST.in ./
COPY firehook ./firehook
# the package is this folder; its dependencies are pinned to ranges in pyproject.toml
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[postgres]"

WORKDIR /srv/firehook
COPY --chown=10001:10001 functions ./functions
USER 10001
# inside a container every listener must be on every interface to be reachable: the API
# (and its /healthz), and the status listener of the other roles (FIREHOOK_METRICS__PORT)
ENV FIREHOOK_HTTP__HOST=0.0.0.0 \
    FIREHOOK_METRICS__HOST=0.0.0.0
EXPOSE 8000
CMD ["firehook", "serve"]
