#!/usr/bin/env bash
# Set up .venv and run the demo: every event type through each emitter, GET and POST, into the
# built-in local collector, then what arrived and whether it validated.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# The package was once installed as snowplow-tracker (Snowplow's name): drop that install and
# its metadata, or the import would warn of a conflicting distribution.
.venv/bin/python -m pip uninstall -y -q --disable-pip-version-check snowplow-tracker 2>/dev/null || true
rm -rf src/snowplow_tracker.egg-info
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all]'
exec .venv/bin/snowplow-tracker demo "$@"
