#!/usr/bin/env bash
# Installs everything (Debian packages, ./.venv) and runs the linters and the whole test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k archive -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
DGM_EXTRAS=test DGM_WITH_POSTGRES=1 scripts/setup.sh
export DGM_REQUIRE_POSTGRES=1  # a missing PostgreSQL fails the run instead of skipping tests
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
