#!/usr/bin/env bash
# Installs dgm and runs the offline quickstart: a small evolution run on the built-in Python
# exercises with the embedded local model, into ./dgm-archive. Running it again continues the
# same run (and says so when its budget is already spent).
set -euo pipefail
cd "$(dirname "$0")/.."
DGM_EXTRAS=local DGM_WITH_DOCKER=1 scripts/setup.sh
.venv/bin/dgm run configs/quickstart.yaml "$@"
.venv/bin/dgm status
.venv/bin/dgm tree
