#!/usr/bin/env bash
# Set up .venv and run the demo: every event type through each emitter, GET and POST, into the
# built-in local collector, then what arrived and whether it validated.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all]'
exec .venv/bin/snowplow-tracker demo "$@"
