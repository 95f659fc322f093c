#!/usr/bin/env bash
# Set up .venv and run every quality gate and the whole test suite, as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# The package was once installed as snowplow-tracker (Snowplow's name): drop that install and
# its metadata, or the import would warn of a conflicting distribution.
.venv/bin/python -m pip uninstall -y -q --disable-pip-version-check snowplow-tracker 2>/dev/null || true
rm -rf src/snowplow_tracker.egg-info
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,dev]'
bash scripts/services.sh
lint_dirs="src tests examples $(ls -d bench 2>/dev/null || true)"
.venv/bin/ruff check $lint_dirs
.venv/bin/ruff format --check $lint_dirs
.venv/bin/mypy --strict src
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir .site
rm -f .coverage .coverage.*
.venv/bin/python -m pytest --cov --cov-branch --cov-report=term "$@"
