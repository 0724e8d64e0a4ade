#!/usr/bin/env bash
# Starts the Docker engine unless one answers already. No bridge and no iptables rules:
# dgm's containers never get a network, so the engine needs none either. gVisor (runsc) is
# registered from scripts/dockerd.json: told there is no network to set up, and allowed to
# connect to host Unix sockets mounted in (the FM gateway's, the only one a sandbox gets).
set -euo pipefail
cd "$(dirname "$0")/.."
ping_engine() { .venv/bin/python -c 'import docker; docker.from_env(timeout=5).ping()' 2>/dev/null; }
ping_engine && exit 0
echo "start-docker: starting dockerd (log: /var/log/dgm-dockerd.log)"
nohup dockerd --bridge=none --iptables=false --config-file scripts/dockerd.json \
  >/var/log/dgm-dockerd.log 2>&1 &
for _ in $(seq 60); do
  ping_engine && exit 0
  sleep 0.5
done
echo "start-docker: dockerd did not answer within 30 s; see /var/log/dgm-dockerd.log" >&2
exit 2
