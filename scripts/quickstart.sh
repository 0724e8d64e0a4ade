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
cat <<EOF_NEXT

The archive is in $PWD/dgm-archive (runs, agents, results, reviews). Try next:
  .venv/bin/dgm show NODE                     a node (an id prefix from the tree above)
  .venv/bin/dgm lineage NODE                  how it came to be, step by step
  .venv/bin/dgm ui                            browse it all, and follow a run live
  .venv/bin/dgm export best --out best-agent  the answer as plain files and a git bundle
  bash scripts/quickstart.sh --set budget.expansions=6   take the run further
EOF_NEXT
