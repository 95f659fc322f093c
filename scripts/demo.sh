#!/usr/bin/env bash
# Set up .venv and run the demo: the release-note examples against the built-in local collector.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all]'
exec .venv/bin/snowplow-tracker demo "$@"
