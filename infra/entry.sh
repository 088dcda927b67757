#!/bin/sh
# The image's command, one image for both clouds. On Lambda (the Runtime API's address is set)
# awslambdaric runs shared/platform/cloud_entry.py's handler, which hands every event to the function's
# app in-process; anywhere else (Cloud Run, a local container) infra/serve.py serves HTTP: functions-
# framework's app and gunicorn, as the local processes serve, on $HOST (default all) and $PORT.
set -eu
if [ -n "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    exec python -m awslambdaric shared.platform.cloud_entry.handler
fi
exec python -m infra.serve --source="functions/${FUNCTION}/main.py" --target="${TARGET}" \
    --host="${HOST:-0.0.0.0}" --port="${PORT:-8080}"
