#!/bin/sh
# The container's entrypoint: `docker run IMAGE serve --host 0.0.0.0` runs `selfheal serve --host
# 0.0.0.0` (any selfheal command, or options, as the first argument); anything else runs as given
# (the default `make run-cli`, `.venv/bin/selfheal classify ...`, `bash`).
set -e
case "${1:-}" in
    run|classify|review|serve|stats|train|eval|graph|export-onnx|package-model|push|-*)
        exec selfheal "$@" ;;
esac
exec "$@"
