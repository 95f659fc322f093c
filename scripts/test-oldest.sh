#!/usr/bin/env bash
# The test suite on the oldest Python the package supports (3.9), when this machine has it:
# it catches syntax and library calls newer than the support promise. Lint, types and
# coverage run on the main interpreter (scripts/test.sh); this run is the tests alone.
set -euo pipefail
cd "$(dirname "$0")/.."
oldest=""
for candidate in "$HOME/.pyenv/versions/3.9"*/bin/python3.9 python3.9; do
    # A pyenv shim exists even where its version is not selected: run it to be sure.
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 9)' >/dev/null 2>&1; then
        oldest=$(command -v "$candidate")
        break
    fi
done
if [ -z "$oldest" ]; then
    echo "test-oldest: skipped, no python3.9 on this machine (pyenv install 3.9 to run it)"
    exit 0
fi
echo "test-oldest: $("$oldest" --version) at $oldest"
"$oldest" -m venv .venv39
.venv39/bin/python -m pip uninstall -y -q --disable-pip-version-check snowplow-tracker 2>/dev/null || true
.venv39/bin/python -m pip install -q --disable-pip-version-check -e '.[all,dev]'
bash scripts/services.sh
.venv39/bin/python -m pytest -q -p no:cacheprovider "$@"
