#!/usr/bin/env bash
# Installs dgm and runs the offline quickstart in ./dgm-archive.
#
# The evolution loop (`dgm run configs/quickstart.yaml`) is not built yet; until it is, the
# quickstart runs what exists: it creates the archive (once), checks it against its git store
# and prints the tree of agents it holds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DGM_ARCHIVE="${DGM_ARCHIVE:-$PWD/dgm-archive}"
[ -f "$DGM_ARCHIVE/archive.json" ] || .venv/bin/dgm init
.venv/bin/dgm fsck
.venv/bin/dgm tree
