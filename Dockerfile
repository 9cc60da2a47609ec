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
COPY firehook ./firehook
# the package is this folder; its dependencies are pinned to ranges in pyproject.toml
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[postgres]"

WORKDIR /srv/firehook
COPY --chown=10001:10001 functions ./functions
USER 10001
# inside a container the API must listen on every interface to be reachable
ENV FIREHOOK_HTTP__HOST=0.0.0.0
EXPOSE 8000
CMD ["firehook", "serve"]
