#!/usr/bin/env bash
# Installs everything (Debian packages, ./.venv) and runs the linters and the whole test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k archive -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
DGM_EXTRAS=test,local,embeddings,ray DGM_WITH_POSTGRES=1 DGM_WITH_DOCKER=1 DGM_WITH_REGISTRY=1 \
  DGM_WITH_BROWSER=1 scripts/setup.sh
# a missing PostgreSQL, Docker or Chromium fails the run instead of skipping tests
export DGM_REQUIRE_POSTGRES=1 DGM_REQUIRE_DOCKER=1 DGM_REQUIRE_BROWSER=1
export RAY_USAGE_STATS_ENABLED=0  # Ray never reports usage outward
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
